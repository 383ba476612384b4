"""A results folder as the report sees it: rows, volumes, provenance and the configurations the run recorded
(codec, parameters, quality knobs, curve). The report reads files; it never imports a codec."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MedpipeError, described
from ..results import COLUMN_TYPES, read_rows, row_problem


@dataclass
class Results:
    folder: Path
    rows: list[dict]
    volumes: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    source: str = "results.json"
    configurations: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per malformed row or section left out


def _num(v):
    if v == "inf":
        return math.inf
    return v


def load_results(path: Path) -> Results:
    """A results folder (results.json preferred, results.csv alone is enough) or either file directly. A malformed
    row or section is left out with one line in ``problems`` (naming the file and the row); the rest is reported."""
    path = Path(path)
    if not path.exists():
        raise MedpipeError(f"{path}: no such results folder; give the folder a run wrote (results/<name>-<stamp>)")
    folder = path if path.is_dir() else path.parent
    jpath, cpath = folder / "results.json", folder / "results.csv"
    if path.is_file() and path.suffix == ".csv":
        jpath = folder / "__none__"
    if jpath.is_file():
        return _load_json(folder, jpath)
    if cpath.is_file():
        rows = read_rows(cpath)
        if rows and not {"label", "cr", "psnr_db", "status"} <= set(rows[0]):
            raise MedpipeError(f"{cpath}: not a medpipe results.csv (columns label, cr, psnr_db, status missing)")
        problems: list[str] = []
        rows = _checked_rows(cpath, rows, problems, text_from_csv=True)
        return Results(folder, rows, [], {}, "results.csv", problems=problems)
    raise MedpipeError(f"{folder}: holds no results.json or results.csv; give the folder a run wrote")


def _load_json(folder: Path, jpath: Path) -> Results:
    try:
        doc = json.loads(jpath.read_text(encoding="utf-8"))
    except RecursionError:  # nested thousands deep: the parser recurses once a level
        raise MedpipeError(f"{jpath}: not a medpipe results.json (nested too deeply); run the preset again or "
                           "give the folder's results.csv") from None
    except (OSError, ValueError) as exc:
        raise MedpipeError(f"{jpath}: not a medpipe results.json ({described(exc)}); "
                           "run the preset again or give the folder's results.csv") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise MedpipeError(f"{jpath}: not a medpipe results.json (no list of rows); run the preset again or give "
                           "the folder's results.csv")
    problems: list[str] = []
    rows = [{k: _num(v) for k, v in r.items()} for r in _checked_rows(jpath, doc["rows"], problems)]
    return Results(folder, rows, _entries(jpath, doc, "volumes", VOLUME_KEYS, problems),
                   _provenance(jpath, doc.get("provenance"), problems), "results.json",
                   _entries(jpath, doc, "configurations", CONFIGURATION_KEYS, problems), problems)


def _checked_rows(path: Path, rows: list, problems: list[str], text_from_csv: bool = False) -> list[dict]:
    """The rows whose columns hold what results.Row says; each other one left out with a line naming it."""
    kept = []
    for n, r in enumerate(rows):
        why = row_problem(r, text_from_csv)
        if why:
            problems.append(f"{path}: row {n + 1} left out: {why}")
        else:
            kept.append(r if not text_from_csv else {k: _text(k, v) for k, v in r.items()})
    return kept


def _text(key: str, v):
    """A CSV cell of a text column read back as a number (a volume named 001) is text again."""
    return str(v) if COLUMN_TYPES.get(key) is str and v is not None and not isinstance(v, str) else v


# the keys of a volume / configuration entry the report reads, and their types (None: may be null)
VOLUME_KEYS = {"volume": (str,), "modality": (str, None), "body_part": (str, None), "source": (str, None),
               "dataset": (str, None), "shape": (list, None)}
CONFIGURATION_KEYS = {"label": (str,), "codec": (str,), "curve": (str,), "knobs": (dict, None)}


def _entries(path: Path, doc: dict, section: str, keys: dict, problems: list[str]) -> list[dict]:
    value = doc.get(section) or []
    if not isinstance(value, list):
        problems.append(f"{path}: {section} left out: a {type(value).__name__}, not a list")
        return []
    kept = []
    for n, e in enumerate(value):
        bad = f"is a {type(e).__name__}" if not isinstance(e, dict) else next(
            (f"{k} is {type(e.get(k)).__name__} {repr(e.get(k))[:40]}" for k, types in keys.items()
             if not isinstance(e.get(k), tuple(type(None) if t is None else t for t in types))), None)
        if bad:
            problems.append(f"{path}: {section} entry {n + 1} left out: {bad}")
        else:
            kept.append(e)
    return kept


def _provenance(path: Path, prov, problems: list[str]) -> dict:
    """The run's provenance; a part of the wrong type (read by the pages and the CLI) is left out with a line."""
    if prov is None:
        return {}
    if not isinstance(prov, dict):
        problems.append(f"{path}: provenance left out: a {type(prov).__name__}, not an object")
        return {}
    prov = dict(prov)
    for key in ("preset", "libraries"):
        if key in prov and not isinstance(prov[key], (dict, type(None))):
            problems.append(f"{path}: provenance.{key} left out: a {type(prov.pop(key)).__name__}, not an object")
    preset = prov.get("preset") or {}
    if not isinstance(preset.get("as_run") or {}, dict):
        problems.append(f"{path}: provenance.preset.as_run left out: not an object")
        prov["preset"] = {k: v for k, v in preset.items() if k != "as_run"}
    return prov


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
