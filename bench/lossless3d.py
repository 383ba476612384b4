"""lossless3d against JPEG XL e7/e9, JPEG-LS and FFV1 on the dev CT series (and one MR), one core, verified exact.

    python bench/lossless3d.py [--quick] [--repeat N] [--no-e9] [--data DIR] [--json OUT]

Per volume: voxels, compressed bytes, CR (raw stored bytes / compressed bytes) and encode / decode time of every
codec on the same unsigned data the round trip gives a codec (stored values minus their minimum); then, per series
and in aggregate over the CT series (sum of raw / sum of compressed), lossless3d's size and encode + decode time
against JPEG XL effort 7, the issue's yardstick (goal: CR ratio >= 1.10, time ratio <= 1.00). Every decode is
compared with its input; a mismatch stops the run. Absent volumes are skipped. ``--quick``: the middle 6 slices of
each volume and no e9 (well under a minute).

Times are CPU seconds of this process plus its finished children (ffmpeg), so other work sharing the machine
inflates them far less than wall time (measured here: wall time 1.5-2x CPU time while other agents ran, in
proportions that differed between codecs). Every codec runs single-threaded: this process and ffmpeg are pinned
to one core. On Windows a child's CPU time is not available, so FFV1's time there is this process's only. Each
codec is timed ``--repeat`` times (JPEG XL e9, the slow reference, once) and the fastest run is reported with the
spread (slowest / fastest). The JIT compile (or cache load) of lossless3d is timed apart, before the runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

try:
    import resource  # POSIX: CPU time of finished children (ffmpeg)
except ImportError:  # Windows
    resource = None

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medpipe.codecs import codec_class  # noqa: E402
from medpipe.codecs.video import Ffv1  # noqa: E402

try:  # medpipe after the floors rework (main, 2026-12)
    from medpipe.codecs import CodecContext as Context  # noqa: E402
    from medpipe.volumes import load_volume  # noqa: E402
except ImportError:  # the base this codec was written on
    from medpipe.bench import Context  # noqa: E402
    from medpipe.volume import load_volume  # noqa: E402

CT_SERIES = ["ct_head/cq500_ct0", "ct_head/cq500_ct5", "ct_head/philips_phantom_stereotaxis_a",
             "ct_head/philips_phantom_stereotaxis_b", "ct_head/ge_dcmqa_human",
             "ct_chest/acrin_flt_breast_001/series_2_805941", "ct_chest/acrin_flt_breast_001/series_2_729346"]
MR_SERIES = ["mr/siemens_t1_sag_brain"]
QUICK_SLICES = 6


class Ffv1Context0(Ffv1):
    """FFV1 as the issue measured it (level 3, every frame intra, the small context model), on a medpipe whose
    Ffv1 has no g / context parameters yet."""

    def encoder_args(self, threads: int = 0, frames: int = 1):
        return ["-c:v", "ffv1", "-level", "3", "-g", "1", "-context", "0"]


def ffv1_rows(bits: int) -> list:
    """The issue's FFV1 (-g 1 -context 0) and, where medpipe has the parameters, its measured default (one
    group per volume, large contexts), the strongest FFV1."""
    cls = codec_class("ffv1")
    if "g" in cls.params and "context" in cls.params:
        return [("ffv1", cls(bits=bits, g=1, context=0)), ("ffv1 best", cls(bits=bits))]
    return [("ffv1", Ffv1Context0(bits=bits))]


def default_data() -> Path:
    """MEDPIPE_DEV_DATA, else ../shared/data beside the checkout (or two levels up, for a worktree)."""
    if os.environ.get("MEDPIPE_DEV_DATA"):
        return Path(os.environ["MEDPIPE_DEV_DATA"])
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    return ROOT.parent / "shared" / "data"


def pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity here): timing may use other cores' idle time"


def unsigned(pixels: np.ndarray) -> np.ndarray:
    """Stored values minus their minimum, in the narrowest unsigned type: what the round trip hands a codec."""
    shifted = pixels.astype(np.int32) - int(pixels.min())
    return shifted.astype(np.uint8 if shifted.max() < 256 else np.uint16)


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have finished."""
    own = time.process_time()
    if resource is None:
        return own
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + kids.ru_utime + kids.ru_stime


def measure(codec, frames: np.ndarray, ctx, repeat: int) -> dict:
    enc_t, dec_t = [], []
    for _ in range(repeat):
        t0 = cpu_seconds()
        enc = codec.encode(frames, ctx)
        t1 = cpu_seconds()
        back = codec.decode(enc, ctx)
        t2 = cpu_seconds()
        if back.shape != frames.shape or not np.array_equal(back, frames):
            raise SystemExit(f"NOT EXACT: {codec.name} {codec.setting()} did not reproduce its input")
        enc_t.append(t1 - t0)
        dec_t.append(t2 - t1)
    total = [e + d for e, d in zip(enc_t, dec_t)]
    return {"bytes": enc.nbytes, "enc_s": min(enc_t), "dec_s": min(dec_t), "spread": max(total) / min(total)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"middle {QUICK_SLICES} slices per volume, no e9")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per codec (fastest reported; e9 runs once)")
    ap.add_argument("--no-e9", action="store_true", help="leave out JPEG XL effort 9 (the slowest row)")
    ap.add_argument("--data", type=Path, default=default_data(), help="folder holding ct_head/, ct_chest/, mr/")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    print(f"one core: {pin_one_core()}; data: {args.data}")
    ctx = Context(threads=1)
    mine = codec_class("lossless3d")()
    t0 = time.perf_counter()
    tiny = np.arange(2 * 9 * 11, dtype=np.uint16).reshape(2, 9, 11)
    mine.decode(mine.encode(tiny, ctx), ctx)
    print(f"lossless3d JIT compile or cache load (once per process; compiled once per machine): "
          f"{time.perf_counter() - t0:.1f} s  [{mine.version(ctx)}]")
    rows = [("lossless3d", mine), ("jxl e7", codec_class("jpegxl")(effort=7))]
    if not (args.quick or args.no_e9):
        rows.append(("jxl e9", codec_class("jpegxl")(effort=9)))
    rows.append(("jpeg-ls", codec_class("jpegls")()))

    results = {}
    for rel in CT_SERIES + MR_SERIES:
        path = args.data / rel
        if not path.exists():
            print(f"\n{rel}: absent, skipped")
            continue
        volume = load_volume(path)
        frames = unsigned(volume.pixels)
        if args.quick:
            mid = len(frames) // 2
            frames = frames[max(0, mid - QUICK_SLICES // 2):][:QUICK_SLICES]
        raw = frames.size * volume.bits_allocated // 8
        print(f"\n{rel}: {frames.shape[0]} x {frames.shape[1]} x {frames.shape[2]} = {frames.size:,} voxels, "
              f"values 0..{int(frames.max())}, raw {raw:,} bytes")
        print(f"  {'codec':<11} {'bytes':>11} {'CR':>6} {'enc ms':>9} {'dec ms':>9} {'spread':>7}  (CPU ms)")
        per = {}
        for label, codec in rows + ffv1_rows(16 if frames.dtype == np.uint16 else 8):
            m = measure(codec, frames, ctx, 1 if label == "jxl e9" else args.repeat)
            per[label] = m
            print(f"  {label:<11} {m['bytes']:>11,} {raw / m['bytes']:>6.3f} {m['enc_s'] * 1e3:>9.0f} "
                  f"{m['dec_s'] * 1e3:>9.0f} {m['spread']:>7.2f}")
        me, ref = per["lossless3d"], per["jxl e7"]
        print(f"  lossless3d vs jxl e7: CR x{ref['bytes'] / me['bytes']:.4f}, encode+decode time "
              f"x{(me['enc_s'] + me['dec_s']) / (ref['enc_s'] + ref['dec_s']):.2f}")
        results[rel] = {"raw": raw, "voxels": int(frames.size), "ct": rel in CT_SERIES, "codecs": per}

    ct = {k: v for k, v in results.items() if v["ct"]}
    if ct:
        print("\nAggregate over the CT series present (sum of raw / sum of compressed; times summed):")
        raw = sum(v["raw"] for v in ct.values())
        for label in next(iter(ct.values()))["codecs"]:
            if all(label in v["codecs"] for v in ct.values()):
                size = sum(v["codecs"][label]["bytes"] for v in ct.values())
                secs = sum(v["codecs"][label]["enc_s"] + v["codecs"][label]["dec_s"] for v in ct.values())
                print(f"  {label:<11} CR {raw / size:6.3f}   encode+decode {secs:8.1f} s")
        mine_b = sum(v["codecs"]["lossless3d"]["bytes"] for v in ct.values())
        ref_b = sum(v["codecs"]["jxl e7"]["bytes"] for v in ct.values())
        mine_t = sum(v["codecs"]["lossless3d"]["enc_s"] + v["codecs"]["lossless3d"]["dec_s"] for v in ct.values())
        ref_t = sum(v["codecs"]["jxl e7"]["enc_s"] + v["codecs"]["jxl e7"]["dec_s"] for v in ct.values())
        ratios = [v["codecs"]["jxl e7"]["bytes"] / v["codecs"]["lossless3d"]["bytes"] for v in ct.values()]
        print(f"  lossless3d vs jxl e7: aggregate CR x{ref_b / mine_b:.4f} (goal 1.10); per series "
              f"x{min(ratios):.4f} .. x{max(ratios):.4f}; encode+decode time x{mine_t / ref_t:.2f} (goal <= 1.00)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
