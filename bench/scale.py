"""Scaling: wall time with --jobs 1 and --jobs 2, peak memory against volume size, the harness's share of the wall
time, and (with --dask) a Dask LocalCluster run checked against a local one.

    python bench/scale.py [--preset presets/headct.yaml] [--input SERIES] [--sizes 50 100 200] [--dask]
                          [--skip-speedup] [--skip-memory]

Every run is a real ``run.py`` subprocess, as a user runs it. Speed-up: the preset's full matrix on the dev head
CT (``../shared/data/ct_head/ge_dcmqa_human``, else the shipped sample). Memory: the first 50/100/200 slices of
the longest dev head CT (``cq500_ct0``, 238 slices; dev data only, never copied into the product) under a memory
preset with the heaviest cell kinds (per-slice codec, lossless and 4:4:4 video), run with --jobs 2; each cell's
peak resident memory is read from the result store (workers reset their peak before each cell) and fitted as
``base + k x volume bytes``. The same fit predicts a 500-slice 512 x 512 CT.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "ct_head"

MEMORY_PRESET = """
name: memory
ssim: true
codecs:
  - {codec: jpegls, label: JPEG-LS}
  - {codec: ffv1, label: FFV1}
  - {codec: x265, bits: 12, chroma: gray, preset: ultrafast, lossless: true, label: x265 lossless gray}
  - {codec: x265, bits: 12, chroma: "444", preset: ultrafast, crf: 22, label: x265 444}
"""
COMPARED = ("label", "status", "compressed_bytes", "cr", "psnr_db", "ssim", "max_abs_err", "exact")


def run(preset: Path, inp: Path, out: Path, *args: str) -> tuple[float, dict, Path]:
    """run.py as a subprocess -> (wall seconds, results.json, results folder)."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), str(preset), "--input", str(inp), "--out", str(out),
                           *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    new = sorted(set(out.iterdir()) - before)
    if proc.returncode not in (0, 1) or not new:
        sys.exit(f"run failed ({proc.returncode}): {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    folder = new[-1]
    return wall, json.loads((folder / "results.json").read_text()), folder


def same_rows(a: dict, b: dict) -> list[str]:
    diffs = []
    for ra, rb in zip(a["rows"], b["rows"]):
        for k in COMPARED:
            if ra[k] != rb[k]:
                diffs.append(f"{ra['label']}: {k} {ra[k]} != {rb[k]}")
    if len(a["rows"]) != len(b["rows"]):
        diffs.append(f"{len(a['rows'])} rows != {len(b['rows'])}")
    return diffs


def burn(n: int = 20_000_000) -> float:
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - t0


def machine_ceiling() -> float:
    """What 2 processes get done at once here, against 1 (2.0 on two free physical cores)."""
    import multiprocessing

    alone = burn()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(burn, [1000, 1000])  # workers started
        t0 = time.perf_counter()
        pool.map(burn, [20_000_000, 20_000_000])
        both = time.perf_counter() - t0
    return 2 * alone / both


def speedup(preset: Path, inp: Path, tmp: Path, dask: bool) -> None:
    print(f"== speed-up: {preset.name} on {inp} ==")
    ceiling = machine_ceiling()
    print(f"this machine now: two CPU-bound processes side by side do {ceiling:.2f}x the work of one "
          f"({os.cpu_count()} logical CPUs; load average {os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0:.1f})")
    res = {}
    for jobs in (1, 2):
        wall, doc, folder = run(preset, inp, tmp / f"jobs{jobs}", "--jobs", str(jobs))
        par = doc["provenance"]["parallel"]
        res[jobs] = (wall, doc, par)
        if jobs == 1:
            cell_s = [json.loads(line)["cell_s"] for line in (folder / "cells.jsonl").read_text().splitlines()]
        cells, matrix = par["cells_s"], par["wall_s"]
        codec = sum((r["encode_ms"] or 0) + (r["decode_ms"] or 0) for r in doc["rows"]) / 1000
        print(f"--jobs {jobs}: wall {wall:6.1f} s = matrix {matrix:.1f} s + {wall - matrix:.1f} s before/after it "
              f"(start-up, loading, results{', report' if doc['provenance']['preset']['as_run'].get('report') else ''}); "
              f"{par['ran']} cells worked {cells:.1f} s, codec calls {codec:.1f} s")
        print(f"          harness share of wall: {1 - cells / (wall * jobs):.1%} of the core-time is not cell work "
              f"(inside the matrix: {1 - cells / (matrix * jobs):.1%}: staging, pool, store, idle cores)")
    print(f"speed-up --jobs 2 vs --jobs 1: {res[1][0] / res[2][0]:.2f}x (matrix only: "
          f"{res[1][2]['wall_s'] / res[2][2]['wall_s']:.2f}x)")
    busy = res[2][2]["cells_s"] / res[2][2]["wall_s"]
    slower = res[2][2]["cells_s"] / res[1][2]["cells_s"]
    print(f"--jobs 2 kept {busy:.2f} cells running on average; each cell took {slower:.2f}x its --jobs 1 time "
          f"(the machine's ceiling above predicts {2 / ceiling:.2f}x)")
    finish = [0.0, 0.0]  # the runner's schedule (longest first, 2 workers) replayed with the --jobs 1 cell times
    for t in sorted(cell_s, reverse=True):
        finish[finish.index(min(finish))] += t
    print(f"schedule bound: on two free cores the same schedule ends after {max(finish):.1f} s of "
          f"{sum(cell_s):.1f} s of cells -> {sum(cell_s) / max(finish):.2f}x; expected here "
          f"~{min(ceiling, sum(cell_s) / max(finish)):.2f}x")
    diffs = same_rows(res[1][1], res[2][1])
    print("rows identical (sizes, CR, PSNR, SSIM, max error, exactness):", "yes" if not diffs else diffs[:5])
    if dask:
        import yaml

        data = yaml.safe_load(preset.read_text())
        data.update(name=f"{data.get('name', 'run')}-dask", executor="dask", jobs=2)
        data.pop("input", None), data.pop("inputs", None)
        dpreset = tmp / "dask.yaml"
        dpreset.write_text(yaml.safe_dump(data, sort_keys=False))
        wall, doc, _ = run(dpreset, inp, tmp / "dask")
        diffs = same_rows(res[2][1], doc)
        print(f"Dask LocalCluster (2 workers): wall {wall:.1f} s; rows identical to the local run:",
              "yes" if not diffs else diffs[:5])


def memory(sizes: list[int], source: Path, tmp: Path) -> None:
    from medpipe.volumes import read_dicom
    from medpipe.volumes.dicom import looks_like_dicom
    from medpipe.volumes.series import natural_key, sort_slices

    print(f"== peak memory per cell against volume size ({source.name}, --jobs 2) ==")
    files = sorted((p for p in source.iterdir() if looks_like_dicom(p)), key=lambda p: natural_key(p.name))
    order = sort_slices([read_dicom(f, pixels=False) for f in files], files)
    files = [files[i] for i in order]  # contiguous slices along the normal
    preset = tmp / "memory.yaml"
    preset.write_text(MEMORY_PRESET)
    points = []
    for n in sizes:
        if n > len(files):
            print(f"{n} slices: the series has only {len(files)}; skipped")
            continue
        folder = tmp / f"slices{n}"  # a copy of the first n DICOM files: the real loading path, inputs untouched
        folder.mkdir()
        for f in files[:n]:
            shutil.copy2(f, folder / f.name)
        wall, doc, out = run(preset, folder, tmp / f"mem{n}", "--jobs", "2")
        recs = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
        mb = math.prod(doc["volumes"][0]["shape"]) * 2 / 2**20
        worst = max(recs, key=lambda r: r["peak_rss_mb"] or 0)
        client = doc["provenance"]["parallel"].get("client_peak_rss_mb") or 0
        points.append((mb, worst["peak_rss_mb"]))
        per = ", ".join(f"{r['label']} {r['peak_rss_mb']:.0f}" for r in recs)
        print(f"{n:4d} slices ({mb:6.1f} MiB): worker peak {worst['peak_rss_mb']:6.0f} MiB ({per}); "
              f"client (loading, staging) {client:.0f} MiB; wall {wall:.1f} s")
    if len(points) >= 2:
        (x0, y0), (x1, y1) = points[0], points[-1]
        k = (y1 - y0) / (x1 - x0)
        base = y0 - k * x0
        print(f"fit: worker peak = {base:.0f} MiB + {k:.2f} x volume MiB "
              f"(growth {y1 / y0:.2f}x for {x1 / x0:.1f}x the data: {'linear or less' if y1 / y0 <= x1 / x0 else 'MORE than linear'})")
        from medpipe.matrix.resources import cell_memory

        big = 500 * 512 * 512 * 2 / 2**20
        need = cell_memory(int(big * 2**20)) / 2**20
        print(f"500 x 512 x 512 CT ({big:.0f} MiB): fit predicts a worker peak of {base + k * big:.0f} MiB; the "
              f"runner budgets {need:.0f} MiB a cell (with a veryslow 4:4:4 encoder), so with 2 GiB free it runs "
              f"{max(1, int(2048 // need))} cell(s) at a time")


def big_cell(n: int, source: Path, tmp: Path) -> None:
    """A worker's peak for cells of an n-slice 512 x 512 CT, built by repeating a dev series (the worker path:
    the staged volume mapped read-only, one cell at a time, peak reset before each cell)."""
    import dataclasses

    import numpy as np

    from medpipe.codecs import CodecContext, parse_codec
    from medpipe.matrix import CellSettings
    from medpipe.matrix.workers import VolumeRef, make_task, run_task, shell_of, stage_volume
    from medpipe.volumes import load_volume

    vol = load_volume(source)
    reps = -(-n // vol.shape[0])
    big = dataclasses.replace(vol, pixels=np.concatenate([vol.pixels] * reps)[:n], name=f"{n} slices", headers=[])
    del vol
    staged = stage_volume(big, tmp)  # as the runner does; big.pixels is now the mapped file
    ref = VolumeRef(shell_of(big), str(staged))
    del big
    print(f"== one cell of a {n} x 512 x 512 CT ({n * 512 * 512 * 2 / 2**20:.0f} MiB), worker path ==")
    for entry in ({"codec": "jpegls"}, {"codec": "ffv1"},
                  {"codec": "x265", "bits": 12, "chroma": "444", "preset": "ultrafast", "crf": 22}):
        spec = parse_codec(entry, "bench")
        task = make_task(0, spec, ref, None, CodecContext(threads=1), CellSettings(), (), False)
        res = run_task(task)
        print(f"{spec.label:40s} {res['row']['status']:7s} peak {res['peak_rss_mb']:6.0f} MiB "
              f"({res['cell_s']:.1f} s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", type=Path, default=ROOT / "presets" / "headct.yaml")
    ap.add_argument("--input", type=Path, help="volume for the speed-up runs (default: dev GE head CT)")
    ap.add_argument("--memory-input", type=Path, help="volume cut to --sizes slices (default: dev cq500_ct0)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--dask", action="store_true", help="also run the preset on a Dask LocalCluster and compare")
    ap.add_argument("--skip-speedup", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--big", type=int, metavar="SLICES", help="also: one cell's peak on a SLICES-slice CT (e.g. 500)")
    ap.add_argument("--_big", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._big:
        big_cell(int(args._big[0]), Path(args._big[1]), Path(args._big[2]))
        return 0
    inp = args.input or (DATA / "ge_dcmqa_human" if (DATA / "ge_dcmqa_human").is_dir()
                         else ROOT / "samples" / "ct_head_ge_dcmqa")
    tmp = Path(tempfile.mkdtemp(prefix="medpipe-scale-"))
    try:
        if not args.skip_speedup:
            speedup(args.preset.resolve(), inp.resolve(), tmp, args.dask)
        if not args.skip_memory:
            src = args.memory_input or (DATA / "cq500_ct0")
            if not src.exists():
                print(f"memory: {src} not present; pass --memory-input SERIES (>= {max(args.sizes)} slices)")
            else:
                memory(args.sizes, src, tmp)
                if args.big:  # in a fresh process, so its peak is the cell's, not this script's
                    subprocess.run([sys.executable, __file__, "--_big", str(args.big), str(src), str(tmp)], check=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
