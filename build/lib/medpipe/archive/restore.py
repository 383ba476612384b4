"""Reading an archive back: decode each group (stream size and SHA-256 checked first), undo the mapping, check
every slice's SHA-256 (lossless), and write scans back as DICOM series, only under ``--out``, never half-written."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from ..codecs import Encoded, codec_class
from ..depth import mapping_from_dict
from ..dicom.header import mark_lossy
from ..errors import MedpipeError
from ..files import clean_stale, inside, make_dirs, part_name
from .manifest import (ArchiveError, check_headers, read_manifest, read_order, scan_frames, select_scans, sha256,
                       slice_sha)


def decode_group(folder: Path, g: dict, ctx) -> np.ndarray:
    """Check the stream's size and SHA-256, decode it, undo the mapping, check the restored frames' SHA-256."""
    path = inside(folder, g["stream"])
    if not path.is_file():
        raise ArchiveError(f"{path}: missing; the archive is incomplete")
    data = path.read_bytes()
    if len(data) != g["stream_bytes"]:
        raise ArchiveError(f"{path}: {len(data)} bytes, the manifest says {g['stream_bytes']}: truncated or damaged")
    if sha256(data) != g["stream_sha256"]:
        raise ArchiveError(f"{path}: SHA-256 mismatch: the stream is damaged (changed bytes); restore it from a copy")
    chunks, at = [], 0
    for n in g["chunk_sizes"]:
        chunks.append(data[at: at + n])
        at += n
    e = g["encoded"]
    enc = Encoded(chunks, tuple(e["shape"]), e["dtype"], e["side"])
    entry = dict(g["codec"])
    codec = codec_class(entry.pop("codec"))(**entry)
    codec.check(ctx)
    try:
        dec = codec.decode(enc, ctx)
    except MedpipeError as exc:
        raise ArchiveError(f"{path}: cannot be decoded ({exc})")
    if tuple(dec.shape) != tuple(e["shape"]):
        raise ArchiveError(f"{path}: decoded {dec.shape}, the manifest says {tuple(e['shape'])}; the archive is damaged")
    restored = mapping_from_dict(g["mapping"]).inverse(dec).astype(np.int32)
    if sha256(np.ascontiguousarray(restored).tobytes()) != g["restored_sha256"]:
        raise ArchiveError(f"{path}: restored frames differ from those recorded at build time; the stream, the "
                           "mapping or the decoder changed")
    return restored


def restore_group(folder: Path, manifest: dict, g: dict, ctx) -> dict[str, np.ndarray]:
    """scan id -> restored stored values (source dtype), every slice checked against its SHA-256 if lossless."""
    scans = {s["id"]: s for s in manifest["scans"]}
    frames = decode_group(folder, g, ctx)
    out = {}
    for j, sid in enumerate(g["scans"]):
        s = scans[sid]
        order = [(g["scans"].index(x), k) for x, k in g["order"]]
        vol = (scan_frames(frames, order, j, s["shape"][0]) - s.get("value_offset", 0)).astype(np.dtype(s["dtype"]))
        if g["lossless"]:
            bad = [k for k, sl in enumerate(vol) if slice_sha(sl, s["dtype"]) != s["slice_sha256"][k]]
            if bad:
                raise ArchiveError(f"{folder}: scan {sid} ({s['name']}): {len(bad)} slice(s) fail their SHA-256 "
                                   f"(first: slice {bad[0]}); the archive is damaged")
        out[sid] = vol
    return out




def verify_archive(folder: Path, ctx, console=None) -> dict:
    """Decode every group and check every checksum; raises ArchiveError on the first problem."""
    folder = Path(folder)
    m = read_manifest(folder)
    read_order(folder, m)
    check_headers(folder, m)
    t0 = time.perf_counter()
    n = 0
    for g in m["groups"]:
        n += len(restore_group(folder, m, g, ctx))
        if console:
            what = ("bit-exact, every slice SHA-256 checked" if g["lossless"]
                    else "lossy: decoded frames match the build")
            console.print(f"{g['id']}: {g['stream']} ok ({what})", highlight=False)
    return {"groups": len(m["groups"]), "scans": n, "seconds": time.perf_counter() - t0, "lossless": m["lossless"]}




def restored_dataset(header: Path, pixels: np.ndarray, scan: dict, group: dict, series_uid: str | None = None):
    """A complete DICOM dataset: the original header plus uncompressed pixel data (Explicit VR Little Endian);
    from a lossy archive, a derived instance by the same rules as lossy DICOM output (dicom.header.mark_lossy)."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(header)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    arr = np.ascontiguousarray(pixels.astype(np.dtype(scan["dtype"]).newbyteorder("<"), copy=False))
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OW" if arr.dtype.itemsize > 1 else "OB"
    ds.BitsAllocated, ds.BitsStored = scan["bits_allocated"], scan["bits_stored"]
    ds.PixelRepresentation = 1 if scan["signed"] else 0
    if not group["lossless"]:
        method = codec_class(group["codec"]["codec"]).lossy_method
        mark_lossy(ds, method, group["cr"], series_uid or ds.SeriesInstanceUID, f"medpipe archive, {group['label']}")
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def extract_archive(folder: Path, out: Path, ctx, patient: str | None = None, console=None) -> list[Path]:
    """Write each selected scan back as a DICOM series under ``out``; returns the series folders."""
    folder, out = Path(folder), Path(out)
    m = read_manifest(folder)
    read_order(folder, m)
    chosen = select_scans(m, patient)
    sids = {s["id"] for s in chosen}
    check_headers(folder, m, sids)
    targets = {s["id"]: inside(out, f"{s['id']}_{s['name']}") for s in chosen}  # refuses '../', drives, ...
    clash = [str(p) for p in targets.values() if p.exists()]
    if clash:
        raise ArchiveError(f"{clash[0]}: already exists; extract into an empty folder or remove it")
    groups = {g["id"]: g for g in m["groups"]}
    created = not out.exists()
    make_dirs(out)
    clean_stale(out)  # what a killed extract left behind
    tmp = part_name(out / "extract")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    report = []
    ok = False
    try:
        for gid in dict.fromkeys(s["group"] for s in chosen):
            g = groups[gid]
            restored = restore_group(folder, m, g, ctx)  # every slice's SHA-256 checked before writing
            for s in chosen:
                if s["group"] != gid:
                    continue
                dest = tmp / targets[s["id"]].name
                dest.mkdir()
                vol, start = restored[s["id"]], 0
                series_uid = None if g["lossless"] else generate_uid()  # a lossy copy is a new series
                for f in s["files"]:
                    px = vol[start: start + f["frames"]] if f["multiframe"] else vol[start]
                    ds = restored_dataset(inside(folder, *f["header"].split("/")), px, s, g, series_uid)
                    ds.save_as(inside(dest, f["name"]), enforce_file_format=True)
                    start += f["frames"]
                q = s.get("quality") or {}
                report.append({"scan": s["id"], "name": s["name"], "patient_id": s["patient_id"],
                               "slices": s["shape"][0], "lossless": g["lossless"], **q})
        for sid, target in targets.items():
            os.replace(tmp / target.name, target)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok and created:
            shutil.rmtree(out, ignore_errors=True)  # it was ours and holds nothing else
    if console:
        _print_quality(report, console)
    return list(targets.values())


def _print_quality(report: list[dict], console) -> None:
    from rich.table import Table

    t = Table(title="restored scans", title_justify="left")
    for c in ("scan", "series", "patient", "slices", "exact", "PSNR dB", "SSIM", "max err"):
        t.add_column(c)
    for r in report:
        exact = r.get("exact")
        t.add_row(r["scan"], r["name"], r["patient_id"] or "-", str(r["slices"]),
                  "[green]bit-exact (SHA-256)[/]" if r["lossless"] else "[yellow]lossy[/]",
                  "inf" if exact else f"{r.get('psnr_db', float('nan')):.2f}",
                  "1" if exact else f"{r.get('ssim', float('nan')):.5f}", str(r.get("max_abs_err", "-")))
    console.print(t)
