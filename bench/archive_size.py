#!/usr/bin/env python3
"""The archive's headline: its bytes against the same slices as standard DICOM, on the dev data (../shared/data).

Builds one archive of the dev scans (every candidate tried on every group, as `archive build` does), then prints
per archive group and in total the archive bytes (streams + compact headers; the total adds the index, SEAL and
the two views) against:
  (a) the input files on disk;
  (b) per-slice JPEG XL effort 7 DICOM (each file's header + its encapsulated PS3.5 codestreams, built for real);
  (c) per-slice JPEG-LS DICOM (the same, JPEG-LS lossless).
(b) / archive is the headline; the target is 1.10. Writes archive_size.json and .csv under --out.

    python bench/archive_size.py                         # all dev scans, every candidate (about 15-20 min, 2 cores)
    python bench/archive_size.py --candidates jpegxl-dicom,jpegxl,jpegxl-2slices,jpegxl-3slices --keep
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydicom.uid import JPEGLSLossless as JPEG_LS  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from medpipe.archive import build_archive, parse_settings  # noqa: E402
from medpipe.archive.baseline import series_bytes  # noqa: E402
from medpipe.codecs import CodecContext  # noqa: E402
from medpipe.files import atomic_write_text  # noqa: E402
from medpipe.results import library_versions, write_csv  # noqa: E402
from medpipe.syntaxes import JPEGXLLossless as JPEG_XL  # noqa: E402
from medpipe.volumes import load_volume  # noqa: E402

# ../shared/data beside the checkout (a worktree under /work/wt/<name> finds the one two levels up)
DATA = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
            ROOT.parent / "shared" / "data")
DEV = ["ct_head/philips_phantom_stereotaxis_a", "ct_head/philips_phantom_stereotaxis_b",
       "ct_chest/acrin_flt_breast_001/series_2_805941", "ct_chest/acrin_flt_breast_001/series_2_729346",
       "ct_head/cq500_ct0", "ct_head/cq500_ct5", "ct_head/ge_dcmqa_human", "mr/siemens_t1_sag_brain"]
# the 2026-12-04 additions (../shared/data/DATA.md): CT and MR series the archive had not been measured on
NEW = ["ct_chest/acrin_flt_breast_013", "ct_abdomen/pancreas_ct_cb_001", "ct_chest/lidc_idri_0001",
       "ct_chest/lung_dx_a0002/series_2_b70f", "ct_chest/lung_dx_a0002/series_3_b40f", "mr/rembrandt_hf0990_flair",
       "mr/cptac_c3l03728_t1se", "mr/ge_dti_phantom", "pet/qin_headneck_01_0024"]
SETS = {"dev": DEV, "new": NEW, "all": DEV + NEW}
TARGET = 1.10
COLUMNS = ["group", "scans", "slices", "kept", "archive_bytes", "streams", "headers", "input_bytes", "jxl_dicom_bytes",
           "jxl_codestreams", "jpegls_dicom_bytes", "vs_input", "headline", "vs_jpegls", "candidates"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", help="comma-separated candidates (default: all)")
    ap.add_argument("--effort", type=int, default=7, help="JPEG XL effort of the archive's JPEG XL candidates")
    ap.add_argument("--out", type=Path, default=ROOT / "results", help="where archive_size-<stamp>/ is written")
    ap.add_argument("--keep", action="store_true", help="keep the archive (else it is built in a temporary folder)")
    ap.add_argument("--set", choices=tuple(SETS), default="dev",
                    help="dev: the 8 scans of the first measurement; new: the 2026-12-04 additions; all: both")
    args = ap.parse_args()
    console = Console(width=180)
    scans = SETS[args.set]
    missing = [d for d in scans if not (DATA / d).is_dir()]
    if missing:
        console.print(f"dev data missing: {', '.join(missing)} (expected under {DATA})")
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = args.out / f"archive_size-{stamp}"
    folder.mkdir(parents=True)
    settings = parse_settings({"candidates": args.candidates.split(",") if args.candidates else [],
                               "effort": args.effort}, "bench")
    ctx = CodecContext()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medpipe-bench-") as tmp:
        where = folder / "archive" if args.keep else Path(tmp) / "archive"
        index = build_archive([_source(DATA / d) for d in scans], where, settings, ctx, console)
        sizes = {f["path"]: f["bytes"] for f in index["files"]}
        sealing = (where / "index.json").stat().st_size + (where / "SEAL").stat().st_size
    build_s = time.perf_counter() - t0
    rows = [_group_row(g, index, sizes, console) for g in index["groups"]]
    total = {k: sum(r[k] for r in rows) for k in ("scans", "slices", "archive_bytes", "streams", "headers",
                                                   "input_bytes", "jxl_dicom_bytes", "jxl_codestreams",
                                                   "jpegls_dicom_bytes")}
    total["archive_bytes"] = sum(sizes.values()) + sealing  # + index.json, SEAL, order.txt, patients.txt
    total.update(group="total", kept="", candidates="")
    _ratios(total)
    rows.append(total)
    _print(rows, console, build_s)
    write_csv(folder / "archive_size.csv", rows, COLUMNS)
    atomic_write_text(folder / "archive_size.json", json.dumps(
        {"rows": rows, "target": TARGET, "build_seconds": round(build_s, 1), "settings": index["settings"],
         "tools": index["tools"], "libraries": library_versions(), "inputs": scans}, indent=1, default=str))
    console.print(f"written: {folder}")
    return 0


def _source(path: Path):
    from medpipe.volumes import discover_inputs

    sources, _ = discover_inputs([path])
    return sources[0]


def _group_row(g: dict, index: dict, sizes: dict, console) -> dict:
    scans = [s for s in index["scans"] if s["group"] == g["id"]]
    headers = sum(sizes[s["headers"]] for s in scans)
    row = {"group": g["id"], "scans": len(scans), "slices": sum(s["shape"][0] for s in scans),
           "kept": g["candidate"], "streams": sizes[g["stream"]], "headers": headers,
           "archive_bytes": sizes[g["stream"]] + headers,
           "input_bytes": sum(f["source_bytes"] for s in scans for f in s["files"]),
           "candidates": " ".join(f"{r['candidate']}={r['bytes']}" for r in g["candidates"] if r["bytes"])}
    jxl = jls = jxl_streams = 0
    for s in scans:
        console.print(f"{g['id']} {s['name']}: building the per-slice JPEG XL and JPEG-LS DICOM series", highlight=False)
        vol = load_volume(Path(s["source"]))
        b = series_bytes(vol, JPEG_XL, 7)
        jxl += b["files"]
        jxl_streams += b["codestreams"]
        jls += series_bytes(vol, JPEG_LS)["files"]
        del vol
    row.update(jxl_dicom_bytes=jxl, jxl_codestreams=jxl_streams, jpegls_dicom_bytes=jls)
    _ratios(row)
    return row


def _ratios(row: dict) -> None:
    a = row["archive_bytes"]
    row.update(vs_input=round(row["input_bytes"] / a, 4), headline=round(row["jxl_dicom_bytes"] / a, 4),
               vs_jpegls=round(row["jpegls_dicom_bytes"] / a, 4))


def _print(rows: list[dict], console, build_s: float) -> None:
    t = Table(title=f"archive bytes vs the same slices as DICOM (build {build_s:.0f} s; headline = (b) / archive, "
                    f"target {TARGET})", title_justify="left")
    for c in ("group", "scans", "slices", "kept", "archive", "(a) input files", "(b) JXL e7 DICOM", "(c) JPEG-LS DICOM",
              "a/archive", "headline b/archive", "c/archive"):
        t.add_column(c)
    mb = lambda n: f"{n / 1e6:.2f} MB"  # noqa: E731
    for r in rows:
        t.add_row(r["group"], str(r["scans"]), str(r["slices"]), r["kept"], mb(r["archive_bytes"]),
                  mb(r["input_bytes"]), mb(r["jxl_dicom_bytes"]), mb(r["jpegls_dicom_bytes"]), f"{r['vs_input']:.3f}",
                  f"[bold]{r['headline']:.3f}[/]", f"{r['vs_jpegls']:.3f}")
    console.print(t)


if __name__ == "__main__":
    sys.exit(main())
