"""Bjøntegaard deltas: average rate difference at equal quality (and quality at equal rate) between curves."""
from __future__ import annotations

import math

import numpy as np

from ..options import did_you_mean
from .load import Curve, Results, is_lossless, ok_rows


def _integral(x, y, lo, hi) -> float:
    """Integral over [lo, hi] of the shape-preserving piecewise-cubic (PCHIP, Fritsch-Carlson) interpolant of (x, y)."""
    # imported here, not at the top: scipy.interpolate is slow to import and every preset load imports the report
    from scipy.interpolate import PchipInterpolator

    return float(PchipInterpolator(x, y).integrate(lo, hi))


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
