"""Figures: bar charts per data set and modality, rate-distortion curves; saved as PNG (temporary name, then
rename) with what each shows recorded for figures.json."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..errors import MedpipeError
from ..files import atomic_file
from .load import Curve, Results, is_lossless, knob_text, ok_rows

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
        try:
            with atomic_file(path) as fh:
                fig.savefig(fh, format="png", dpi=self.dpi, bbox_inches="tight", facecolor="white")
        finally:
            plt.close(fig)
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


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60] or "x"


def pyplot():
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
    plt = pyplot()
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
    plt = pyplot()
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
    return figs.save(fig, f"rd_{slug(volume)}", "rd", f"rate-distortion, {volume}", 2,
                     f"{volume}: {xlabel.split(' (')[0]} against PSNR and SSIM. Lines join the settings of one "
                     "codec configuration (knob values annotated); stars are lossless rows; single markers are "
                     "configurations run at one setting. Dashed vertical lines: maximum compression ratios "
                     "recommended for this modality and region (lossy points on the far side are beyond them).")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both), by x descending."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best_y = [], -math.inf
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


PARETO_SPEEDS = [("encode_ms", "encode"), ("decode_ms", "decode")]


def pareto_figure(figs: Figures, results: Results, volume: str) -> dict | None:
    """Lossless trade-off: CR against encode and decode speed (MB/s of stored data, log) for the rows that are
    lossless and decoded bit-exact; the Pareto front (no other row both faster and smaller) as a line. Drawn when
    the volume has at least two such rows."""
    rows = [r for r in ok_rows(results.rows) if r["volume"] == volume and is_lossless(r)
            and all(r.get(k) not in (None, "") and float(r[k]) > 0 for k, _ in PARETO_SPEEDS)]
    if len(rows) < 2:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(16, 6.5))
    for ax, (key, what) in zip(axes, PARETO_SPEEDS):
        pts = [(float(r["raw_bytes"]) / float(r[key]) / 1e3, float(r["cr"])) for r in rows]
        front = pareto_front(pts)
        fx, fy = zip(*sorted(pts[i] for i in front))
        ax.plot(fx, fy, "-", color="#444444", lw=1.2, zorder=1, label="Pareto front")
        for i, (r, (xv, yv)) in enumerate(zip(rows, pts)):
            on = i in front
            ax.plot([xv], [yv], "o", ms=8 if on else 6, color=codec_color(r["codec"]), zorder=2,
                    markeredgecolor="black" if on else "none", mew=0.8)
            ax.annotate(r["label"], (xv, yv), textcoords="offset points", xytext=(5, 4), fontsize=7,
                        color="#222222" if on else "#666666")
        ax.set_xscale("log")
        ax.set_xlabel(f"{what} speed (MB/s of stored data, log scale)")
        ax.set_ylabel("compression ratio (stored : compressed)")
        ax.set_title(f"{volume}: lossless CR vs {what} speed")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower left", frameon=False, fontsize=8)
    fig.tight_layout()
    timing = str((results.provenance or {}).get("timing") or "")
    return figs.save(fig, f"pareto_{slug(volume)}", "pareto", f"lossless trade-off, {volume}", 2,
                     f"{volume}: compression ratio against encode and decode speed of every lossless row that "
                     f"decoded bit-exact ({len(rows)} rows). Outlined points form the Pareto front (the line): no "
                     "other row is both faster and smaller. " + (f"Timing: {timing}" if timing else ""))



def report_groups(results: Results) -> list[tuple[str, str, list[str]]]:
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
    out = [(f"data set {k}", f"bars_dataset_{slug(k)}", v) for k, v in datasets.items()]
    seen = {tuple(sorted(v)) for v in datasets.values()}
    modalities: dict[str, list[str]] = {}
    for v in vols:
        modalities.setdefault(v.get("modality") or "unknown", []).append(v["volume"])
    for mod, names in modalities.items():
        if tuple(sorted(names)) in seen:
            out = [(t + f" = modality {mod}", f, n) if tuple(sorted(n)) == tuple(sorted(names)) else (t, f, n)
                   for t, f, n in out]
        else:
            out.append((f"modality {mod}", f"bars_modality_{slug(mod)}", names))
    return out
