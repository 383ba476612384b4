"""The archive folder's layout and its readers: manifest, order.txt, patients.txt, header files, checksums.

An archive is a folder::

    manifest.json        everything restoring needs: groups, value mappings, codec settings and versions,
                         stream and header checksums, SHA-256 of every original slice's pixel data
    order.txt            one line per stream frame: group, position, scan, slice, file (readable by a person)
    patients.txt         who is inside: scan, group, patient, study/series identity, slices
    g01.mkv ...          one stream per group (video), or g01.jpegxl.bin (per-slice streams, concatenated)
    headers/s01/0000.dcm each original file's header: DICOM without PixelData
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import MedpipeError

FORMAT = "medpipe-intertwined-archive/1"
MANIFEST, ORDER, PATIENTS, HEADERS = "manifest.json", "order.txt", "patients.txt", "headers"


class ArchiveError(MedpipeError):
    """An archive is missing, damaged or inconsistent; the message names the file and what is wrong."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def slice_sha(sl: np.ndarray, dtype: str) -> str:
    """SHA-256 of one slice's pixel values as little-endian samples of the source dtype."""
    return sha256(np.ascontiguousarray(sl.astype(np.dtype(dtype).newbyteorder("<"), copy=False)).tobytes())


def order_lines(groups: list[dict], scans: dict[str, dict]) -> str:
    lines = ["# medpipe intertwined archive: one line per frame of each group's stream",
             "# group  position  scan  slice  file   (slice: 0-based index in the restored series)"]
    for g in groups:
        for pos, (sid, k) in enumerate(g["order"]):
            lines.append(f"{g['id']}\t{pos}\t{sid}\t{k}\t{file_of_slice(scans[sid], k)}")
    return "\n".join(lines) + "\n"


def file_of_slice(scan: dict, k: int) -> str:
    start = 0
    for f in scan["files"]:
        if k < start + f["frames"]:
            return f["name"] if f["frames"] == 1 else f"{f['name']}#{k - start}"
        start += f["frames"]
    return "?"


def patient_lines(scans: list[dict]) -> str:
    cols = ["scan", "group", "patient_id", "patient_name", "study_date", "series_number", "series_description",
            "modality", "slices", "rows x cols", "series_uid", "source folder"]
    lines = ["# medpipe intertwined archive: who is inside (tab-separated)", "\t".join(cols)]
    for s in scans:
        lines.append("\t".join(str(x) for x in (
            s["id"], s["group"], s["patient_id"], s["patient_name"], s["study_date"], s["series_number"],
            s["series_description"], s["modality"], s["shape"][0], f"{s['shape'][1]}x{s['shape'][2]}",
            s["series_uid"], s["name"])))
    return "\n".join(lines) + "\n"



def scan_frames(frames: np.ndarray, order: list[tuple[int, int]], scan_index: int, n: int) -> np.ndarray:
    """Frames of one scan, back in slice order, from a stream in ``order``."""
    pos = np.empty(n, np.int64)
    for p, (i, k) in enumerate(order):
        if i == scan_index:
            pos[k] = p
    return frames[pos]


# ---------------------------------------------------------------- read / verify

def read_manifest(folder: Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise ArchiveError(f"{folder}: not an archive folder (does not exist)")
    path = folder / MANIFEST
    if not path.is_file():
        raise ArchiveError(f"{path}: missing; {folder} is not a complete medpipe archive")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{path}: damaged (not valid JSON: {exc}); restore the archive from a copy")
    if m.get("format") != FORMAT:
        raise ArchiveError(f"{path}: format {m.get('format')!r} is not {FORMAT!r}; a newer or foreign archive")
    return m


def read_order(folder: Path, manifest: dict) -> None:
    """order.txt must list exactly the manifest's frames, in order: a missing or changed line is damage."""
    path = folder / ORDER
    if not path.is_file():
        raise ArchiveError(f"{path}: missing; the archive is incomplete")
    got: dict[str, list] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            gid, pos, sid, k = parts[0], int(parts[1]), parts[2], int(parts[3])
        except (IndexError, ValueError):
            raise ArchiveError(f"{path}: line {n} is damaged ({line[:60]!r}); expected group, position, scan, slice")
        got.setdefault(gid, []).append((pos, sid, k, n))
    for g in manifest["groups"]:
        rows = got.pop(g["id"], [])
        if len(rows) != len(g["order"]):
            raise ArchiveError(f"{path}: group {g['id']} lists {len(rows)} frames, the manifest {len(g['order'])} "
                               f"({abs(len(g['order']) - len(rows))} line(s) missing or extra); the archive is "
                               "damaged - restore it from a copy")
        for expect_pos, ((pos, sid, k, n), (msid, mk)) in enumerate(zip(rows, g["order"])):
            if (pos, sid, k) != (expect_pos, msid, mk):
                raise ArchiveError(f"{path}: line {n} says {g['id']} position {pos} = {sid} slice {k}, the manifest "
                                   f"{expect_pos} = {msid} slice {mk}; the archive is damaged")
    if got:
        raise ArchiveError(f"{path}: lists unknown group(s) {sorted(got)}; the archive is damaged")



def check_headers(folder: Path, manifest: dict, sids=None) -> None:
    for s in manifest["scans"]:
        if sids is not None and s["id"] not in sids:
            continue
        for f in s["files"]:
            p = folder / f["header"]
            if not p.is_file():
                raise ArchiveError(f"{p}: missing header of {s['id']} file {f['name']}; the archive is incomplete")
            if sha256(p.read_bytes()) != f["header_sha256"]:
                raise ArchiveError(f"{p}: SHA-256 mismatch: header of {s['id']} file {f['name']} is damaged")




def select_scans(manifest: dict, patient: str | None) -> list[dict]:
    if not patient:
        return list(manifest["scans"])
    hit = [s for s in manifest["scans"]
           if patient in (s["id"], s["name"], s["patient_id"], s["patient_hash"], s["series_uid"])]
    if not hit:
        known = ", ".join(f"{s['id']} ({s['patient_id'] or s['name']})" for s in manifest["scans"])
        raise ArchiveError(f"no scan of patient {patient!r} in the archive; inside: {known}")
    return hit
