"""One DICOM Part 10 file from a header and its encapsulated frames, written under a temporary name and renamed.

``dicom_bytes`` (results column) is defined here: the bytes of the pixel data as the file stores it -- the Pixel
Data element (its 12-byte header, the Basic Offset Table item, one item per fragment with any pad byte, the
8-byte Sequence Delimitation Item) plus the Extended Offset Table elements when written. The rest of the file is
the source's header, the same in every transfer syntax, so it is left out: raw_bytes / dicom_bytes then compares
pixel data with pixel data, like the benchmark's own CR.
"""
from __future__ import annotations

from pathlib import Path

from ..files import atomic_file
from .codestreams import encapsulate_frames

ELEMENT_HEADER = 12  # explicit VR little endian, OB / OV: tag 4, VR 2, reserved 2, length 4
DELIMITER = 8  # (FFFE,E0DD) with length 0


def save(ds, uid: str, frames: list[bytes], path: Path, offset_table: str = "basic") -> int:
    """Write `ds` with `frames` (one codestream per frame) encapsulated in transfer syntax `uid` to `path`; returns
    the pixel data bytes (module docstring). ``offset_table`` "extended" adds the Extended Offset Table."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    value, table, lengths = encapsulate_frames(frames, offset_table)
    meta = FileMetaDataset()
    meta.FileMetaInformationGroupLength = 0  # pydicom writes the true length
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(uid)
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    size = ELEMENT_HEADER + len(value) + DELIMITER
    if table is not None:
        ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = table, lengths
        size += 2 * ELEMENT_HEADER + len(table) + len(lengths)
    ds.PixelData = value
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    with atomic_file(path) as fh:
        write_part10(fh, ds)
    return size


def write_part10(fh, ds) -> None:
    """``ds`` (its ``file_meta`` and ``preamble`` set) as a Part 10 file, explicit VR little endian (PS3.10 7.1).

    pydicom 3.0 does not know JPEG XL or Deflated Image Frame, so it cannot derive the encoding from their UIDs;
    the encoding is named outright (``force_encoding``, pydicom's public switch, which excludes
    ``enforce_file_format``), and the File Meta is completed by pydicom's public ``validate_file_meta`` (version,
    Implementation Class UID) and its group length updated by pydicom on writing. No private pydicom API."""
    from pydicom.dataset import validate_file_meta
    from pydicom.filewriter import dcmwrite

    validate_file_meta(ds.file_meta, enforce_standard=True)
    dcmwrite(fh, ds, implicit_vr=False, little_endian=True, force_encoding=True)
