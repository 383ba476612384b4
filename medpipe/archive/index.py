"""The sealed index: one file that lists every file of the archive and every field that shapes restored output,
and the SEAL that holds the index's own checksum. Reading an archive starts here, always in this order:

1. ``SEAL`` (format, index size and SHA-256) -> ``index.json`` must match it byte for byte;
2. the index's structure and every name in it (no separator, '..', absolute path or Windows-reserved name), before
   anything is written anywhere;
3. every file it lists (size and SHA-256), and no file it does not list;
4. ``order.txt`` and ``patients.txt``, views of the index for people, equal to what the index says, byte for byte.

The folder::

    SEAL             format line, then "index.json <bytes> <sha256>"
    index.json       groups (candidate sizes, the one kept, value mapping, stream order, chunk sizes), scans (bits,
                     signedness, UIDs, patient, files, SHA-256 of every slice and of every restored file), the list
                     of every file with its size and SHA-256
    order.txt        one line per stream position: group, position, scan, slice, file
    patients.txt     who is inside
    g01.bin ...      each group's codestreams, concatenated
    headers/s01.hdr  each scan's compact header store (headers.py)

Anyone who rewrites the index AND its SEAL can make the archive say something else: the SEAL has no key. The checks
of step 2 and the header store's own values (restore: UIDs, bits, shapes, each file's name) still refuse an index
that contradicts the headers; and an archive built with ``--sign`` carries an Ed25519 signature of the index
(``SIGNATURE``, sign.py) that only the holder of the private key can make.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from ..errors import MedpipeError, OutputError, described
from ..files import atomic_write_bytes, atomic_write_text, component_problem
from .schema import check_schema

FORMAT = "medpipe-archive/2"
OLD_FORMAT_FILE = "manifest.json"  # format 1 (intertwined archives before the seal)
SEAL, INDEX, ORDER, PATIENTS, HEADERS = "SEAL", "index.json", "order.txt", "patients.txt", "headers"
SIGNATURE = "SIGNATURE"  # optional: an Ed25519 signature of index.json (sign.py)
SHA = re.compile(r"^[0-9a-f]{64}$")
DTYPES = {(8, False): "|u1", (8, True): "|i1", (16, False): "<u2", (16, True): "<i2", (32, False): "<u4",
          (32, True): "<i4"}


class ArchiveError(MedpipeError):
    """An archive is missing, damaged or inconsistent; the message names the file and what is wrong."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def slice_sha(sl: np.ndarray, dtype: str) -> str:
    """SHA-256 of one slice's stored values as little-endian samples of ``dtype``."""
    return sha256(np.ascontiguousarray(sl.astype(np.dtype(dtype).newbyteorder("<"), copy=False)).tobytes())


def series_folder(scan: dict) -> str:
    return f"{scan['id']}_{scan['name']}"


# ---------------------------------------------------------------- views for people

def file_of_slice(scan: dict, k: int) -> str:
    start = 0
    for f in scan["files"]:
        if k < start + f["frames"]:
            return f["name"] if f["frames"] == 1 else f"{f['name']}#{k - start}"
        start += f["frames"]
    return "?"


def order_lines(index: dict) -> str:
    scans = {s["id"]: s for s in index["scans"]}
    lines = ["# medpipe archive: one line per position of each group's stream (derived from index.json)",
             "# group  position  scan  slice  file   (slice: 0-based index in the restored series)"]
    for g in index["groups"]:
        for pos, (sid, k) in enumerate(g["order"]):
            lines.append(f"{g['id']}\t{pos}\t{sid}\t{k}\t{file_of_slice(scans[sid], k)}")
    return "\n".join(lines) + "\n"


def patient_lines(index: dict) -> str:
    cols = ["scan", "group", "patient_id", "patient_name", "study_date", "series_number", "series_description",
            "modality", "slices", "rows x cols", "series_uid", "series folder"]
    lines = ["# medpipe archive: who is inside (tab-separated; derived from index.json)", "\t".join(cols)]
    for s in index["scans"]:
        lines.append("\t".join(str(x) for x in (
            s["id"], s["group"], s["patient_id"], s["patient_name"], s["study_date"], s["series_number"],
            s["series_description"], s["modality"], s["shape"][0], f"{s['shape'][1]}x{s['shape'][2]}",
            s["series_uid"], series_folder(s))))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- writing

def file_entry(folder: Path, rel: str) -> dict:
    data = (folder / rel).read_bytes()
    return {"path": rel, "bytes": len(data), "sha256": sha256(data)}


def seal(folder: Path, index: dict, written: list[str]) -> bytes:
    """Write the views, list every file in the index, write index.json, then SEAL (last)."""
    atomic_write_text(folder / ORDER, order_lines(index))
    atomic_write_text(folder / PATIENTS, patient_lines(index))
    index["files"] = [file_entry(folder, rel) for rel in [*written, ORDER, PATIENTS]]
    data = json.dumps(index, indent=1, default=str).encode("utf-8")
    atomic_write_bytes(folder / INDEX, data)
    atomic_write_text(folder / SEAL, f"{FORMAT}\n{INDEX} {len(data)} {sha256(data)}\n")
    return data


# ---------------------------------------------------------------- reading: seal, structure, names

def open_archive(folder: Path) -> dict:
    """Steps 1 and 2: the SEAL, the index it seals, its structure and every name; ArchiveError otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArchiveError(f"{folder}: not an archive folder (does not exist)")
    path = folder / SEAL
    if not path.is_file():
        if (folder / OLD_FORMAT_FILE).is_file():
            raise ArchiveError(f"{folder}: an archive of format 1 (manifest.json, no SEAL); this medpipe reads "
                               f"{FORMAT}: extract it with the medpipe that built it, then build it again")
        raise ArchiveError(f"{path}: missing; {folder} is not a complete medpipe archive")
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    if not lines or lines[0] != FORMAT:
        raise ArchiveError(f"{path}: format {lines[0] if lines else '(empty)'!r} is not {FORMAT!r}; damaged, or a "
                           "newer or foreign archive")
    parts = lines[1].split(" ") if len(lines) > 1 else []
    if len(parts) != 3 or parts[0] != INDEX or not parts[1].isdigit() or not SHA.match(parts[2]):
        raise ArchiveError(f"{path}: damaged (expected '{INDEX} <bytes> <sha256>' on line 2)")
    ipath = folder / INDEX
    if not ipath.is_file():
        raise ArchiveError(f"{ipath}: missing; the archive is incomplete")
    data = ipath.read_bytes()
    if len(data) != int(parts[1]) or sha256(data) != parts[2]:
        raise ArchiveError(f"{ipath}: does not match its SEAL ({len(data)} bytes, SEAL says {parts[1]}; SHA-256 "
                           f"{'equal' if sha256(data) == parts[2] else 'differs'}): the index was edited or damaged; "
                           "restore the archive from a copy")
    try:
        index = json.loads(data.decode("utf-8"))
    except RecursionError:  # a resealed index of 50 000 nested lists: the C parser recurses per level
        raise ArchiveError(f"{ipath}: nested too deeply to be a medpipe index; the archive is damaged") from None
    except ValueError as exc:
        raise ArchiveError(f"{ipath}: not JSON ({described(exc)}); the archive is damaged") from None
    try:
        check_schema(index)  # every type consumers rely on, once, so that none of them meets a wrong one
        check_index(index)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ArchiveError(f"{ipath}: inconsistent ({described(exc)}); the archive is damaged") from None
    except OutputError as exc:
        raise ArchiveError(f"{ipath}: {exc}") from None
    return index


def _name(text, what: str) -> str:
    """A name restore will use: refused (never renamed) when it could leave its folder."""
    if not isinstance(text, str):
        raise ValueError(f"{what} is not a string")
    why = component_problem(text)
    if why:
        raise OutputError(f"{what} {text[:80]!r} {why}; refused (it could write outside --out)")
    return text


def _path(rel, what: str) -> str:
    """An archive-relative path ('g01.bin', 'headers/s01.hdr'): each component a safe name."""
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"{what} is not a path")
    for part in rel.split("/"):
        _name(part, what)
    return rel


def check_index(index: dict) -> None:
    """Names and the relations between fields (the types: schema.check_schema); raises (ValueError, OutputError)."""
    if index.get("format") != FORMAT:
        raise ValueError(f"format {index.get('format')!r} is not {FORMAT!r}")
    listed = {}
    for f in index["files"]:
        rel = _path(f["path"], "listed file")
        if rel in listed or rel in (SEAL, INDEX, SIGNATURE):
            raise ValueError(f"file {rel} is listed twice")
        if not isinstance(f["bytes"], int) or not SHA.match(str(f["sha256"])):
            raise ValueError(f"file {rel}: size or SHA-256 is malformed")
        listed[rel] = f
    for rel in (ORDER, PATIENTS):
        if rel not in listed:
            raise ValueError(f"{rel} is not listed")
    scans = {}
    folders = set()
    for s in index["scans"]:
        if not re.fullmatch(r"s\d+", str(s["id"])) or s["id"] in scans:
            raise ValueError(f"scan id {s['id']!r} is malformed or repeated")
        _name(s["name"], f"scan {s['id']} name")
        folder = _name(series_folder(s), f"scan {s['id']} series folder")
        if folder.casefold() in folders:
            raise ValueError(f"two scans restore into {folder}")
        folders.add(folder.casefold())
        if s["dtype"] != DTYPES.get((s["bits_allocated"], bool(s["signed"]))):
            raise ValueError(f"scan {s['id']}: dtype {s['dtype']} does not match bits_allocated "
                             f"{s['bits_allocated']} and signed {s['signed']}")
        if not 1 <= s["bits_stored"] <= s["bits_allocated"]:
            raise ValueError(f"scan {s['id']}: bits_stored {s['bits_stored']} outside 1..{s['bits_allocated']}")
        if _path(s["headers"], f"scan {s['id']} header store") not in listed:
            raise ValueError(f"scan {s['id']}: header store {s['headers']} is not listed")
        names = set()
        for f in s["files"]:
            n = _name(f["name"], f"scan {s['id']} file name").casefold()
            if n in names:
                raise ValueError(f"scan {s['id']}: two files named {f['name']}")
            names.add(n)
        n = s["shape"][0]
        if sum(f["frames"] for f in s["files"]) != n or len(s["slice_sha256"]) != n or len(s["shape"]) != 3:
            raise ValueError(f"scan {s['id']}: shape {s['shape']}, files and slice checksums disagree")
        if s["frame_order"] is not None and sorted(s["frame_order"]) != list(range(n)):
            raise ValueError(f"scan {s['id']}: frame_order is not a permutation")
        scans[s["id"]] = s
    seen = set()
    for g in index["groups"]:
        stream = _path(g["stream"], f"group {g['id']} stream")
        if stream not in listed:
            raise ValueError(f"group {g['id']}: stream {stream} is not listed")
        sizes = [c for p in g["parts"] for c in p["chunk_sizes"]]
        if sum(sizes) != listed[stream]["bytes"]:
            raise ValueError(f"group {g['id']}: chunk sizes add up to {sum(sizes)}, the stream has "
                             f"{listed[stream]['bytes']} bytes")
        jpegs = g.get("jpeg_sha256")
        if jpegs is not None and (len(jpegs) != len(sizes) or not all(SHA.match(str(x)) for x in jpegs)):
            raise ValueError(f"group {g['id']}: jpeg_sha256 is not one SHA-256 per stream")
        if not re.fullmatch(r"[\w .,()+-]{0,80}", str(g.get("jpeg_decoder", ""))):  # printed in verify's note
            raise ValueError(f"group {g['id']}: jpeg_decoder {str(g['jpeg_decoder'])[:40]!r} is malformed")
        want = sorted((sid, k) for sid in g["scans"] for k in range(scans[sid]["shape"][0]))
        if sorted((sid, k) for sid, k in g["order"]) != want:
            raise ValueError(f"group {g['id']}: the stream order is not every slice of its scans once")
        for sid in g["scans"]:
            if scans[sid]["group"] != g["id"] or sid in seen:
                raise ValueError(f"scan {sid} is in group {g['id']} and {scans[sid]['group']}")
            seen.add(sid)
    if seen != set(scans):
        raise ValueError(f"scan(s) {sorted(set(scans) - seen)} belong to no group")


# ---------------------------------------------------------------- reading: files and views

def check_files(folder: Path, index: dict) -> None:
    """Step 3: every listed file has its size and SHA-256; nothing unlisted is in the folder."""
    folder = Path(folder)
    listed = {f["path"]: f for f in index["files"]}
    for rel, f in listed.items():
        p = folder.joinpath(*rel.split("/"))
        if not p.is_file():
            raise ArchiveError(f"{p}: missing; the archive is incomplete (deleted?); restore it from a copy")
        size = p.stat().st_size
        if size != f["bytes"]:
            raise ArchiveError(f"{p}: {size} bytes, the index says {f['bytes']}: truncated or damaged")
        if sha256(p.read_bytes()) != f["sha256"]:
            raise ArchiveError(f"{p}: SHA-256 mismatch: damaged (changed bytes); restore it from a copy")
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and rel not in listed and rel not in (SEAL, INDEX, SIGNATURE):
            raise ArchiveError(f"{p}: not part of the sealed archive (added after it was built); remove it")


def check_views(folder: Path, index: dict) -> None:
    """Step 4: order.txt and patients.txt say exactly what the index says."""
    for rel, text in ((ORDER, order_lines(index)), (PATIENTS, patient_lines(index))):
        got = (Path(folder) / rel).read_bytes().decode("utf-8", "replace").splitlines()
        want = text.splitlines()
        for n, (a, b) in enumerate(zip(got, want), 1):
            if a != b:
                raise ArchiveError(f"{Path(folder) / rel}: line {n} says {a[:70]!r}, the index {b[:70]!r}; damaged")
        if len(got) != len(want):
            raise ArchiveError(f"{Path(folder) / rel}: {len(got)} lines, the index gives {len(want)}; damaged")


def select_scans(index: dict, patient: str | None) -> list[dict]:
    if not patient:
        return list(index["scans"])
    hit = [s for s in index["scans"]
           if patient in (s["id"], s["name"], s["patient_id"], s["patient_hash"], s["series_uid"])]
    if not hit:
        known = ", ".join(f"{s['id']} ({s['patient_id'] or s['name']})" for s in index["scans"])
        raise ArchiveError(f"no scan of patient {patient!r} in the archive; inside: {known}")
    return hit
