"""Reading an archive back and checking all of it: the seal, every file, the views, each scan's header store
against the index, each group's decoded frames against their checksums, and every restored file's SHA-256.
``verify`` runs all of it and writes nothing; ``extract`` runs the same checks on what it restores."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..codecs import Encoded
from ..depth import mapping_from_dict
from ..errors import MedpipeError, described
from ..jpeg_decoder import described_decoder
from ..memory import TooLarge, check_fits
from ..syntaxes import JPEGXLLossless
from .candidates import codec_from_record, decode_codestream
from .dicomfile import dataset, jpeg_original, native_file
from .headers import HeaderError, Record, header_sha, record_name, unpack_store
from .index import ArchiveError, check_files, check_views, open_archive, sha256, slice_sha
from .plan import scan_frames
from .sign import check_signature


def open_checked(folder: Path, key: Path | None = None, require_signature: bool = False, say=None) -> dict:
    """The seal, the signature (checked with ``key``; see sign.py), the index, every file and both views; returns
    the index."""
    index = open_archive(folder)
    check_signature(folder, key, require_signature, say)
    check_files(folder, index)
    check_views(folder, index)
    return index


# ---------------------------------------------------------------- headers

def _int(ds, keyword: str, default=None):
    value = ds.get(keyword, default)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def load_headers(folder: Path, scan: dict) -> list[Record]:
    """The scan's header records, each checked against its SHA-256 and against the index's fields."""
    path = Path(folder) / Path(*scan["headers"].split("/"))
    try:
        records = unpack_store(path.read_bytes())
    except HeaderError as exc:
        raise ArchiveError(f"{path}: damaged header store ({exc})") from None
    if len(records) != len(scan["files"]):
        raise ArchiveError(f"{path}: {len(records)} headers, the index lists {len(scan['files'])} files")
    named = any(record_name(r) is not None for r in records)  # archives built before 2026-12-05 keep no names
    for record, f in zip(records, scan["files"]):
        if named and record_name(record) != f["name"]:  # the name restore gives is the one stored with this header
            raise ArchiveError(f"{path}: the header stored for {f['name']} (SOP Instance UID {f['sop_uid']}) is "
                               f"that of file {record_name(record)!r}; the index was edited (files renamed?) or "
                               "is damaged")
        if header_sha(record) != f["header_sha256"]:
            raise ArchiveError(f"{path}: header of {f['name']} fails its SHA-256; the archive is damaged")
        ds = dataset(record)
        facts = {"SOP Instance UID": (str(ds.get("SOPInstanceUID", "")), f["sop_uid"]),
                 "Series Instance UID": (str(ds.get("SeriesInstanceUID", "")), scan["series_uid"]),
                 "Study Instance UID": (str(ds.get("StudyInstanceUID", "")), scan["study_uid"]),
                 "Patient ID": (str(ds.get("PatientID", "") or ""), scan["patient_id"]),
                 "Bits Stored": (_int(ds, "BitsStored"), scan["bits_stored"]),
                 "Bits Allocated": (_int(ds, "BitsAllocated"), scan["bits_allocated"]),
                 "Pixel Representation": (_int(ds, "PixelRepresentation", 0), int(scan["signed"])),
                 "Rows x Columns": ([_int(ds, "Rows"), _int(ds, "Columns")], scan["shape"][1:]),
                 "Number of Frames": (_int(ds, "NumberOfFrames", 1), f["frames"])}
        for what, (header, said) in facts.items():
            if header != said:
                raise ArchiveError(f"{path}: {f['name']}: the header says {what} {header!r}, the index {said!r}; "
                                   "the index was edited or is damaged")
    return records


# ---------------------------------------------------------------- pixels

def stream_chunks(folder: Path, g: dict) -> list[list[bytes]]:
    """The group's codestreams, split per part by the index's chunk sizes (the stream was checked already)."""
    data = (Path(folder) / g["stream"]).read_bytes()
    parts, at = [], 0
    for p in g["parts"]:
        chunks = []
        for n in p["chunk_sizes"]:
            chunks.append(data[at:at + n])
            at += n
        parts.append(chunks)
    return parts


def check_group_shapes(folder: Path, index: dict, g: dict) -> None:
    """Before any payload is decoded: each scan's shape in the index agrees with its stored headers (rows, columns,
    frames), every part of the stream has the scans' rows and columns and together their slices, and the decode
    fits in the memory free here. A decoder is then only ever asked for the shape the headers give."""
    path = Path(folder) / g["stream"]
    scans = [s for s in index["scans"] if s["id"] in g["scans"]]
    for s in scans:
        load_headers(folder, s)  # Rows, Columns, Number of Frames of every header against the index
    sizes = {tuple(s["shape"][1:]) for s in scans}
    if len(sizes) != 1:
        raise ArchiveError(f"{path}: the scans of group {g['id']} have different rows x columns {sorted(sizes)}; "
                           "the index is damaged")
    (rows, cols), = sizes
    slices = len(g["order"])
    if g["layout"] != "dicom":
        shapes = [tuple(p["shape"]) for p in g["parts"]]
        if any(len(sh) != 3 or sh[1:] != (rows, cols) for sh in shapes) or sum(sh[0] for sh in shapes) != slices:
            raise ArchiveError(f"{path}: the index gives its parts the shapes {shapes}, the stored headers "
                               f"{slices} slices of {rows} x {cols}; the index was edited or is damaged")
    if len(g["parts"]) and g["layout"] == "dicom" and len(g["parts"][0]["chunk_sizes"]) != slices:
        raise ArchiveError(f"{path}: {len(g['parts'][0]['chunk_sizes'])} codestreams for {slices} slices")
    # the decoded parts, their int32 copy, each scan's copy in its own dtype: about 12 bytes a voxel at the peak
    check_fits(12 * slices * rows * cols, f"{path}: group {g['id']} ({slices} x {rows} x {cols})")


def _decoded_frames(path: Path, g: dict, parts: list, order: list, scans: dict, ctx) -> np.ndarray:
    """The group's frames in stream order (int32, before each scan's value offset), as this machine decodes them."""
    try:
        lossless = g["layout"] == "dicom" or (codec_from_record(g["codec"]).lossless and
                                              mapping_from_dict(g["mapping"]).exact)
        if lossless != g["lossless"]:
            raise ArchiveError(f"{path}: the index says lossless {g['lossless']}, its codec and mapping say "
                               f"{lossless}; the index was edited or is damaged")
        if g["layout"] == "dicom":
            return np.stack([decode_codestream(JPEGXLLossless, c, scans[g["scans"][i]])
                             for c, (i, _) in zip(parts[0], order)]).astype(np.int32)
        codec = codec_from_record(g["codec"])
        codec.check(ctx)
        decoded = [codec.decode(Encoded(chunks, tuple(p["shape"]), p["dtype"], p["side"]), ctx)
                   for chunks, p in zip(parts, g["parts"])]
        for dec, p in zip(decoded, g["parts"]):
            if tuple(dec.shape) != tuple(p["shape"]):
                raise ArchiveError(f"{path}: decoded {dec.shape}, the index says {tuple(p['shape'])}")
        mapping = mapping_from_dict(g["mapping"])
        return np.concatenate([mapping.inverse(d).astype(np.int32) for d in decoded])
    except ArchiveError:
        raise
    except TooLarge as exc:
        raise ArchiveError(str(exc)) from None
    except (MedpipeError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{path}: cannot be decoded ({described(exc)})") from None


def jpeg_claim(g: dict) -> bool:
    """A jpegxl-jpeg group built with a SHA-256 per JPEG frame: its exactness is the JPEG bitstreams and the files;
    its decoded values are what this machine's JPEG decoder gives (older archives: the values, as other groups)."""
    return g["codec"].get("codec") == "jpegxl-jpeg" and g.get("jpeg_sha256") is not None


def restore_group(folder: Path, index: dict, g: dict, ctx, say=None, jpegs: dict | None = None
                  ) -> dict[str, np.ndarray]:
    """scan id -> stored values in slice order (the scan's dtype), every slice checked when lossless. A group that
    keeps JPEG frames (:func:`jpeg_claim`) has every frame checked instead (``jpegs``: :func:`jpeg_streams` of the
    group when the caller has it already), and values that differ from the build's are said in one line through
    ``say`` (another JPEG decoder), not refused."""
    path = Path(folder) / g["stream"]
    scans = {s["id"]: s for s in index["scans"]}
    order = [(g["scans"].index(sid), k) for sid, k in g["order"]]
    check_group_shapes(folder, index, g)
    claim = jpeg_claim(g)
    if claim and jpegs is None:
        jpeg_streams(folder, g)  # every JPEG frame against the build's SHA-256, before any value is decoded
    frames = _decoded_frames(path, g, stream_chunks(folder, g), order, scans, ctx)
    if len(frames) != len(order):
        raise ArchiveError(f"{path}: {len(frames)} decoded frames, the stream order has {len(order)}")
    as_built = sha256(np.ascontiguousarray(frames).tobytes()) == g["restored_sha256"]
    if not as_built and not claim:
        raise ArchiveError(f"{path}: decoded frames differ from those recorded at build time; the stream, the "
                           "value mapping or the decoder changed")
    out, differ = {}, 0
    for j, sid in enumerate(g["scans"]):
        s = scans[sid]
        offset = 0 if g["layout"] == "dicom" else s["value_offset"]  # dicom: the stored values themselves
        vol = scan_frames(frames, order, j, s["shape"][0]) - offset
        info = np.iinfo(np.dtype(s["dtype"]))
        if vol.size and (int(vol.min()) < info.min or int(vol.max()) > info.max):
            raise ArchiveError(f"{path}: scan {sid} decodes to values outside {s['dtype']}; the index is damaged")
        vol = vol.astype(np.dtype(s["dtype"]))
        bad = [k for k, sl in enumerate(vol) if slice_sha(sl, s["dtype"]) != s["slice_sha256"][k]] \
            if g["lossless"] else []
        if bad and not claim:
            raise ArchiveError(f"{path}: scan {sid} ({s['name']}): {len(bad)} slice(s) fail their SHA-256 "
                               f"(first: slice {bad[0]}); the archive is damaged")
        differ += len(bad)
        out[sid] = vol
    if claim and not as_built and say:
        say(f"note: {g['id']}: {differ} of {len(order)} slice(s) decode to other values here "
            f"({described_decoder()}) than at build ({g.get('jpeg_decoder') or 'decoder not recorded'}): JPEG "
            "decoders may round differently (ISO 10918-1); the JPEG frames and the files are checked by SHA-256",
            highlight=False, soft_wrap=True)
    return out


def stored_frames(scan: dict, vol: np.ndarray):
    """(file entry, its frames in stored order, their slice indices in the volume) for each file."""
    fo = scan["frame_order"]
    idx = np.arange(vol.shape[0]) if fo is None else np.argsort(fo)
    start = 0
    for f in scan["files"]:
        sel = idx[start:start + f["frames"]]
        yield f, vol[sel], sel
        start += f["frames"]


def jpeg_streams(folder: Path, g: dict) -> dict | None:
    """(scan, slice) -> its JPEG frame, given back by the group's JPEG XL JPEG Recompression stream and checked
    against the SHA-256 the build recorded (:func:`jpeg_claim`); None for a group that does not keep JPEG frames
    (not jpegxl-jpeg)."""
    if g["codec"].get("codec") != "jpegxl-jpeg":
        return None
    from ..codecs.frames import original_jpeg

    path = Path(folder) / g["stream"]
    chunks = [c for part in stream_chunks(folder, g) for c in part]
    want = g.get("jpeg_sha256")
    if want is not None and (len(want) != len(chunks) or len(chunks) != len(g["order"])):
        raise ArchiveError(f"{path}: {len(chunks)} streams, {len(want)} JPEG checksums, {len(g['order'])} slices; "
                           "the index is damaged")
    out = {}
    for p, (s, k) in enumerate(g["order"]):
        try:
            jpeg = original_jpeg(chunks[p])
        except Exception as exc:  # noqa: BLE001 - libjxl raises its own types on a damaged stream
            raise ArchiveError(f"{path}: the JPEG XL stream of scan {s} slice {k} gives no JPEG back "
                               f"({described(exc)}); the archive is damaged") from None
        if want is not None and sha256(jpeg) != want[p]:
            raise ArchiveError(f"{path}: scan {s} slice {k}: the JPEG frame fails its SHA-256 (recorded at build "
                               "time); the archive is damaged")
        out[(s, k)] = jpeg
    return out


def of_scan(jpegs: dict | None, sid: str) -> dict | None:
    """slice -> JPEG frame of scan ``sid``, from :func:`jpeg_streams`' answer (None stays None)."""
    return None if jpegs is None else {k: jpeg for (s, k), jpeg in jpegs.items() if s == sid}


def values_as_built(scan: dict, frames: np.ndarray, slices) -> bool:
    """These frames (volume slices ``slices``) are the values the build decoded (each slice's SHA-256)."""
    return all(slice_sha(fr, scan["dtype"]) == scan["slice_sha256"][int(k)] for fr, k in zip(frames, slices))


def restored_file(folder: Path, scan: dict, record: Record, f: dict, frames: np.ndarray, slices,
                  jpeg: dict | None) -> bytes:
    """One file of a lossless group as extract writes it natively: the original rebuilt from its own JPEG frames
    (jpegxl-jpeg groups: ``jpeg``, slice -> checked JPEG frame), else native Pixel Data; ArchiveError unless it is
    what the build recorded -- or, for a JPEG file that comes back native, what it gives from values this
    machine's JPEG decoder made (they differ from the build's: said once by :func:`restore_group`)."""
    data = jpeg_original(record, f, slices, jpeg)
    native = data is None and not scan.get("colour")  # a colour file's slices are grey: never a native file of them
    if native:
        data = native_file(record, frames, scan)
    if data is not None and sha256(data) in (f["restored_sha256"], f["source_sha256"]):
        return data
    if native and jpeg is not None and "jpeg_bot" not in f and not values_as_built(scan, frames, slices):
        # a file not rebuildable from its JPEG frames (build.write_headers), which were checked: only the JPEG
        # decoder's rounding differs from the build's
        return data
    raise ArchiveError(f"{folder / scan['headers']}: {f['name']} would not be restored as recorded at build "
                       "time; the archive is damaged (nothing was written)")


def verify_archive(folder: Path, ctx, console=None, key: Path | None = None, require_signature: bool = False
                   ) -> dict:
    """Every check extract makes, on every scan, writing nothing; ArchiveError on the first problem."""
    folder = Path(folder)
    t0 = time.perf_counter()
    say = console.print if console else None
    index = open_checked(folder, key, require_signature, say)
    scans = {s["id"]: s for s in index["scans"]}
    n = 0
    for g in index["groups"]:
        jpegs = jpeg_streams(folder, g)  # decoded once: checked, then the files rebuilt from them
        restored = restore_group(folder, index, g, ctx, say, jpegs)
        for sid, vol in restored.items():
            s = scans[sid]
            records = load_headers(folder, s)
            if g["lossless"]:
                jpeg = of_scan(jpegs, sid)
                for record, (f, frames, slices) in zip(records, stored_frames(s, vol)):
                    restored_file(folder, s, record, f, frames, slices, jpeg)
            n += 1
        if console:
            what = ("bit-exact: every JPEG frame and every restored file checked by SHA-256" if jpeg_claim(g)
                    else "bit-exact: every slice and every restored file checked by SHA-256" if g["lossless"]
                    else "lossy: decoded frames match the build")
            console.print(f"{g['id']}: {g['stream']} ({g['candidate']}) ok, {what}", highlight=False)
    return {"groups": len(index["groups"]), "scans": n, "seconds": time.perf_counter() - t0,
            "lossless": index["lossless"], "jpeg_groups": sum(jpeg_claim(g) for g in index["groups"])}
