"""A results folder as the report sees it: rows, volumes, provenance and the configurations the run recorded
(codec, parameters, quality knobs, curve). The report reads files; it never imports a codec."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MedpipeError, described
from ..results import read_rows


@dataclass
class Results:
    folder: Path
    rows: list[dict]
    volumes: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    source: str = "results.json"
    configurations: list[dict] = field(default_factory=list)


def _num(v):
    if v == "inf":
        return math.inf
    return v


def load_results(path: Path) -> Results:
    """A results folder (results.json preferred, results.csv alone is enough) or either file directly."""
    path = Path(path)
    if not path.exists():
        raise MedpipeError(f"{path}: no such results folder; give the folder a run wrote (results/<name>-<stamp>)")
    folder = path if path.is_dir() else path.parent
    jpath, cpath = folder / "results.json", folder / "results.csv"
    if path.is_file() and path.suffix == ".csv":
        jpath = folder / "__none__"
    if jpath.is_file():
        try:
            doc = json.loads(jpath.read_text(encoding="utf-8"))
            rows = [{k: _num(v) for k, v in r.items()} for r in doc["rows"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise MedpipeError(f"{jpath}: not a medpipe results.json ({described(exc)}); "
                               "run the preset again or give the folder's results.csv")
        return Results(folder, rows, doc.get("volumes") or [], doc.get("provenance") or {}, "results.json",
                       doc.get("configurations") or [])
    if cpath.is_file():
        rows = read_rows(cpath)
        if rows and not {"label", "cr", "psnr_db", "status"} <= set(rows[0]):
            raise MedpipeError(f"{cpath}: not a medpipe results.csv (columns label, cr, psnr_db, status missing)")
        return Results(folder, rows, [], {}, "results.csv")
    raise MedpipeError(f"{folder}: holds no results.json or results.csv; give the folder a run wrote")


def ok_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and r.get("cr") not in (None, "")]


def is_lossless(r: dict) -> bool:
    return bool(r.get("lossless")) and bool(r.get("exact"))


def parse_setting(setting: str) -> dict:
    """'preset=slow, crf=22' -> {'preset': 'slow', 'crf': '22'} (results.csv alone: no recorded configurations)."""
    out = {}
    for part in re.split(r",\s*(?=\w+=)", setting or ""):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


# Quality knobs assumed for a results.csv without recorded configurations (older runs).
FALLBACK_KNOBS = ("crf", "qp", "near", "psnr", "level")


@dataclass
class Curve:
    key: str  # family name: codec plus the parameters that are not quality knobs
    codec: str
    labels: list[str]  # in preset order


def configurations(results: Results) -> dict[str, dict]:
    """label -> {codec, curve, knobs}: recorded by the run, else guessed from the rows' setting strings."""
    out = {c["label"]: c for c in results.configurations if "label" in c}
    for r in results.rows:
        if r["label"] not in out:
            p = parse_setting(str(r.get("setting") or ""))
            rest = [f"{k}={v}" for k, v in sorted(p.items()) if k not in FALLBACK_KNOBS]
            out[r["label"]] = {"codec": r["codec"], "curve": r["codec"] + (f" ({', '.join(rest)})" if rest else ""),
                               "knobs": {k: v for k, v in p.items() if k in FALLBACK_KNOBS}}
    return out


def families(results: Results) -> tuple[list[Curve], dict[str, str]]:
    """Group configurations into curves (same codec and non-knob parameters); label -> curve key."""
    confs = configurations(results)
    curves: dict[str, Curve] = {}
    of_label: dict[str, str] = {}
    for label in dict.fromkeys(r["label"] for r in results.rows):
        c = confs[label]
        curves.setdefault(c["curve"], Curve(c["curve"], c["codec"], [])).labels.append(label)
        of_label[label] = c["curve"]
    return list(curves.values()), of_label


def knob_text(results: Results, label: str) -> str:
    knobs = configurations(results)[label].get("knobs") or {}
    return ", ".join(f"{k}={v}" for k, v in knobs.items()) or "default"
