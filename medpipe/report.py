"""Reports from a results folder: bar charts, rate-distortion curves, Bjøntegaard deltas, heatmaps, clinical flags.

``build_report(folder, options, console)`` is called by the runner after results.csv/json are written (preset key
``report: true`` or ``report: {...}``); ``python run.py report RESULTS_DIR`` does the same for an existing run.
Everything but the heatmaps comes from the results file alone. Heatmaps need decoded pixels, which the results do
not hold: the chosen slices are encoded again with the configuration as run (``provenance.preset.as_run``) from
the volume's recorded source; when that is not reachable the report says so and goes on without them.

Output, in ``<results>/report/``: ``report.html`` (self-contained, figures embedded), ``summary.md`` (links the
PNGs), ``figures/*.png``, ``figures.json`` (what each figure shows: size, panels) and ``results_flagged.csv``
(the results with the clinical columns).
"""
from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MedpipeError
from .options import did_you_mean

LIMITS_FILE = Path(__file__).with_name("clinical_limits.yaml")

# Report options (preset ``report: {...}``): type(s) and meaning; unknown keys get "did you mean".
OPTIONS: dict[str, tuple[tuple, str]] = {
    "reference": ((str,), "curve BD-rates are measured against: a row label, a curve name or a codec name "
                          "(default: the first swept curve)"),
    "rate": ((str,), "rate axis of rate-distortion figures: 'bpv' (bits per voxel, default) or 'cr'"),
    "heatmaps": ((bool,), "draw |error| and local SSIM heatmaps (encodes the chosen slices again; default true)"),
    "slices": ((list, int, str), "slice indices for heatmaps, or 'middle' (default)"),
    "heatmap_volumes": ((list, int), "volume names, or how many volumes (the first N), that get heatmaps "
                                     "(default 1)"),
    "heatmap_labels": ((list,), "configurations (row labels) shown in heatmaps (default: a spread of the lossy rows)"),
    "heatmap_max": ((int,), "at most this many lossy configurations in heatmaps (default 6: one page)"),
    "clinical_limits": ((str,), "YAML file of maximum compression ratios (default: medpipe/clinical_limits.yaml)"),
    "regions": ((dict,), "limit rule id per volume name ('*': every volume) when BodyPartExamined is missing "
                         "or wrong, e.g. {'*': ct_head}"),
    "flagged_csv": ((bool,), "write results_flagged.csv with the clinical columns (default true)"),
    "folder": ((str,), "sub-folder of the results folder for the report (default 'report')"),
    "dpi": ((int,), "figure resolution in dots per inch (default 110)"),
}
DEFAULTS: dict[str, Any] = {"reference": None, "rate": "bpv", "heatmaps": True, "slices": "middle",
                            "heatmap_volumes": 1, "heatmap_labels": None, "heatmap_max": 6,
                            "clinical_limits": None, "regions": {}, "flagged_csv": True, "folder": "report",
                            "dpi": 110}

# Parameters that move a configuration along its rate-distortion curve; the rest name the curve.
KNOBS = ("crf", "qp", "near", "psnr", "level", "lossless")

# Colour-blind-safe: Okabe-Ito first, then Paul Tol's muted set. Fixed per codec so a codec keeps its colour in
# every figure of every report.
CODEC_COLORS = {
    "x265": "#D55E00", "x264": "#0072B2", "ffv1": "#CC79A7", "jpegls": "#009E73", "jpegls_pillow": "#44AA99",
    "jpeg2000": "#E69F00", "jpeg2000_glymur": "#DDCC77", "htj2k": "#999933", "jpegxl": "#56B4E9",
    "png": "#000000", "png_opencv": "#777777", "ljpeg": "#332288", "jpeg8": "#882255",
}
SPARE_COLORS = ["#88CCEE", "#117733", "#AA4499", "#661100", "#6699CC", "#BBBBBB"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]
LINESTYLES = ["-", "--", ":", "-."]


def codec_color(codec: str) -> str:
    if codec in CODEC_COLORS:
        return CODEC_COLORS[codec]
    return SPARE_COLORS[sum(codec.encode()) % len(SPARE_COLORS)]  # stable across runs (no hash seed)


# ---------------------------------------------------------------- options

def check_options(options: Any, where: str = "report") -> dict:
    """``true`` / ``{...}`` -> the full options dict; unknown keys and wrong types are refused by name."""
    if options is None or options is True:
        return dict(DEFAULTS)
    if options is False:
        return dict(DEFAULTS, heatmaps=False)
    if not isinstance(options, dict):
        raise MedpipeError(f"{where}: expected true or a mapping of options ({', '.join(OPTIONS)}), "
                           f"got {options!r}")
    out = dict(DEFAULTS)
    for key, value in options.items():
        if key not in OPTIONS:
            raise MedpipeError(f"{where}: unknown option '{key}'{did_you_mean(str(key), OPTIONS)}")
        types = OPTIONS[key][0]
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise MedpipeError(f"{where}.{key}: expected {' or '.join(t.__name__ for t in types)}, got {value!r} "
                               f"({OPTIONS[key][1]})")
        out[key] = value
    if out["rate"] not in ("bpv", "cr"):
        raise MedpipeError(f"{where}.rate: {out['rate']!r} is not 'bpv' or 'cr'")
    if isinstance(out["slices"], str) and out["slices"] != "middle":
        raise MedpipeError(f"{where}.slices: {out['slices']!r}: give slice indices, e.g. [10, 14], or 'middle'")
    if isinstance(out["slices"], list) and not all(isinstance(s, int) and not isinstance(s, bool)
                                                   for s in out["slices"]):
        raise MedpipeError(f"{where}.slices: expected a list of slice indices (integers), got {out['slices']!r}")
    if int(out["heatmap_max"]) < 1 or int(out["dpi"]) < 30:
        raise MedpipeError(f"{where}: heatmap_max must be >= 1 and dpi >= 30")
    return out


# ---------------------------------------------------------------- results

@dataclass
class Results:
    folder: Path
    rows: list[dict]
    volumes: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    source: str = "results.json"
    params: dict | None = field(default=None, repr=False)  # label -> codec parameters, filled on first use

    @property
    def preset_as_run(self) -> dict | None:
        p = (self.provenance or {}).get("preset") or {}
        return p.get("as_run") if isinstance(p.get("as_run"), dict) else None


def _num(v):
    if v == "inf":
        return math.inf
    return v


def load_results(path: Path) -> Results:
    """A results folder (results.json preferred, results.csv alone is enough) or either file directly."""
    from .results import read_rows

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
            raise MedpipeError(f"{jpath}: not a medpipe results.json ({type(exc).__name__}: {exc}); "
                               "run the preset again or give the folder's results.csv")
        return Results(folder, rows, doc.get("volumes") or [], doc.get("provenance") or {}, "results.json")
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
    """'preset=slow, crf=22' -> {'preset': 'slow', 'crf': '22'} (fallback when the preset is not recorded)."""
    out = {}
    for part in re.split(r",\s*(?=\w+=)", setting or ""):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def config_params(results: Results) -> dict[str, tuple[str, dict, dict]]:
    """label -> (codec, parameters, defaults) from the preset as run, else from the rows' setting strings."""
    if results.params is not None:
        return results.params
    out: dict[str, tuple[str, dict, dict]] = {}
    preset = results.preset_as_run
    if preset:
        from .preset import parse_codec

        for i, entry in enumerate(preset.get("codecs") or []):
            try:
                spec = parse_codec(entry, i, "")
            except MedpipeError:
                continue
            defaults = {k: p.default for k, p in spec.codec.params.items()}
            out[spec.label] = (spec.codec.name, dict(spec.codec.p), defaults)
    for r in results.rows:
        if r["label"] not in out:
            out[r["label"]] = (r["codec"], parse_setting(str(r.get("setting") or "")), {})
    results.params = out
    return out


@dataclass
class Curve:
    key: str  # family name: codec plus the parameters that are not quality knobs
    codec: str
    labels: list[str]  # in preset order


def families(results: Results) -> tuple[list[Curve], dict[str, str]]:
    """Group configurations into curves (same codec and non-knob parameters); label -> curve key."""
    params = config_params(results)
    curves: dict[str, Curve] = {}
    of_label: dict[str, str] = {}
    for label in dict.fromkeys(r["label"] for r in results.rows):
        codec, p, defaults = params[label]
        rest = [f"{k}={v}" for k, v in sorted(p.items())
                if k not in KNOBS and k != "extra" and (k not in defaults or v != defaults[k])]
        if p.get("extra"):
            rest.append(f"extra={' '.join(map(str, p['extra']))}")
        key = codec + (f" ({', '.join(rest)})" if rest else "")
        curves.setdefault(key, Curve(key, codec, [])).labels.append(label)
        of_label[label] = key
    return list(curves.values()), of_label


def knob_text(results: Results, label: str) -> str:
    codec, p, defaults = config_params(results)[label]
    parts = [f"{k}={v}" for k, v in p.items() if k in KNOBS and v is not None and v is not False
             and (k not in defaults or v != defaults[k] or k == "near")]
    return ", ".join(parts) or "default"


# ---------------------------------------------------------------- Bjøntegaard delta

def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shape-preserving cubic Hermite slopes (Fritsch-Carlson, as scipy's PchipInterpolator)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        return np.array([delta[0], delta[0]])
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def edge(h0, h1, m0, m1):
        s = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(s) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(s) > abs(3 * m0):
            return 3 * m0
        return s

    d[0] = edge(h[0], h[1], delta[0], delta[1])
    d[-1] = edge(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _hermite(x, y, d, t):
    i = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2)
    h = x[i + 1] - x[i]
    s = (t - x[i]) / h
    return ((2 * s**3 - 3 * s**2 + 1) * y[i] + (s**3 - 2 * s**2 + s) * h * d[i]
            + (-2 * s**3 + 3 * s**2) * y[i + 1] + (s**3 - s**2) * h * d[i + 1])


def _integral(x, y, lo, hi) -> float:
    """Exact integral of the PCHIP interpolant of (x, y) over [lo, hi] (Simpson is exact on each cubic piece)."""
    d = _pchip_slopes(x, y)
    knots = np.unique(np.concatenate([[lo, hi], x[(x > lo) & (x < hi)]]))
    a, b = knots[:-1], knots[1:]
    m = (a + b) / 2
    return float(np.sum((b - a) / 6 * (_hermite(x, y, d, a) + 4 * _hermite(x, y, d, m) + _hermite(x, y, d, b))))


MIN_OVERLAP = 0.2  # BD values need the curves to share at least this fraction of the shorter one's range


def _prep(xs, ys):
    """(x, y) points -> sorted distinct x with y averaged; non-finite dropped; None when < 2 distinct x."""
    by: dict[float, list[float]] = {}
    for x, y in zip(xs, ys):
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
            by.setdefault(float(x), []).append(float(y))
    if len(by) < 2:
        return None
    xs_sorted = np.array(sorted(by))
    return xs_sorted, np.array([np.mean(by[x]) for x in xs_sorted])


def _log(values):
    return [math.log(v) if v is not None and math.isfinite(v) and v > 0 else None for v in values]


def _bd(xa, ya, xb, yb) -> float | None:
    a, b = _prep(xa, ya), _prep(xb, yb)
    if a is None or b is None:
        return None
    lo, hi = max(a[0][0], b[0][0]), min(a[0][-1], b[0][-1])
    # An average over a sliver of overlap says nothing about the curves: ask for a fifth of the shorter one.
    if hi <= lo or hi - lo < MIN_OVERLAP * min(a[0][-1] - a[0][0], b[0][-1] - b[0][0]):
        return None
    return (_integral(*b, lo, hi) - _integral(*a, lo, hi)) / (hi - lo)


def bd_rate(ref_rate, ref_q, test_rate, test_q) -> float | None:
    """Bjøntegaard delta rate in percent: average rate difference of test against ref at equal quality, over
    the quality range both curves cover (log rate interpolated piecewise-cubically, PCHIP). None: no overlap."""
    diff = _bd(list(ref_q), _log(ref_rate), list(test_q), _log(test_rate))
    return None if diff is None else (math.exp(diff) - 1) * 100


def bd_quality(ref_rate, ref_q, test_rate, test_q) -> float | None:
    """Bjøntegaard delta quality (dB for PSNR): average quality difference at equal log rate."""
    return _bd(_log(ref_rate), list(ref_q), _log(test_rate), list(test_q))


# ---------------------------------------------------------------- clinical limits

@dataclass
class Limits:
    path: Path
    sources: dict[str, dict]
    rules: list[dict]
    near_lossless: int


def load_limits(path: Path | str | None = None) -> Limits:
    """The thresholds file (default: clinical_limits.yaml beside this module, so it works when installed)."""
    import yaml

    path = Path(path) if path else LIMITS_FILE
    if not path.is_file():
        raise MedpipeError(f"{path}: clinical limits file not found (report.clinical_limits); copy "
                           f"{LIMITS_FILE} and edit it")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MedpipeError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), dict) or not isinstance(doc.get("rules"), list):
        raise MedpipeError(f"{path}: expected the keys 'sources' (mapping) and 'rules' (list), as in {LIMITS_FILE}")
    sources = doc["sources"]
    for i, rule in enumerate(doc["rules"]):
        where = f"{path}: rules[{i}]"
        if not isinstance(rule, dict) or not rule.get("id") or not isinstance(rule.get("modalities"), list):
            raise MedpipeError(f"{where}: each rule needs 'id' and 'modalities' (a list), e.g. "
                               "{id: ct_head, modalities: [CT], max_cr: {DRG: 5}}")
        for src, value in (rule.get("max_cr") or {}).items():
            if src not in sources:
                raise MedpipeError(f"{where}.max_cr: source '{src}' is not in 'sources'{did_you_mean(src, sources)}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise MedpipeError(f"{where}.max_cr.{src}: expected a positive number or null, got {value!r}")
    near = doc.get("near_lossless", 2)
    if isinstance(near, bool) or not isinstance(near, int) or near < 0:
        raise MedpipeError(f"{path}: near_lossless: expected a maximum absolute error >= 0, got {near!r}")
    return Limits(path, sources, doc["rules"], near)


def _strictest(limits: Limits, rules: list[dict]) -> dict:
    def key(rule):
        vals = [v for v in (rule.get("max_cr") or {}).values() if v]
        return (not rule.get("near_lossless_only"), min(vals) if vals else math.inf)
    return min(rules, key=key)


def rule_for(limits: Limits, modality: str, body_part: str, override: str | None = None):
    """(rule or None, note). Unknown region -> the strictest rule of the modality, said in the note."""
    if override:
        for rule in limits.rules:
            if rule["id"] == override:
                return rule, f"region set in the report options: {override}"
        ids = [r["id"] for r in limits.rules]
        raise MedpipeError(f"report.regions: unknown rule '{override}'{did_you_mean(override, ids)}")
    mod = (modality or "").upper()
    candidates = [r for r in limits.rules if mod in [str(m).upper() for m in r["modalities"]]]
    if not candidates:
        return None, f"no limit listed for modality '{modality or '?'}'"
    if not (body_part or "").strip() and any(r.get("body_parts") for r in candidates):
        rule = _strictest(limits, candidates)
        return rule, (f"BodyPartExamined missing: strictest {mod} limit applied ({rule['id']}); set "
                      "report.regions to choose")
    part = body_part.upper()
    for rule in candidates:
        parts = [str(p).upper() for p in rule.get("body_parts") or []]
        if not parts or any(p in part for p in parts):
            return rule, ""
    rule = _strictest(limits, candidates)
    return rule, f"region '{body_part}' not listed: strictest {mod} limit applied ({rule['id']})"


def clinical_flags(rows: list[dict], limits: Limits, regions: dict | None = None) -> list[dict]:
    """One dict per row: rule, limit per source, verdict per source and overall ('within', 'beyond', ...)."""
    regions = regions or {}
    out = []
    for r in rows:
        f: dict[str, Any] = {"clinical_rule": "", "clinical_flag": "", "clinical_note": ""}
        for src in limits.sources:
            f[f"max_cr_{src}"] = None
            f[f"flag_{src}"] = ""
        if r.get("status") != "ok" or r.get("cr") in (None, ""):
            out.append(f)
            continue
        if is_lossless(r):
            f["clinical_flag"] = "lossless"
            out.append(f)
            continue
        override = regions.get(r["volume"]) or regions.get("*")
        rule, note = rule_for(limits, r.get("modality") or "", r.get("body_part") or "", override)
        f["clinical_note"] = note
        if rule is None:
            f["clinical_flag"] = "no limit"
            out.append(f)
            continue
        f["clinical_rule"] = rule["id"]
        cr = float(r["cr"])
        near = r.get("max_abs_err") is not None and r["max_abs_err"] != "" and \
            int(r["max_abs_err"]) <= limits.near_lossless
        verdicts = []
        for src, limit in (rule.get("max_cr") or {}).items():
            f[f"max_cr_{src}"] = limit
            if rule.get("near_lossless_only"):
                v = "within" if near else "beyond"
            elif limit is None:
                continue
            else:
                v = "within" if cr <= float(limit) else "beyond"
            f[f"flag_{src}"] = v
            verdicts.append((src, v))
        if rule.get("near_lossless_only"):
            f["clinical_flag"] = "within (near-lossless)" if near else "beyond: near-lossless only"
        elif not verdicts:
            f["clinical_flag"] = "no limit"
        elif all(v == "within" for _, v in verdicts):
            f["clinical_flag"] = "within"
        elif all(v == "beyond" for _, v in verdicts):
            f["clinical_flag"] = "beyond"
        else:
            f["clinical_flag"] = "within " + ", ".join(s for s, v in verdicts if v == "within") + \
                                 "; beyond " + ", ".join(s for s, v in verdicts if v == "beyond")
        out.append(f)
    return out


# ---------------------------------------------------------------- figures

class Figures:
    """Saves figures as PNG (temporary name, then rename) and records what each shows in figures.json."""

    def __init__(self, folder: Path, dpi: int):
        self.folder = folder
        self.dpi = dpi
        self.items: list[dict] = []
        folder.mkdir(parents=True, exist_ok=True)

    def save(self, fig, name: str, kind: str, title: str, panels: int, caption: str = "") -> dict:
        import matplotlib.pyplot as plt

        path = self.folder / f"{name}.png"
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format="png", dpi=self.dpi, bbox_inches="tight", facecolor="white")
        plt.close(fig)
        os.replace(tmp, path)
        w, h = png_size(path)
        item = {"file": path.name, "kind": kind, "title": title, "panels": panels, "width_px": w, "height_px": h,
                "caption": caption}
        self.items.append(item)
        return item


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header; refuses anything that is not a PNG."""
    head = Path(path).read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise MedpipeError(f"{path}: not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60] or "x"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless, also on Windows without a display
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


BAR_METRICS = [("psnr_db", "PSNR (dB)", "linear"), ("ssim", "SSIM (mean over slices)", "linear"),
               ("cr", "compression ratio (stored : compressed, log scale)", "log"),
               ("encode_ms", "encode time (s, log scale)", "log"), ("decode_ms", "decode time (s, log scale)", "log")]


def bar_figure(figs: Figures, rows: list[dict], title: str, name: str) -> dict | None:
    """Thesis figures 5.2-5.17: one panel per metric, one bar per configuration, mean over the group's volumes
    with the range across volumes as whiskers and each volume as a dot."""
    plt = _pyplot()
    rows = ok_rows(rows)
    if not rows:
        return None
    labels = list(dict.fromkeys(r["label"] for r in rows))
    codec_of = {r["label"]: r["codec"] for r in rows}
    nvol = len({r["volume"] for r in rows})
    height = max(3.0, 0.32 * len(labels) + 1.6)
    fig, axes = plt.subplots(1, len(BAR_METRICS), figsize=(19, height), sharey=True)
    y = np.arange(len(labels))
    for ax, (key, xlabel, scale) in zip(axes, BAR_METRICS):
        for i, label in enumerate(labels):
            vals = [float(r[key]) for r in rows if r["label"] == label and r.get(key) not in (None, "")]
            if key.endswith("_ms"):
                vals = [v / 1000 for v in vals]
            color = codec_color(codec_of[label])
            finite = [v for v in vals if math.isfinite(v)]
            if key == "psnr_db" and vals and not finite:
                ax.text(0.01, i, "lossless (PSNR = ∞)", va="center", ha="left", fontsize=8, color="#333333",
                        transform=ax.get_yaxis_transform())
                continue
            if not finite:
                continue
            mean = float(np.mean(finite))
            ax.barh(i, mean, color=color, height=0.7, edgecolor="white")
            if key in ("psnr_db", "cr"):  # the numbers people quote: written at the bar's end
                ax.annotate(f"{mean:.1f}", (max(finite), i), xytext=(4, 0), textcoords="offset points",
                            va="center", fontsize=7, color="#333333")
            if len(finite) > 1:
                ax.errorbar(mean, i, xerr=[[mean - min(finite)], [max(finite) - mean]], fmt="none",
                            ecolor="#333333", capsize=3, lw=1)
                ax.plot(finite, [i] * len(finite), "o", ms=3, color="#333333", alpha=0.7)
        ax.set_xlabel(xlabel)
        ax.set_xscale(scale)
        ax.grid(axis="x", alpha=0.3)
        if key == "ssim":
            vals = [float(r["ssim"]) for r in rows if r.get("ssim") not in (None, "") and math.isfinite(r["ssim"])]
            if vals:
                lo = min(vals)
                ax.set_xlim(max(0.0, lo - 0.15 * (1 - lo) - 1e-4), 1.0 + 0.02 * (1 - lo) + 1e-5)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(labels)
    axes[0].invert_yaxis()
    codecs = list(dict.fromkeys(codec_of[lab] for lab in labels))
    handles = [plt.Rectangle((0, 0), 1, 1, color=codec_color(c)) for c in codecs]
    fig.legend(handles, codecs, loc="lower center", ncol=min(len(codecs), 9), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.6 / height))
    spread = f"{nvol} volumes; bars: mean, whiskers: min-max, dots: each volume" if nvol > 1 else "one volume"
    fig.suptitle(f"{title}  ({spread})", x=0.5, ha="center")
    fig.tight_layout()
    return figs.save(fig, name, "bars", title, len(BAR_METRICS),
                     f"{title}: mean PSNR, SSIM, CR, encode and decode time per configuration ({spread}).")


def rd_figure(figs: Figures, results: Results, volume: str, curves: list[Curve], rate: str,
              limits: dict[str, float] | None = None) -> dict | None:
    """Rate-distortion: rate against PSNR and against SSIM; a line per swept curve, lossless points as stars."""
    plt = _pyplot()
    rows = [r for r in ok_rows(results.rows) if r["volume"] == volume]
    if not rows:
        return None
    by_label = {r["label"]: r for r in rows}
    xkey, xlabel = ("bpv", "rate (bits per voxel, log scale)") if rate == "bpv" else \
        ("cr", "compression ratio (stored : compressed, log scale)")
    fig, axes = plt.subplots(1, 2, figsize=(16, 6.5))
    finite_psnr = [float(r["psnr_db"]) for r in rows if r.get("psnr_db") is not None and
                   math.isfinite(float(r["psnr_db"]))]
    top = (max(finite_psnr) if finite_psnr else 60.0) + 4
    style_n: dict[str, int] = {}
    for curve in curves:
        pts = [by_label[lab] for lab in curve.labels if lab in by_label]
        if not pts:
            continue
        n = style_n.get(curve.codec, 0)
        style_n[curve.codec] = n + 1
        color, marker, ls = codec_color(curve.codec), MARKERS[n % len(MARKERS)], LINESTYLES[n % len(LINESTYLES)]
        lossy = sorted((r for r in pts if not is_lossless(r)), key=lambda r: float(r[xkey]))
        lossless = [r for r in pts if is_lossless(r)]
        name = curve.key if len(lossy) > 1 else (lossy[0]["label"] if lossy else curve.key)
        for ax, qkey in zip(axes, ("psnr_db", "ssim")):
            if lossy:
                xs = [float(r[xkey]) for r in lossy]
                ys = [float(r[qkey]) if r.get(qkey) is not None else math.nan for r in lossy]
                if qkey == "psnr_db":
                    ys = [v if math.isfinite(v) else top for v in ys]
                ax.plot(xs, ys, linestyle=ls if len(lossy) > 1 else "none", marker=marker, color=color, ms=6,
                        lw=1.6, label=name)
                if len(lossy) > 1 and qkey == "psnr_db":  # knob values once; the SSIM panel stays legible
                    for r, xv, yv in zip(lossy, xs, ys):
                        ax.annotate(knob_text(results, r["label"]), (xv, yv), textcoords="offset points",
                                    xytext=(4, 3), fontsize=7, color=color)
            for r in lossless:
                yv = top if qkey == "psnr_db" else 1.0
                ax.plot([float(r[xkey])], [yv], marker="*", ms=13, color=color, markeredgecolor="black",
                        mew=0.6, linestyle="none", label=f"{r['label']} (lossless)" if qkey == "psnr_db" else None)
    # Clinical limits of this volume's modality/region as vertical lines: points beyond them lie further out.
    first = rows[0]
    raw_bpv = float(first["raw_bytes"]) * 8 / (int(first["slices"]) * int(first["rows"]) * int(first["cols"]))
    for n, (src, limit) in enumerate(sorted((limits or {}).items(), key=lambda kv: kv[1])):
        xv = raw_bpv / limit if xkey == "bpv" else limit
        for ax in axes:
            ax.axvline(xv, color="#444444", lw=1.0, ls=(0, (4, 3)))
            ax.text(xv, 0.02 + 0.06 * n, f" {src} max {limit:g}:1", rotation=0, fontsize=8, color="#444444",
                    ha="left" if xkey == "bpv" else "right", transform=ax.get_xaxis_transform())
    axes[0].axhline(top, color="#999999", lw=0.8, ls=":")
    axes[0].text(0.01, top, " lossless (PSNR = ∞)", va="bottom", fontsize=8, color="#555555",
                 transform=axes[0].get_yaxis_transform())
    axes[0].set_ylabel("PSNR (dB, peak 2^bits - 1)")
    axes[1].set_ylabel("SSIM (mean over slices)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title(f"{volume}: rate vs PSNR")
    axes[1].set_title(f"{volume}: rate vs SSIM")
    h, lab = axes[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False, fontsize=8)
    fig.tight_layout()
    return figs.save(fig, f"rd_{_slug(volume)}", "rd", f"rate-distortion, {volume}", 2,
                     f"{volume}: {xlabel.split(' (')[0]} against PSNR and SSIM. Lines join the settings of one "
                     "codec configuration (knob values annotated); stars are lossless rows; single markers are "
                     "configurations run at one setting. Dashed vertical lines: maximum compression ratios "
                     "recommended for this modality and region (lossy points on the far side are beyond them).")


# ---------------------------------------------------------------- heatmaps

def _pick_labels(lossy: list[dict], limit: int) -> list[str]:
    """At most ``limit`` labels, spread across codecs (round robin) and along each codec's CR range (evenly)."""
    groups: dict[str, list[dict]] = {}
    for r in lossy:
        groups.setdefault(r["codec"], []).append(r)
    if len(lossy) <= limit:
        return [r["label"] for r in lossy]
    per = {k: sorted(v, key=lambda r: float(r["cr"])) for k, v in groups.items()}
    share = {k: 0 for k in per}
    left = limit
    while left:
        for k in per:
            if left and share[k] < len(per[k]):
                share[k] += 1
                left -= 1
    chosen = set()
    for k, rs in per.items():
        idx = np.unique(np.round(np.linspace(0, len(rs) - 1, share[k])).astype(int)) if share[k] else []
        chosen.update(rs[i]["label"] for i in idx)
    return [r["label"] for r in lossy if r["label"] in chosen]


def _load_source(vinfo: dict, hash16: str | None, color: str):
    """The run's volume from its recorded source, read the way the runner read it (series discovery included);
    picked by content hash, so a folder holding several series or changed files cannot give the wrong pixels."""
    from rich.console import Console

    from .volumes import load_inputs

    src = Path(str(vinfo.get("source") or ""))
    if not str(vinfo.get("source") or "") or not src.exists():
        raise MedpipeError(f"{src} does not exist (moved, or the run was made on another machine)")
    volumes, errors = load_inputs([src], Console(quiet=True), {"color": color})
    for vol in volumes:
        if (hash16 and vol.content_hash[:16] == hash16) or (not hash16 and vol.name == vinfo["volume"]):
            vol.name = vinfo["volume"]
            return vol
    if not volumes:
        raise MedpipeError(f"{src} cannot be read now ({'; '.join(errors) or 'no volume found'})")
    raise MedpipeError(f"{src} no longer holds the pixels of the run (content hash differs)")


def decoded_slices(volume, spec, ctx, idx: list[int], row: dict) -> tuple[np.ndarray, str]:
    """The chosen slices after encode + decode with the configuration, mapped back like the bench does."""
    from .depth import plan_depth
    from .metrics import peak, psnr_from_mse

    codec = spec.codec
    codec.check(ctx)
    dmap = plan_depth(volume.value_range, volume.pixels.dtype, codec.depth(), spec.window)
    frames = volume.pixels[idx] if codec.per_slice else volume.pixels
    dec = dmap.inverse(codec.decode(codec.encode(dmap.forward(frames), ctx), ctx))
    note = ""
    if not codec.per_slice:  # the whole volume was coded: check it reproduces the run's PSNR
        diff = volume.pixels.astype(np.int64) - dec.astype(np.int64)
        psnr = psnr_from_mse(float(np.mean(diff.astype(np.float64) ** 2)), peak(volume.span_bits))
        ref = row.get("psnr_db")
        if ref is not None and math.isfinite(float(ref)) and abs(psnr - float(ref)) > 0.05:
            note = f"{spec.label}: re-encoded PSNR {psnr:.2f} dB differs from the run's {float(ref):.2f} dB"
        dec = dec[idx]
    return dec, note


def heatmap_figures(figs: Figures, results: Results, opts: dict, of_label: dict[str, str], console) -> list[str]:
    """Thesis figure 5.1: |error| and local SSIM over the original slice, per lossy configuration, with one
    colour scale per map kind shared by every panel of the slice. Returns notes for the report."""
    from .bench import Context
    from .metrics import peak, ssim_map
    from .preset import parse_codec

    notes: list[str] = []
    preset = results.preset_as_run
    if not preset:
        return ["heatmaps: the results carry no preset as run (results.json provenance); they need it to encode "
                "the slices again - everything else comes from the results file"]
    if not results.volumes:
        return ["heatmaps: results.json lists no volumes (source paths); skipped"]
    specs = {}
    for i, entry in enumerate(preset.get("codecs") or []):
        try:
            s = parse_codec(entry, i, "")
            specs[s.label] = s
        except MedpipeError as exc:
            notes.append(f"heatmaps: codec entry {i} cannot be rebuilt here ({exc})")
    hv = opts["heatmap_volumes"]
    vinfos = [v for v in results.volumes if v["volume"] in hv] if isinstance(hv, list) else results.volumes[:hv]
    if isinstance(hv, list):
        missing = set(hv) - {v["volume"] for v in results.volumes}
        if missing:
            notes.append(f"heatmaps: no volume named {sorted(missing)} in the results")
    ff = (results.provenance.get("ffmpeg") or {}).get("binary")
    ctx = Context(ffmpeg_path=ff if ff and Path(ff).exists() else None)
    for vinfo in vinfos:
        name = vinfo["volume"]
        rows = [r for r in ok_rows(results.rows) if r["volume"] == name and not is_lossless(r)]
        if opts["heatmap_labels"]:
            wanted = [str(x) for x in opts["heatmap_labels"]]
            unknown = [w for w in wanted if w not in {r["label"] for r in rows}]
            for w in unknown:
                notes.append(f"heatmaps: '{w}' is not a lossy configuration of {name}"
                             f"{did_you_mean(w, [r['label'] for r in rows])}")
            rows = [r for r in rows if r["label"] in wanted]
        if not rows:
            notes.append(f"heatmaps: {name} has no lossy rows to show")
            continue
        labels = _pick_labels(rows, int(opts["heatmap_max"]))
        if len(labels) < len(rows):
            notes.append(f"heatmaps for {name}: {len(labels)} of {len(rows)} lossy configurations shown "
                         "(report.heatmap_max / heatmap_labels choose)")
        hash16 = next((str(r["volume_hash"]) for r in rows if r.get("volume_hash")), None)
        try:
            vol = _load_source(vinfo, hash16, str(preset.get("color") or "gray"))
        except MedpipeError as exc:
            notes.append(f"heatmaps for {name}: source not reachable: {exc}; the rest of the report comes from "
                         "the results file")
            continue
        n = vol.shape[0]
        sl = opts["slices"]
        idx = [n // 2] if sl == "middle" else ([sl] if isinstance(sl, int) else list(sl))
        bad = [i for i in idx if not -n <= i < n]
        if bad:
            notes.append(f"heatmaps for {name}: slice(s) {bad} outside 0..{n - 1}; skipped them")
        idx = sorted({i % n for i in idx if -n <= i < n})
        if not idx:
            continue
        decoded: dict[str, np.ndarray] = {}
        for label in labels:
            row = next(r for r in rows if r["label"] == label)
            if label not in specs:
                notes.append(f"heatmaps: configuration '{label}' is not in the preset as run; skipped")
                continue
            t0 = time.perf_counter()
            try:
                dec, note = decoded_slices(vol, specs[label], ctx, idx, row)
            except MedpipeError as exc:
                notes.append(f"heatmaps: {label} could not be encoded here ({exc})")
                continue
            except Exception as exc:  # a codec library's own error: skip this panel, keep the report
                notes.append(f"heatmaps: {label} failed ({type(exc).__name__}: {exc})")
                continue
            if note:
                notes.append(note)
            decoded[label] = dec
            if console is not None:
                console.print(f"[dim]report: {name} · {label} encoded again for heatmaps "
                              f"({time.perf_counter() - t0:.1f} s)[/]", highlight=False)
        if not decoded:
            continue
        base, L = int(vol.value_range[0]), peak(vol.span_bits)
        for k, s in enumerate(idx):
            orig = vol.pixels[s].astype(np.float64)
            errs = {lab: np.abs(orig - d[k].astype(np.float64)) for lab, d in decoded.items()}
            ssims = {lab: ssim_map(orig - base, d[k].astype(np.float64) - base, L) for lab, d in decoded.items()}
            emax = max(1.0, max(float(np.percentile(e, 99.9)) for e in errs.values()))
            smin = min(0.99, min(float(np.percentile(m, 0.1)) for m in ssims.values()))
            labs = list(decoded)
            per_page = 6
            for part, start in enumerate(range(0, len(labs), per_page)):
                chunk = labs[start:start + per_page]
                suffix = f"_{part + 1}" if len(labs) > per_page else ""
                _heatmap_page(figs, vol, s, orig, chunk, errs, ssims, emax, smin, results,
                              f"heatmap_{_slug(name)}_s{s}{suffix}",
                              f"{name}, slice {s}" + (f" (part {part + 1})" if suffix else ""))
    return notes


def _overlay(ax, orig, lo, hi, values, cmap, norm, weight):
    ax.imshow(orig, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    rgba = cmap(norm(values))
    rgba[..., 3] = np.clip(weight, 0, 1) * 0.9  # transparent where nothing changed: the anatomy stays visible
    ax.imshow(rgba, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _heatmap_page(figs, vol, s, orig, labels, errs, ssims, emax, smin, results, name, title):
    plt = _pyplot()
    from matplotlib import colors
    from matplotlib.cm import ScalarMappable

    lo, hi = np.percentile(orig, [0.5, 99.5])
    # Panels are ~400 px wide: reduce big images by blocks so no error peak is lost to resampling
    # (|error| block max, SSIM block min, image block mean).
    f = max(1, math.ceil(max(orig.shape) / 800))
    orig = _blocks(orig, f, np.mean)
    errs = {lab: _blocks(errs[lab], f, np.max) for lab in labels}
    ssims = {lab: _blocks(ssims[lab], f, np.min) for lab in labels}
    k = len(labels)
    fig, axes = plt.subplots(2, k + 1, figsize=(3.2 * (k + 1) + 1.2, 7.4), squeeze=False)
    ecmap, scmap = plt.get_cmap("inferno"), plt.get_cmap("viridis")
    enorm = colors.PowerNorm(0.5, 0, emax, clip=True)  # square root: small errors stay visible next to large
    snorm = colors.Normalize(smin, 1.0, clip=True)
    axes[0, 0].imshow(orig, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    axes[0, 0].set_title("original", fontsize=9)
    axes[0, 0].set_xticks([])
    axes[0, 0].set_yticks([])
    axes[1, 0].axis("off")
    unit = "HU" if vol.modality == "CT" and vol.rescale_slope == 1 else "stored values"
    axes[1, 0].text(0, 0.95, f"{vol.name}\nslice {s} of {vol.shape[0]}\n{vol.shape[1]} x {vol.shape[2]} px\n\n"
                             f"top: |error| ({unit})\nbottom: local SSIM\n(11x11 Gaussian window)\n\n"
                             "colour = value; clear\nwhere unchanged", va="top", fontsize=8,
                    transform=axes[1, 0].transAxes)
    by_label = {r["label"]: r for r in results.rows if r["volume"] == vol.name}
    for j, lab in enumerate(labels, start=1):
        r = by_label.get(lab, {})
        _overlay(axes[0, j], orig, lo, hi, errs[lab], ecmap, enorm,
                 np.where(errs[lab] > 0, 0.2 + 0.8 * enorm(errs[lab]), 0.0))
        _overlay(axes[1, j], orig, lo, hi, ssims[lab], scmap, snorm,
                 np.clip((1 - ssims[lab]) / max(1e-9, 1 - smin), 0, 1))
        cr = r.get("cr")
        wrapped = "\n".join(_wrap(lab, 30))
        axes[0, j].set_title(f"{wrapped}\nCR {float(cr):.1f}, max err {r.get('max_abs_err')}" if cr else wrapped,
                             fontsize=8)
        sl_ssim = float(np.mean(ssims[lab][5:-5, 5:-5]))
        axes[1, j].set_title(f"slice SSIM {sl_ssim:.4f}", fontsize=8)
    cb1 = fig.colorbar(ScalarMappable(enorm, ecmap), ax=list(axes[0, 1:]), fraction=0.02, pad=0.01, extend="max")
    cb1.set_ticks(sorted({round(emax * g * g, 1 if emax < 20 else 0) for g in (0, 0.25, 0.5, 0.75, 1)}))
    cb1.set_label(f"|error| ({unit}, square-root scale)")
    cb2 = fig.colorbar(ScalarMappable(snorm, scmap), ax=list(axes[1, 1:]), fraction=0.02, pad=0.01,
                       extend="min")
    cb2.set_label("local SSIM")
    fig.suptitle(f"Where compression changed the image: {title} (one colour scale per row)", fontsize=11)
    figs.save(fig, name, "heatmap", title, 2 * k + 1,
              f"{title}: |error| (top) and local SSIM (bottom) over the original slice for {k} lossy "
              "configuration(s); colour scales shared across the row.")


def _blocks(img: np.ndarray, f: int, fn) -> np.ndarray:
    if f == 1:
        return img
    h, w = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    return fn(img[:h, :w].reshape(h // f, f, w // f, f), axis=(1, 3))


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [text]


# ---------------------------------------------------------------- BD table

def resolve_reference(wanted: str | None, curves: list[Curve], of_label: dict[str, str],
                      swept: list[str]) -> tuple[str | None, str]:
    """Reference curve key from a row label, curve name or codec name; (key, note)."""
    if not swept:
        return None, "no codec configuration sweeps a quality knob (two or more lossy settings): no BD table"
    if wanted:
        if wanted in of_label and of_label[wanted] in swept:
            return of_label[wanted], ""
        if wanted in swept:
            return wanted, ""
        by_codec = [k for k in swept if next(c for c in curves if c.key == k).codec == wanted]
        if by_codec:
            return by_codec[0], ""
        return swept[0], (f"report.reference '{wanted}' is not a swept curve, a label in one or a codec"
                          f"{did_you_mean(wanted, swept + list(of_label))}; using '{swept[0]}'")
    return swept[0], ""


def bd_table(results: Results, curves: list[Curve], of_label: dict[str, str], reference: str | None):
    """Rows of the Bjøntegaard table per volume, the reference key used and notes."""
    notes: list[str] = []
    rows = [r for r in ok_rows(results.rows) if not is_lossless(r)]
    table = []
    ref_key = None
    for volume in dict.fromkeys(r["volume"] for r in rows):
        vrows = [r for r in rows if r["volume"] == volume]
        pts: dict[str, list[dict]] = {}
        for r in vrows:
            pts.setdefault(of_label.get(r["label"], r["label"]), []).append(r)
        swept = [c.key for c in curves if len({(r["bpv"], r["psnr_db"]) for r in pts.get(c.key, [])
                                               if r.get("psnr_db") is not None
                                               and math.isfinite(float(r["psnr_db"]))}) >= 2]
        ref_key, note = resolve_reference(reference, curves, of_label, swept)
        if note and note not in notes:
            notes.append(note)
        if ref_key is None:
            continue
        ref = pts[ref_key]

        def series(rs, q):
            return [float(r["bpv"]) for r in rs], [float(r[q]) if r.get(q) is not None else math.nan for r in rs]

        for key in swept:
            test = pts[key]
            rr, rq = series(ref, "psnr_db")
            tr, tq = series(test, "psnr_db")
            _, rs = series(ref, "ssim")
            _, ts = series(test, "ssim")
            overlap = (max(min(rq), min(tq)), min(max(rq), max(tq)))
            table.append({"volume": volume, "curve": key, "points": len(test), "reference": ref_key,
                          "bd_rate_psnr": bd_rate(rr, rq, tr, tq), "bd_psnr_db": bd_quality(rr, rq, tr, tq),
                          "bd_rate_ssim": bd_rate(rr, rs, tr, ts),
                          "psnr_overlap": overlap if overlap[1] > overlap[0] else None})
    vols = list(dict.fromkeys(t["volume"] for t in table))
    if len(vols) > 1:  # the data set's view: mean over the volumes where a value exists
        for key in dict.fromkeys(t["curve"] for t in table):
            ts = [t for t in table if t["curve"] == key]

            def mean(k):
                vals = [t[k] for t in ts if t[k] is not None]
                return float(np.mean(vals)) if vals else None

            table.append({"volume": f"mean of {len([t for t in ts if t['bd_rate_psnr'] is not None])}/{len(vols)}",
                          "curve": key, "points": sum(t["points"] for t in ts), "reference": ts[0]["reference"],
                          "bd_rate_psnr": mean("bd_rate_psnr"), "bd_psnr_db": mean("bd_psnr_db"),
                          "bd_rate_ssim": mean("bd_rate_ssim"), "psnr_overlap": None})
    return table, ref_key, notes


# ---------------------------------------------------------------- pages

def _f(v, spec=".2f", dash="-"):
    if v is None or v == "":
        return dash
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return str(v)


SUMMARY_COLS = ["configuration", "CR", "bpv", "PSNR dB", "SSIM", "max err", "enc s", "dec s", "clinical"]


def summary_rows(rows: list[dict], flags: list[dict]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for r, f in zip(rows, flags):
        ok = r.get("status") == "ok"
        out.setdefault(r["volume"], []).append([
            r["label"], _f(r["cr"]) if ok else "-", _f(r["bpv"], ".3f") if ok else "-",
            _f(r["psnr_db"]) if ok else "-", _f(r["ssim"], ".5f") if ok else "-",
            _f(r["max_abs_err"], ".0f") if ok else "-",
            _f((r["encode_ms"] or 0) / 1000, ".2f") if ok else "-", _f((r["decode_ms"] or 0) / 1000, ".2f")
            if ok else "-", f["clinical_flag"] if ok else f"{r.get('status')}: {r.get('reason') or ''}"])
    return out


FLAG_CSS = {"within": "ok", "lossless": "ok", "within (near-lossless)": "ok", "beyond": "bad",
            "beyond: near-lossless only": "bad"}


def _html_table(head: list[str], body: list[list[str]], flag_col: int | None = None) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in body:
        cells = []
        for i, c in enumerate(row):
            cls = ""
            if i == flag_col:
                cls = FLAG_CSS.get(c, "mixed" if c.startswith("within ") else "")
            cells.append(f"<td class='{cls}'>{html.escape(str(c))}</td>" if cls else f"<td>{html.escape(str(c))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _md_table(head: list[str], body: list[list[str]]) -> str:
    esc = [[str(c).replace("|", "\\|") for c in row] for row in body]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                     ["| " + " | ".join(row) + " |" for row in esc])


def bd_body(table: list[dict]) -> list[list[str]]:
    return [[t["volume"], t["curve"] + (" (reference)" if t["curve"] == t["reference"] else ""), str(t["points"]),
             _f(t["bd_rate_psnr"], "+.1f") + (" %" if t["bd_rate_psnr"] is not None else " (no overlap)"),
             _f(t["bd_psnr_db"], "+.2f", "- (no rate overlap)"), _f(t["bd_rate_ssim"], "+.1f") + (" %" if t["bd_rate_ssim"] is not None
                                                                           else ""),
             f"{t['psnr_overlap'][0]:.1f}-{t['psnr_overlap'][1]:.1f}" if t["psnr_overlap"] else "-"]
            for t in table]


BD_HEAD = ["volume", "curve", "points", "BD-rate (PSNR)", "BD-PSNR dB", "BD-rate (SSIM)", "PSNR overlap dB"]
BD_NOTE = ("Bjøntegaard delta: average difference in rate (bits per voxel) at equal quality against the "
           "reference curve, over the quality range both cover (log rate interpolated piecewise-cubically, "
           "PCHIP, as in the revised VCEG/JVET method). Negative BD-rate = fewer bits for the same quality. "
           f"Lossless points are not part of the curves. '-': the curves share less than {MIN_OVERLAP:.0%} of "
           "the shorter one's range.")


def write_pages(out: Path, results: Results, opts: dict, figs: Figures, flags: list[dict], limits: Limits,
                table: list[dict], ref_key: str | None, notes: list[str]) -> tuple[Path, Path]:
    from .results import atomic_write_text

    prov = results.provenance or {}
    preset = (prov.get("preset") or {})
    title = f"medpipe report: {results.folder.name}"
    summary = summary_rows(results.rows, flags)
    used_rules = sorted({f["clinical_rule"] for f in flags if f["clinical_rule"]})
    rules = {r["id"]: r for r in limits.rules}
    limit_body = [[rules[i]["id"], rules[i].get("name", ""),
                   *[("near-lossless only" if rules[i].get("near_lossless_only") else
                      (f"{v}:1" if (v := (rules[i].get("max_cr") or {}).get(s)) else "-"))
                     for s in limits.sources]] for i in used_rules]
    limit_head = ["rule", "modality / region", *[limits.sources[s].get("name", s) for s in limits.sources]]
    src_lines = [f"{s}: {d.get('name', s)}. {d.get('citation', '')}" for s, d in limits.sources.items()]
    run_line = (f"run started {prov.get('started', '?')}, preset {preset.get('path') or '?'}, "
                f"{len(results.volumes) or len({r['volume'] for r in results.rows})} volume(s), "
                f"{len(results.rows)} rows; source: {results.source}")
    vol_head = ["volume", "modality", "body part", "slices x rows x cols", "bits", "source"]
    vol_body = [[v["volume"], v.get("modality") or "-", v.get("body_part") or "-",
                 " x ".join(map(str, v.get("shape", []))), str(v.get("span_bits", "")), v.get("source", "")]
                for v in results.volumes]

    # ---- HTML (self-contained)
    css = ("body{font-family:system-ui,Segoe UI,Arial,sans-serif;margin:2em;max-width:1900px;color:#222}"
           "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}"
           "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}"
           "td:first-child,th:first-child{text-align:left}td.ok{background:#d9f0e3}td.bad{background:#f9d6c9}"
           "td.mixed{background:#fcefc7}img{max-width:100%;border:1px solid #ddd;margin:0.3em 0}"
           "figure{margin:1em 0}figcaption{font-size:13px;color:#444}.note{color:#8a4b00}")
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
         f"<style>{css}</style></head><body>", f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(run_line)}</p>"]
    if vol_body:
        h += ["<h2>Volumes</h2>", _html_table(vol_head, vol_body)]
    h.append("<h2>Results and clinical flags</h2>")
    h.append("<p>Each lossy row is compared with the maximum compression ratio recommended for its modality and "
             "region (<a href='#limits'>limits below</a>): <b>within</b> / <b>beyond</b> per source. Lossless rows "
             "need no limit. A flag is a guide, not a clinical approval: the reading radiologist decides.</p>")
    for vol, body in summary.items():
        h += [f"<h3>{html.escape(vol)}</h3>", _html_table(SUMMARY_COLS, body, flag_col=len(SUMMARY_COLS) - 1)]
        for f, r in zip(flags, results.rows):
            if r["volume"] == vol and f["clinical_note"]:
                h.append(f"<p class='note'>{html.escape(f['clinical_note'])}</p>")
                break
    h.append("<h2>Bjøntegaard delta</h2>")
    if table:
        h += [f"<p>Reference: <b>{html.escape(ref_key or '')}</b>. {html.escape(BD_NOTE)}</p>",
              _html_table(BD_HEAD, bd_body(table))]
    else:
        h.append("<p>No curves to compare: a BD table needs configurations that sweep a quality knob (CRF, NEAR, "
                 "J2K rate) with at least two lossy settings each (see presets/headct_rd.yaml).</p>")
    for kind, heading in (("rd", "Rate-distortion"), ("bars", "Per data set and modality"),
                          ("heatmap", "Where compression changed the image")):
        items = [i for i in figs.items if i["kind"] == kind]
        if not items:
            continue
        h.append(f"<h2>{heading}</h2>")
        for it in items:
            data = base64.b64encode((figs.folder / it["file"]).read_bytes()).decode()
            h.append(f"<figure><img alt='{html.escape(it['title'])}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(it['caption'])}</figcaption></figure>")
    h += ["<h2 id='limits'>Clinical limits used</h2>", _html_table(limit_head, limit_body) if limit_body else
          "<p>No lossy row matched a rule.</p>",
          f"<p>Near-lossless: max |error| &le; {limits.near_lossless} stored values. Thresholds from "
          f"<code>{html.escape(str(limits.path))}</code> (editable).</p><ul>"]
    h += [f"<li>{html.escape(s)}</li>" for s in src_lines] + ["</ul>"]
    if notes:
        h += ["<h2>Notes</h2><ul>"] + [f"<li class='note'>{html.escape(n)}</li>" for n in notes] + ["</ul>"]
    h.append(f"<h2>Provenance</h2><p>{html.escape(str(prov.get('timing', '')))}</p>"
             f"<p>{html.escape(str(prov.get('metrics', '')))}</p>"
             f"<p>python {html.escape(str(prov.get('python', '?')))}, {html.escape(str(prov.get('platform', '?')))}"
             f"; libraries: {html.escape(', '.join(f'{k} {v}' for k, v in (prov.get('libraries') or {}).items()))}"
             "</p></body></html>")
    html_path = out / "report.html"
    atomic_write_text(html_path, "\n".join(h))

    # ---- Markdown (links the PNGs)
    m = [f"# {title}", "", run_line, ""]
    m += ["## Results and clinical flags", ""]
    for vol, body in summary.items():
        m += [f"### {vol}", "", _md_table(SUMMARY_COLS, body), ""]
    m += ["## Bjøntegaard delta", ""]
    m += ([f"Reference: **{ref_key}**. {BD_NOTE}", "", _md_table(BD_HEAD, bd_body(table)), ""] if table
          else ["No swept curves (no BD table).", ""])
    m += ["## Figures", ""]
    for it in figs.items:
        m += [f"![{it['title']}](figures/{it['file']})", "", f"*{it['caption']}*", ""]
    m += ["## Clinical limits used", ""]
    m += ([_md_table(limit_head, limit_body), ""] if limit_body else [])
    m += [f"- {s}" for s in src_lines] + [f"- thresholds file: `{limits.path}`", ""]
    if notes:
        m += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    md_path = out / "summary.md"
    atomic_write_text(md_path, "\n".join(m))
    return html_path, md_path


def write_flagged_csv(path: Path, results: Results, flags: list[dict]) -> None:
    from .bench import COLUMNS
    from .results import _cell, atomic_write_text

    extra = list(flags[0]) if flags else []
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS + extra, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r, f in zip(results.rows, flags):
        w.writerow({**{k: _cell(r.get(k)) for k in COLUMNS}, **{k: _cell(v) for k, v in f.items()}})
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------- entry points

def _groups(results: Results) -> list[tuple[str, str, list[str]]]:
    """(title, file name, volumes) for bar charts: each data set, then each modality not already shown."""
    vols = results.volumes or [{"volume": v, "source": "", "modality": next(
        (r.get("modality") for r in results.rows if r["volume"] == v), "")}
        for v in dict.fromkeys(r["volume"] for r in results.rows)]
    parents: dict[str, list[str]] = {}
    for v in vols:
        src = Path(str(v.get("source") or ""))
        parents.setdefault(v.get("dataset") or (src.parent.name if str(src) not in ("", ".") else ""), []
                           ).append(v["volume"])
    datasets: dict[str, list[str]] = {}
    for parent, names in parents.items():
        if len(names) > 1 and parent:
            datasets[parent] = names
        else:
            for n in names:
                datasets[n] = [n]
    out = [(f"data set {k}", f"bars_dataset_{_slug(k)}", v) for k, v in datasets.items()]
    seen = {tuple(sorted(v)) for v in datasets.values()}
    modalities: dict[str, list[str]] = {}
    for v in vols:
        modalities.setdefault(v.get("modality") or "unknown", []).append(v["volume"])
    for mod, names in modalities.items():
        if tuple(sorted(names)) in seen:
            out = [(t + f" = modality {mod}", f, n) if tuple(sorted(n)) == tuple(sorted(names)) else (t, f, n)
                   for t, f, n in out]
        else:
            out.append((f"modality {mod}", f"bars_modality_{_slug(mod)}", names))
    return out


def build_report(results_folder: Path | str, options: Any = True, console=None) -> Path:
    """Write the report for a results folder; returns the path of report.html."""
    t0 = time.perf_counter()
    opts = check_options(options)
    results = load_results(Path(results_folder))
    if not results.rows:
        raise MedpipeError(f"{results_folder}: the results hold no rows; nothing to report")
    limits = load_limits(opts["clinical_limits"])
    out = results.folder / str(opts["folder"])
    figs = Figures(out / "figures", int(opts["dpi"]))
    for old in figs.folder.glob("*.png"):  # a report written again must not keep figures of the last one
        old.unlink()
    notes: list[str] = []
    curves, of_label = families(results)
    flags = clinical_flags(results.rows, limits, opts["regions"])
    table, ref_key, bd_notes = bd_table(results, curves, of_label, opts["reference"])
    notes += bd_notes
    for vol in dict.fromkeys(r["volume"] for r in results.rows):
        vflags = [f for f, r in zip(flags, results.rows) if r["volume"] == vol and f["clinical_rule"]]
        vlimits = {s: float(vflags[0][f"max_cr_{s}"]) for s in limits.sources
                   if vflags and vflags[0].get(f"max_cr_{s}")}
        rd_figure(figs, results, vol, curves, opts["rate"], vlimits)
    for title, name, vols in _groups(results):
        bar_figure(figs, [r for r in results.rows if r["volume"] in vols], title, name)
    if opts["heatmaps"]:
        notes += heatmap_figures(figs, results, opts, of_label, console)
    else:
        notes.append("heatmaps: off (report.heatmaps: false)")
    if opts["flagged_csv"]:
        write_flagged_csv(out / "results_flagged.csv", results, flags)
    from .results import atomic_write_text

    atomic_write_text(out / "figures.json", json.dumps(figs.items, indent=1))
    html_path, md_path = write_pages(out, results, opts, figs, flags, limits, table, ref_key, notes)
    if console is not None:
        beyond = sum(1 for f in flags if f["clinical_flag"].startswith("beyond"))
        for n in notes:
            console.print(f"[yellow]report:[/] {n}", highlight=False)
        console.print(f"report: [bold]{html_path}[/] ({len(figs.items)} figures, {md_path.name}; "
                      f"{beyond} lossy row(s) beyond a clinical limit; {time.perf_counter() - t0:.0f} s)",
                      highlight=False)
    return html_path


def main(argv: list[str] | None = None) -> int:
    """``run.py report RESULTS_DIR [--reference X] [--slices N ...] [--no-heatmaps] [--limits FILE]``."""
    from rich.console import Console

    p = argparse.ArgumentParser(prog="run.py report", description="Figures, rate-distortion curves, BD-rates, "
                                "heatmaps and clinical flags for a results folder (written to RESULTS_DIR/report).")
    p.add_argument("results", type=Path, help="results folder of a run (holds results.json / results.csv)")
    p.add_argument("--reference", help="BD-rate reference: row label, curve name or codec name")
    p.add_argument("--slices", type=int, nargs="+", help="slice indices for heatmaps (default: the middle)")
    p.add_argument("--no-heatmaps", action="store_true", help="skip heatmaps (no re-encoding)")
    p.add_argument("--limits", help="clinical limits YAML (default: medpipe/clinical_limits.yaml)")
    p.add_argument("--rate", choices=["bpv", "cr"], help="rate axis of RD figures")
    args = p.parse_args(argv)
    results = load_results(args.results)
    as_run = (results.preset_as_run or {}).get("report")
    options = dict(as_run) if isinstance(as_run, dict) else {}
    check_options(options, "report (preset as run)")
    for key, value in (("reference", args.reference), ("slices", args.slices), ("clinical_limits", args.limits),
                       ("rate", args.rate)):
        if value is not None:
            options[key] = value
    if args.no_heatmaps:
        options["heatmaps"] = False
    console = Console()
    build_report(args.results if args.results.is_dir() else args.results.parent, options, console)
    return 0
