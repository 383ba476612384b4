#!/usr/bin/env python3
"""The intertwined-archive comparison (thesis figs 5.10-5.13) on ../shared/data: for each group, one stream vs the
same scans coded separately with the same settings; lossless rows compare bytes directly, lossy rows run a CRF
ladder for both and compare at equal PSNR. Writes results.csv / results.json / gains.csv under --out.

    python bench/archive_gain.py                      # all groups, x265 preset medium (about 30-40 min, 2 cores)
    python bench/archive_gain.py --groups phantom --slices 16 --preset fast   # a quick look
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medpipe.archive.compare import COLUMNS, gain_equal_psnr, measure  # noqa: E402
from medpipe.codecs import CodecContext  # noqa: E402
from medpipe.errors import MedpipeError  # noqa: E402
from medpipe.files import atomic_write_text  # noqa: E402
from medpipe.results import library_versions, write_csv  # noqa: E402
from medpipe.volumes import load_volume  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GROUPS = {
    "phantom": ["ct_head/philips_phantom_stereotaxis_a", "ct_head/philips_phantom_stereotaxis_b"],
    "chest_same_patient": ["ct_chest/acrin_flt_breast_001/series_2_805941",
                           "ct_chest/acrin_flt_breast_001/series_2_729346"],
    "head_ct": ["ct_head/cq500_ct0", "ct_head/cq500_ct5", "ct_head/ge_dcmqa_human",
                "ct_head/philips_phantom_stereotaxis_a", "ct_head/philips_phantom_stereotaxis_b"],
}
# encoder settings tried for the video codecs (the same settings are used for the separate baseline)
X265_VARIANTS = {
    "default": "",
    # no I-frame at every switch between scans; every P/B frame may reach 5 references
    "nocut-ref5": "scenecut=0:ref=5",
}


def lossless_plan(preset: str, full: bool) -> list[tuple[dict, list[tuple[str, str]]]]:
    """(codec entry, [(order, variant), ...]) for lossless rows; ``full`` adds the ideas (variants)."""
    x = {"codec": "x265", "bits": 12, "lossless": True, "preset": preset}
    orders = [("sequential", ""), ("interleave", ""), ("similarity", "")]
    plan = [({**x, "label": "x265 lossless 12-bit"},
             orders + ([("interleave", "aligned"), ("interleave", "centroid")] if full else []))]
    if full:
        plan += [({**x, "x265_params": X265_VARIANTS["nocut-ref5"], "label": "x265 lossless 12-bit scenecut=0 ref=5"},
                  [("interleave", "")]),
                 ({"codec": "ffv1", "bits": 16, "label": "ffv1 16-bit"}, [("sequential", "")])]
    return plan


def lossy_plan(preset: str, full: bool) -> list[tuple[dict, list[tuple[str, str]]]]:
    x = {"codec": "x265", "bits": 12, "preset": preset}
    orders = [("sequential", ""), ("interleave", ""), ("similarity", "")]
    plan = [({**x, "label": "x265 12-bit crf"}, orders + ([("interleave", "centroid")] if full else []))]
    if full:
        plan += [({**x, "x265_params": X265_VARIANTS["nocut-ref5"], "label": "x265 12-bit crf scenecut=0 ref=5"},
                  [("interleave", "")]),
                 ({"codec": "x264", "bits": 10, "preset": preset, "label": "x264 10-bit crf"},
                  [("sequential", ""), ("interleave", "")])]
    return plan


def load_group(rels: list[str], slices: int | None):
    vols = []
    for rel in rels:
        v = load_volume(DATA / rel)
        if slices and v.shape[0] > slices:  # the middle slices: a quick look, not the reported numbers
            mid = v.shape[0] // 2
            v.pixels = v.pixels[mid - slices // 2: mid - slices // 2 + slices].copy()
            v.__dict__.pop("value_range", None)
        vols.append(v)
    return vols


def run_row(vols, entry, ctx, mode, order, variant, group, console) -> dict:
    t0 = time.perf_counter()
    try:
        row = measure(vols, entry, ctx, mode, order, variant)
    except MedpipeError as exc:
        row = {"codec": entry["codec"], "setting": entry.get("label", ""), "mode": mode, "order": order,
               "variant": variant, "crf": entry.get("crf"), "status": "skipped", "reason": str(exc)}
    row["group"] = group
    row["setting"] = entry.get("label", row.get("setting"))
    desc = f"{mode}{'/' + order if mode == 'intertwined' else ''}{'+' + variant if variant else ''}"
    if row["status"] == "ok":
        console.print(f"  {group} | {row['setting']}{' crf ' + str(entry['crf']) if 'crf' in entry else ''} | "
                      f"{desc}: {row['compressed_bytes']:,} B, CR {row['cr']:.2f}, PSNR {row['psnr_db']:.2f}, "
                      f"{time.perf_counter() - t0:.0f} s", highlight=False)
    else:
        console.print(f"  {group} | {row['setting']} | {desc}: [yellow]{row['status']}[/] {row['reason']}")
    return row


def gains(rows: list[dict]) -> list[dict]:
    """Lossless: gain = separate/intertwined bytes per (group, setting). Lossy: gain at equal PSNR over the ladder."""
    out = []
    ok = [r for r in rows if r.get("status") == "ok"]
    keys = dict.fromkeys((r["group"], r["setting"], bool(r["lossless"])) for r in ok)
    for group, setting, lossless in keys:
        rs = [r for r in ok if r["group"] == group and r["setting"] == setting]
        sep = [r for r in rs if r["mode"] == "separate"]
        for (order, variant) in dict.fromkeys((r["order"], r["variant"]) for r in rs if r["mode"] == "intertwined"):
            it = [r for r in rs if r["mode"] == "intertwined" and r["order"] == order and r["variant"] == variant]
            if lossless:
                s = [r for r in sep if r["variant"] == ("aligned" if variant == "aligned" else "")] or sep
                if not s:
                    continue
                g = s[0]["compressed_bytes"] / it[0]["compressed_bytes"]
                out.append({"group": group, "setting": setting, "lossless": True, "order": order, "variant": variant,
                            "separate_bytes": s[0]["compressed_bytes"], "intertwined_bytes": it[0]["compressed_bytes"],
                            "gain": g, "psnr_range": "", "separate_enc_ms": s[0]["encode_ms"],
                            "intertwined_enc_ms": it[0]["encode_ms"]})
            else:
                sp = [(r["psnr_db"], r["compressed_bytes"]) for r in sep if r["variant"] == ""]
                ip = [(r["psnr_db"], r["compressed_bytes"]) for r in it]
                if len(sp) < 2 or len(ip) < 2:
                    continue
                g, rng = gain_equal_psnr(sp, ip)
                out.append({"group": group, "setting": setting, "lossless": False, "order": order, "variant": variant,
                            "separate_bytes": "", "intertwined_bytes": "", "gain": g,
                            "psnr_range": f"{rng[0]:.2f}-{rng[1]:.2f}" if rng else "no overlap",
                            "separate_enc_ms": sum(r["encode_ms"] for r in sep),
                            "intertwined_enc_ms": sum(r["encode_ms"] for r in it)})
    return out


def predictability(vols, console) -> list[dict]:
    """Why intertwining cannot gain much: per frame, the MSE to its own previous slice vs to the best whole slice of
    another scan of the group (after the integer alignment of the 'aligned' variant). No motion compensation, so
    both are upper bounds of what an encoder's prediction leaves; their ratio is the point."""
    import numpy as np

    from medpipe.archive.compare import align_shifts
    from medpipe.archive.build import value_offset

    vals = [v.pixels.astype(np.float32) + value_offset(v) for v in vols]
    lo = int(min(x.min() for x in vals))
    shifts = align_shifts([(x - lo).astype(np.int32) for x in vals])
    vals = [np.roll(x, sh, axis=(1, 2))[:, ::2, ::2] for x, sh in zip(vals, shifts)]  # 2x decimated: speed
    out = []
    for i, x in enumerate(vals):
        others = np.concatenate([y for j, y in enumerate(vals) if j != i]).reshape(-1, x[0].size)
        own = np.array([np.mean((x[k] - x[k - 1]) ** 2) for k in range(1, len(x))])
        best = np.array([np.min(np.mean((others - x[k].reshape(1, -1)) ** 2, axis=1)) for k in range(1, len(x))])
        r = {"scan": vols[i].name, "shift": shifts[i], "mse_own_previous": float(np.median(own)),
             "mse_best_other": float(np.median(best)), "other_better_pct": float(np.mean(best < own) * 100)}
        console.print(f"  {r['scan']}: median MSE to own previous slice {r['mse_own_previous']:.0f}, to the best "
                      f"slice of another scan {r['mse_best_other']:.0f} (shift {r['shift']}); the other scan "
                      f"predicts better in {r['other_better_pct']:.0f} % of frames", highlight=False)
        out.append(r)
    return out


def write(out: Path, rows: list[dict], gain_rows: list[dict], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, cols, data in (("results.csv", COLUMNS, rows), ("gains.csv", GAIN_COLUMNS, gain_rows)):
        write_csv(out / name, data, cols)
    safe = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    atomic_write_text(out / "results.json", json.dumps(
        {"meta": meta, "rows": [{k: safe(v) for k, v in r.items()} for r in rows],
         "gains": [{k: safe(v) for k, v in r.items()} for r in gain_rows]}, indent=1, default=str))


GAIN_COLUMNS = ["group", "setting", "lossless", "order", "variant", "separate_bytes", "intertwined_bytes", "gain",
                "psnr_range", "separate_enc_ms", "intertwined_enc_ms"]


def show(gain_rows: list[dict], console) -> None:
    from rich.table import Table

    t = Table(title="intertwined vs separate: gain = separate bytes / intertwined bytes (lossy: at equal PSNR)",
              title_justify="left")
    for c in ("group", "setting", "order", "variant", "gain", "PSNR range"):
        t.add_column(c)
    for r in gain_rows:
        g = r["gain"]
        t.add_row(r["group"], r["setting"], r["order"], r["variant"] or "-",
                  "-" if g is None else (f"[green]{g:.3f}[/]" if g > 1 else f"[red]{g:.3f}[/]"),
                  r["psnr_range"] or "lossless")
    console.print(t)


def main(argv=None) -> int:
    from rich.console import Console

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", nargs="+", choices=list(GROUPS), default=list(GROUPS))
    ap.add_argument("--preset", default="medium", help="x264/x265 preset (default medium)")
    ap.add_argument("--crf", nargs="+", type=int, default=[16, 22, 28], help="CRF ladder for lossy rows")
    ap.add_argument("--slices", type=int, help="use only the middle N slices of each scan (quick look)")
    ap.add_argument("--plan", choices=("full", "orders"), default="full",
                    help="full: orders plus the ideas (alignment, centroid, encoder settings, x264, ffv1); "
                         "orders: the three orderings only")
    ap.add_argument("--no-lossy", action="store_true")
    ap.add_argument("--no-lossless", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    console = Console()
    if not DATA.exists():
        console.print(f"dev data not found at {DATA}")
        return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "results" / f"archive_gain-{stamp}"
    ctx = CodecContext()
    meta = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "args": vars(args) | {"out": str(out)},
            "ffmpeg": ctx.ffmpeg.version, "libraries": library_versions(), "groups": GROUPS}
    rows: list[dict] = []
    for group in args.groups:
        t0 = time.perf_counter()
        vols = load_group(GROUPS[group], args.slices)
        console.print(f"[bold]{group}[/]: " + ", ".join(f"{v.name} {v.shape[0]} sl {v.value_range}" for v in vols))
        meta.setdefault("predictability", {})[group] = predictability(vols, console)
        plans = ([] if args.no_lossless else [(e, o, None) for e, o in lossless_plan(args.preset, args.plan == "full")])
        plans += ([] if args.no_lossy else
                  [(e, o, c) for e, o in lossy_plan(args.preset, args.plan == "full") for c in args.crf])
        for entry, orders, crf in plans:
            entry = {**entry, **({"crf": crf} if crf is not None else {})}
            label = entry.pop("label")
            e = {**entry, "label": label}
            sep_variants = {""} | ({"aligned"} if any(v == "aligned" for _, v in orders) and crf is None else set())
            for var in sorted(sep_variants):
                rows.append(run_row(vols, e, ctx, "separate", "", var, group, console))
            for order, variant in orders:
                rows.append(run_row(vols, e, ctx, "intertwined", order, variant, group, console))
            write(out, rows, gains(rows), meta)
        console.print(f"{group} done in {time.perf_counter() - t0:.0f} s")
    gain_rows = gains(rows)
    write(out, rows, gain_rows, meta)
    show(gain_rows, console)
    console.print(f"results: {out} (results.csv, gains.csv, results.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
