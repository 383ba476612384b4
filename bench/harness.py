"""Where a matrix run's wall time goes: codec calls vs loading (I/O), value mapping, metrics and the rest.

    python bench/harness.py [--preset presets/headct.yaml] [--input SERIES] [--skip-slow]

Runs the preset's matrix in this process (one cell at a time, as ``--jobs 1``) on a real CT series (default: the
shipped sample; e.g. ``--input ../shared/data/ct_head/cq500_ct5``), then prints, per cell and in total, the codec
time (encode + decode, timed around the codec call alone by medpipe.roundtrip) against everything else. The claim
checked: the harness (all but the codec calls) costs less than the codec calls themselves.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medpipe.codecs import CodecContext  # noqa: E402
from medpipe.matrix import CellSettings, measure_cell  # noqa: E402
from medpipe.preset import load_preset  # noqa: E402
from medpipe.results import write_results  # noqa: E402
from medpipe.volumes import load_volume  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", type=Path, default=ROOT / "presets" / "headct.yaml")
    ap.add_argument("--input", type=Path, help="series to load (default: the preset's input)")
    ap.add_argument("--skip-slow", action="store_true", help="leave out veryslow video rows (quick look)")
    args = ap.parse_args()

    preset = load_preset(args.preset)
    specs = [s for s in preset.codecs if not (args.skip_slow and s.codec.p.get("preset") == "veryslow")]
    wall0 = time.perf_counter()
    t0 = time.perf_counter()
    volume = load_volume(args.input or preset.inputs[0])
    load_s = time.perf_counter() - t0
    ctx = CodecContext(preset.ffmpeg, threads=1)
    settings = CellSettings(ssim=preset.matrix["ssim"], fill_depth=preset.matrix["fill_depth"])
    rows, cell_wall = [], []
    for spec in specs:
        t0 = time.perf_counter()
        rows.append(measure_cell(volume, spec, ctx, settings).row.as_dict())
        cell_wall.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_results(Path(tmp), rows, [volume.describe()], {"bench": "harness"})
    write_s = time.perf_counter() - t0
    wall = time.perf_counter() - wall0

    ms = lambda r, k: (r.get(k) or 0.0) / 1000  # noqa: E731
    print(f"volume {volume.name}: {volume.shape}, {volume.raw_bytes / 2**20:.1f} MiB; {len(rows)} cells\n")
    print(f"{'cell':48s} {'status':8s} {'codec s':>8s} {'map s':>7s} {'metrics s':>9s} {'other s':>8s}")
    codec = mapping = metric = 0.0
    for r, w in zip(rows, cell_wall):
        c, m, q = ms(r, "encode_ms") + ms(r, "decode_ms"), ms(r, "map_ms"), ms(r, "metrics_ms")
        codec, mapping, metric = codec + c, mapping + m, metric + q
        print(f"{r['label'][:48]:48s} {r['status']:8s} {c:8.2f} {m:7.2f} {q:9.2f} {w - c - m - q:8.2f}")
    harness = wall - codec
    print(f"\nwall time            {wall:8.2f} s")
    print(f"  codec calls        {codec:8.2f} s  ({100 * codec / wall:.1f} %)  encode + decode, timed alone")
    print(f"  loading (I/O)      {load_s:8.2f} s  ({100 * load_s / wall:.1f} %)  pydicom read + decode of the series")
    print(f"  value mapping      {mapping:8.2f} s  ({100 * mapping / wall:.1f} %)")
    print(f"  metrics            {metric:8.2f} s  ({100 * metric / wall:.1f} %)  MSE/PSNR/SSIM/max error")
    print(f"  writing results    {write_s:8.2f} s")
    print(f"  other              {wall - codec - load_s - mapping - metric - write_s:8.2f} s")
    verdict = "OK" if harness < codec else "TOO SLOW"
    print(f"harness / codec = {harness / codec:.3f}  -> {verdict} (harness must cost less than the codecs)")
    return 0 if harness < codec else 1


if __name__ == "__main__":
    sys.exit(main())
