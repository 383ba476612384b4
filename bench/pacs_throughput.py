"""Retrieval throughput from a local Orthanc (Debian orthanc 1.10.1 + orthanc-dicomweb) by DICOMweb and by C-GET.

    python bench/pacs_throughput.py [PATH ...] [--repeat 2]

Default PATH: the shipped CT sample (28 slices, uncompressed) and, when present, two JPEG-LS dev series from
../shared/data. Orthanc is started on 127.0.0.1 (tests/pacs.py: free ports, a temporary folder), the files are
uploaded, then each method retrieves everything into an empty cache (medpipe.sources.fetch_address: listing,
retrieval, content hashing and the cache writes included) and the best of ``--repeat`` is printed in MB/s
(10^6 bytes of Part 10 files) and instances/s. Orthanc and medpipe share this machine's cores (2 here, shared
with other work): the figures are for comparing methods, not a PACS's capacity.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import pacs  # noqa: E402
from medpipe.sources import fetch_address  # noqa: E402
from medpipe.sources.settings import SourceSettings  # noqa: E402

DEV = ("ct_chest/lidc_idri_0001", "ct_abdomen/pancreas_ct_cb_001")


def default_inputs() -> list[Path]:
    shared = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), None)
    return [ROOT / "samples" / "ct_head_ge_dcmqa"] + [shared / d for d in DEV if shared and (shared / d).is_dir()]


def is_part10(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(132)[128:] == b"DICM"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    files = [f for p in (args.paths or default_inputs()) for f in ([p] if p.is_file() else sorted(p.rglob("*")))
             if f.is_file() and not f.name.startswith(".") and is_part10(f)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port = pacs.free_port()
        medpipe = {"AET": "MEDPIPE", "Host": "127.0.0.1", "Port": port, "AllowFind": True, "AllowGet": True,
                   "AllowMove": True}
        with pacs.orthanc(tmp, ("dicomweb",), {"DicomModalities": {"m": medpipe}}) as server:
            for f in files:
                server.upload(f.read_bytes())
            total = sum(f.stat().st_size for f in files)
            print(f"{len(files)} instances, {total / 1e6:.1f} MB in Orthanc {server.json('GET', '/system')['Version']}"
                  " (127.0.0.1; shared 2-core machine)")
            methods = {"DICOMweb, 1 request in flight": (f"{server.url}/dicom-web", 1),
                       "DICOMweb, 4 requests in flight": (f"{server.url}/dicom-web", 4),
                       "C-GET": (f"dicom://{server.node.aet}@127.0.0.1:{server.node.port}", 4)}
            for name, (address, requests) in methods.items():
                best = None
                for i in range(args.repeat):
                    cache = tmp / f"cache-{i}"
                    t0 = time.perf_counter()
                    folders, errors = fetch_address(address, SourceSettings(cache=cache, requests=requests,
                                                                            port=port), lambda _: None)
                    seconds = time.perf_counter() - t0
                    got = [p for f in folders for p in f.glob("*.dcm")]
                    nbytes = sum(p.stat().st_size for p in got)
                    assert len(got) == len(files) and not errors, (len(got), errors)
                    best = seconds if best is None else min(best, seconds)
                    shutil.rmtree(cache)
                print(f"{name:32s} {nbytes / 1e6 / best:7.1f} MB/s  {len(files) / best:7.1f} instances/s  "
                      f"({best:.2f} s, best of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
