"""Restored DICOM files, assembled from a file's header chunks (headers.py) and its stored values.

- ``native`` (the default): an original that was uncompressed comes back in its own transfer syntax, so the file is
  the original byte for byte (checked against its SHA-256). An original that was compressed comes back as Explicit
  VR Little Endian: File Meta with the new Transfer Syntax UID (and group length), every data set element
  byte-identical, Pixel Data as native little-endian cells of Bits Allocated (PS3.5 8.1.1, A.2).
- an encapsulated syntax (JPEG XL .110, JPEG-LS .80, HTJ2K .201): the same, Pixel Data encapsulated (PS3.5 A.4:
  Basic Offset Table, one fragment per frame, sequence delimiter) from codestreams of the stored values.
- a series stored as baseline JPEG and archived by the jpegxl-jpeg candidate (.111 streams of its own JPEG
  frames): with ``native``, the original files, byte for byte, when the rebuild matches their SHA-256.
- lossy archives: a derived instance by the lossy-compression rules (dicom.header.mark_lossy), through pydicom.

Extended Offset Table elements (7FE0,0001/0002) describe the original's fragments and are left out when the pixel
data is re-encoded. A data set that is not explicit VR little endian (an implicit VR original) is re-encoded by
pydicom for an encapsulated output: its element values are kept, their encoding changes, as PS3.5 A.4 requires.
"""
from __future__ import annotations

import hashlib
import io
import struct

import numpy as np
from pydicom.uid import HTJ2KLossless, JPEGLSLossless

from ..syntaxes import BASELINE_JPEG, JPEGXLLossless
from .headers import AUX, DATA, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, META, NATIVE, PIXEL, PREAMBLE, TAIL, \
    Record, header_bytes, record_syntax, residual, xor

OUTPUT_SYNTAXES = {"native": None, "jpegxl": JPEGXLLossless, "jpegls": JPEGLSLossless, "htj2k": HTJ2KLossless}
EXTENDED_OFFSET_TABLE = (b"\xe0\x7f\x01\x00", b"\xe0\x7f\x02\x00")
PIXEL_TAG = b"\xe0\x7f\x10\x00"


def cell_dtype(bits_allocated: int, signed: bool, little: bool = True) -> np.dtype:
    return np.dtype(("<" if little else ">") + ("i" if signed else "u") + str(bits_allocated // 8))


def native_value(frames: np.ndarray, scan: dict, little: bool = True) -> bytes:
    """Pixel Data value of native frames: Bits Allocated cells, padded to even length (PS3.5 8.1.1, 7.1.1)."""
    data = np.ascontiguousarray(frames.astype(cell_dtype(scan["bits_allocated"], scan["signed"], little))).tobytes()
    return data + b"\x00" if len(data) % 2 else data


def _meta_element(tag: bytes, vr: bytes, value: bytes) -> bytes:
    return tag + vr + struct.pack("<H", len(value)) + value


def meta_with_syntax(record: Record, uid: str) -> list[bytes]:
    """The File Meta elements with Transfer Syntax UID ``uid`` and a recomputed group length (PS3.10 7.1)."""
    value = uid.encode("ascii")
    value += b"\x00" * (len(value) % 2)  # UI values are padded with NULL to even length
    out = [_meta_element(b"\x02\x00\x10\x00", b"UI", value) if c[:4] == b"\x02\x00\x10\x00" else c
           for k, c in record if k == META]
    if out and out[0][:4] == b"\x02\x00\x00\x00":
        out[0] = b"\x02\x00\x00\x00UL\x04\x00" + struct.pack("<I", sum(len(c) for c in out[1:]))
    return out


def _pixel_header(explicit: bool, little: bool, vr: bytes, length: int) -> bytes:
    if not explicit:
        return PIXEL_TAG + struct.pack("<I", length)
    tag = PIXEL_TAG if little else b"\x7f\xe0\x00\x10"
    return tag + vr + b"\x00\x00" + struct.pack("<I" if little else ">I", length)


def native_file(record: Record, frames: np.ndarray, scan: dict) -> bytes:
    """The file with native Pixel Data (see the module docstring)."""
    syntax = record_syntax(record)
    vr = b"OW" if scan["bits_allocated"] > 8 else b"OB"
    if syntax in NATIVE or not syntax:
        # its own syntax: every chunk as it was, the pixel element's header included when the length agrees
        little = syntax != EXPLICIT_BE
        value = native_value(frames, scan, little)
        extra = residual(record)
        if extra is not None and len(extra) == len(value):  # the original's bits above the High Bit
            value = xor(value, extra)
        head = [c for k, c in record if k == PIXEL][0]
        if struct.unpack("<I" if little else ">I", head[-4:])[0] != len(value):
            explicit = syntax != IMPLICIT_LE if syntax else head[4:6].isalpha()
            head = _pixel_header(explicit, little, head[4:6] if explicit else vr, len(value))
        return b"".join(head + value if k == PIXEL else c for k, c in record if k not in AUX)
    value = native_value(frames, scan)
    parts = [c for k, c in record if k == PREAMBLE] + meta_with_syntax(record, EXPLICIT_LE)
    parts += [c for k, c in record if k == DATA and c[:4] not in EXTENDED_OFFSET_TABLE]
    parts.append(_pixel_header(True, True, vr, len(value)) + value)
    parts += [c for k, c in record if k == TAIL]
    return b"".join(parts)


def encapsulated_value(codestreams: list[bytes], has_bot: bool = True) -> bytes:
    """PS3.5 A.4: Basic Offset Table item (empty when not ``has_bot``), one fragment per frame (even length),
    Sequence Delimitation Item."""
    from pydicom.encaps import encapsulate

    return encapsulate([bytes(c) for c in codestreams], fragments_per_frame=1, has_bot=has_bot) + \
        b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def encapsulated_file(record: Record, uid: str, codestreams: list[bytes], has_bot: bool = True) -> bytes:
    """The file with its Pixel Data encapsulated in transfer syntax ``uid``."""
    pixel = PIXEL_TAG + b"OB\x00\x00\xff\xff\xff\xff" + encapsulated_value(codestreams, has_bot)
    if record_syntax(record) in (IMPLICIT_LE, EXPLICIT_BE, ""):
        return _reencoded(record, uid, pixel)
    parts = [c for k, c in record if k == PREAMBLE] + meta_with_syntax(record, uid)
    parts += [c for k, c in record if k == DATA and c[:4] not in EXTENDED_OFFSET_TABLE]
    parts.append(pixel)
    parts += [c for k, c in record if k == TAIL]
    return b"".join(parts)


def jpeg_original(record: Record, f: dict, slices, jpeg: dict | None) -> bytes | None:
    """A file the source stored as baseline JPEG, rebuilt from the JPEG frames the archive's JPEG XL JPEG
    Recompression streams give back (slice -> JPEG frame; the jpegxl-jpeg candidate) in their encapsulation. The
    original file when the rebuild matches its SHA-256 (one fragment per frame, the Basic Offset Table filled or
    empty as the original had it: ``jpeg_bot``, recorded at build time), else None (the file then comes back native,
    as every compressed original does; a colour one is refused)."""
    if jpeg is None or f["transfer_syntax"] not in BASELINE_JPEG:
        return None
    streams = [jpeg[int(k)] for k in slices]
    data = encapsulated_file(record, f["transfer_syntax"], streams, f.get("jpeg_bot", True))
    return data if hashlib.sha256(data).hexdigest() == f["source_sha256"] else None


def jpeg_layout(record: Record, pixel: bytes, frames: int, source_sha: str) -> dict | None:
    """{"jpeg_bot": bool} when the file, stored as baseline JPEG, comes back byte for byte from its JPEG frames
    re-encapsulated as :func:`jpeg_original` does it (one fragment per frame, the Basic Offset Table filled or
    empty); None when it does not (several fragments per frame, other padding) or is not baseline JPEG."""
    from pydicom.encaps import generate_frames

    syntax = record_syntax(record)
    if syntax not in BASELINE_JPEG:
        return None
    try:
        jpegs = list(generate_frames(pixel, number_of_frames=frames))
    except Exception:  # noqa: BLE001 - pydicom raises several types on a damaged encapsulation: not rebuildable
        return None
    for bot in (True, False):
        if hashlib.sha256(encapsulated_file(record, syntax, jpegs, bot)).hexdigest() == source_sha:
            return {"jpeg_bot": bot}
    return None


def dataset(record: Record):
    """The header as a pydicom data set (no pixel data)."""
    import pydicom

    return pydicom.dcmread(io.BytesIO(header_bytes(record)), force=True, stop_before_pixels=True)


def _reencoded(record: Record, uid: str, pixel: bytes) -> bytes:
    """An implicit VR (or big endian, or meta-less) header written as explicit VR little endian by pydicom."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = dataset(record)
    for kw in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if kw in ds:
            del ds[kw]
    meta = FileMetaDataset(getattr(ds, "file_meta", None) or FileMetaDataset())
    meta.TransferSyntaxUID = uid
    meta.setdefault("MediaStorageSOPClassUID", ds.get("SOPClassUID"))
    meta.setdefault("MediaStorageSOPInstanceUID", ds.get("SOPInstanceUID"))
    fp = DicomBytesIO()
    fp.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    ds.file_meta = FileMetaDataset()
    write_dataset(body, ds)
    return fp.getvalue() + body.getvalue() + pixel


def lossy_file(record: Record, frames: np.ndarray, scan: dict, method: str | None, ratio: float, series_uid: str,
               label: str) -> bytes:
    """A derived instance from a lossy archive: native pixel data, the lossy attributes, new UIDs."""
    from pydicom.uid import ExplicitVRLittleEndian

    from ..dicom.header import mark_lossy

    ds = dataset(record)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for kw in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if kw in ds:
            del ds[kw]
    ds.PixelData = native_value(frames, scan)
    ds["PixelData"].VR = "OW" if scan["bits_allocated"] > 8 else "OB"
    mark_lossy(ds, method, ratio, series_uid, f"medpipe archive, {label}")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
