"""Heatmaps (thesis fig. 5.1): |error| and local SSIM over the original slice, per lossy configuration.

The run keeps the chosen slices (original and restored, :func:`medpipe.results.write_slices`) while it codes them,
so the report draws these figures from files: nothing is encoded again and no codec is imported here.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from ..metrics import ssim_map
from ..options import did_you_mean
from ..results import read_slices
from .figures import Figures, pyplot, slug
from .load import Results, is_lossless, ok_rows


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



def heatmap_plan(opts: dict | None, volume_names: list[str]) -> dict[str, tuple]:
    """Which slices of which volumes the run keeps for heatmaps (volume name -> slice indices; 'middle' -> -1)."""
    if not opts or not opts["heatmaps"]:
        return {}
    hv = opts["heatmap_volumes"]
    names = [n for n in volume_names if n in hv] if isinstance(hv, list) else volume_names[:hv]
    sl = opts["slices"]
    idx = (MIDDLE,) if sl == "middle" else ((sl,) if isinstance(sl, int) else tuple(sl))
    return {n: idx for n in names}


MIDDLE = -(2**31)  # placeholder the runner resolves per volume (its middle slice)


def heatmap_figures(figs: Figures, results: Results, opts: dict, console) -> list[str]:
    """Thesis figure 5.1: |error| and local SSIM over the original slice, per lossy configuration, with one
    colour scale per map kind shared by every panel of the slice, from the slices the run kept.
    Returns notes for the report."""
    notes: list[str] = []
    facts, arrays = read_slices(results.folder)
    if not facts:
        return ["heatmaps: the run kept no slices (report.heatmaps was off when it ran, or the results were made "
                "by an older medpipe); run the preset again with report.heatmaps: true"]
    hv = opts["heatmap_volumes"]
    if isinstance(hv, list):
        missing = set(hv) - set(facts)
        if missing:
            notes.append(f"heatmaps: no slices kept for volume(s) {sorted(missing)}")
    for name, vinfo in facts.items():
        rows = [r for r in ok_rows(results.rows) if r["volume"] == name and not is_lossless(r)]
        if opts["heatmap_labels"]:
            wanted = [str(x) for x in opts["heatmap_labels"]]
            for w in wanted:
                if w not in {r["label"] for r in rows}:
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
        vol = SimpleNamespace(**vinfo, name=name)
        for s in vinfo["slices"]:
            if (name, None, s) not in arrays:
                continue
            orig = arrays[(name, None, s)].astype(np.float64)
            decoded = {lab: arrays[(name, lab, s)] for lab in labels if (name, lab, s) in arrays}
            if not decoded:
                notes.append(f"heatmaps for {name}: no kept slice {s} for the chosen configurations")
                continue
            base, L = int(vinfo["value_min"]), (1 << int(vinfo["span_bits"])) - 1
            errs = {lab: np.abs(orig - d.astype(np.float64)) for lab, d in decoded.items()}
            ssims = {lab: ssim_map(orig - base, d.astype(np.float64) - base, L) for lab, d in decoded.items()}
            emax = max(1.0, max(float(np.percentile(e, 99.9)) for e in errs.values()))
            smin = min(0.99, min(float(np.percentile(m, 0.1)) for m in ssims.values()))
            labs = list(decoded)
            per_page = 6
            for part, start in enumerate(range(0, len(labs), per_page)):
                chunk = labs[start:start + per_page]
                suffix = f"_{part + 1}" if len(labs) > per_page else ""
                _heatmap_page(figs, vol, s, orig, chunk, errs, ssims, emax, smin, results,
                              f"heatmap_{slug(name)}_s{s}{suffix}",
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
    plt = pyplot()
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
