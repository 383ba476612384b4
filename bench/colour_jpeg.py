#!/usr/bin/env python3
"""JPEG XL JPEG Recompression (.111) of colour baseline JPEG sources: bytes against the source's own JPEG, and the
time an archive build, verify and extract take on them (shared box: 2 cores, other jobs running; one run each).

Sources: pydicom's SC_rgb_jpeg_dcmtk.dcm (YBR_FULL), SC_jpeg_no_color_transform.dcm (RGB), examples_ybr_color.dcm
(30-frame ultrasound, YBR_FULL_422) and, when ../shared/data is present, the dev US cine colourised and stored as
YBR_FULL_422 JPEG (tests/test_jpegxl_colour.py ``colour_ultrasound`` says how). Writes colour_jpeg.json under --out.

    python bench/colour_jpeg.py --out bench/measured/colour_jpeg-2026-12-05
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the test module that builds the colour ultrasound from the dev data

from pydicom.data import get_testdata_file  # noqa: E402

from medpipe.archive import Settings, build_archive, extract_archive, verify_archive  # noqa: E402
from medpipe.codecs import CodecContext  # noqa: E402
from medpipe.codecs.jpeg_recompression import JpegXLRecompression  # noqa: E402
from medpipe.files import atomic_write_text  # noqa: E402
from medpipe.volumes import load_volume  # noqa: E402

FILES = ("SC_rgb_jpeg_dcmtk.dcm", "SC_jpeg_no_color_transform.dcm", "examples_ybr_color.dcm")


def sources(tmp: Path) -> list[Path]:
    out = []
    for name in FILES:
        folder = tmp / "src" / name.split(".")[0]
        folder.mkdir(parents=True)
        shutil.copy(get_testdata_file(name), folder / name)
        out.append(folder)
    try:
        from test_jpegxl_colour import colour_ultrasound

        colour_ultrasound(tmp / "src" / "us_cine_colourised")
        out.append(tmp / "src" / "us_cine_colourised")
    except BaseException as exc:  # noqa: BLE001 - pytest.skip when the dev data is absent
        print(f"dev US cine left out: {exc}")
    return out


def measure(folder: Path, tmp: Path, ctx) -> dict:
    vol = load_volume(folder)
    codec = JpegXLRecompression("bench")
    codec.take_source(vol)
    t0 = time.perf_counter()
    enc = codec.encode(vol.pixels, ctx)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = codec.decode(enc, ctx)
    decode_s = time.perf_counter() - t0
    assert (back == vol.pixels).all(), "not exact"
    jpeg, coded = sum(len(j) for j in codec.jpeg), sum(len(c) for c in enc.chunks)
    arc = tmp / "arc" / folder.name
    t0 = time.perf_counter()
    build_archive([vol], arc, Settings(effort=7), ctx)  # every candidate listed: only .111 may take colour
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    verify_archive(arc, ctx)
    verify_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = extract_archive(arc, tmp / "out" / folder.name, ctx)[0]
    extract_s = time.perf_counter() - t0
    same = [p.read_bytes() for p in sorted(out.iterdir())] == [Path(f).read_bytes() for f in vol.files]
    archive = sum(p.stat().st_size for p in arc.rglob("*") if p.is_file())
    source = sum(Path(f).stat().st_size for f in vol.files)
    return {"source": folder.name, "shape": list(vol.shape), "colour": vol.color, "jpeg_bytes": jpeg,
            "jxl_bytes": coded, "cr_vs_jpeg": round(jpeg / coded, 3), "encode_s": round(encode_s, 3),
            "decode_s": round(decode_s, 3), "source_file_bytes": source, "archive_bytes": archive,
            "build_s": round(build_s, 2), "verify_s": round(verify_s, 2), "extract_s": round(extract_s, 2),
            "extract_byte_identical": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="folder for colour_jpeg.json")
    args = ap.parse_args()
    ctx = CodecContext()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(folder, Path(tmp), ctx) for folder in sources(Path(tmp))]
    for r in rows:
        print(f"{r['source']:32} {'x'.join(map(str, r['shape'])):>12}  JPEG {r['jpeg_bytes']:>10,} -> .111 "
              f"{r['jxl_bytes']:>10,}  CR {r['cr_vs_jpeg']:.3f}  (encode {r['encode_s']:.2f} s, decode "
              f"{r['decode_s']:.2f} s)  archive {r['archive_bytes']:>10,} of {r['source_file_bytes']:>10,} bytes: "
              f"build {r['build_s']:.1f} s, verify {r['verify_s']:.1f} s, extract {r['extract_s']:.1f} s, "
              f"byte-identical {r['extract_byte_identical']}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "colour_jpeg.json", json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
