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
from .syntaxes import known_transfer_syntaxes

ELEMENT_HEADER = 12  # explicit VR little endian, OB / OV: tag 4, VR 2, reserved 2, length 4
DELIMITER = 8  # (FFFE,E0DD) with length 0


def save(ds, uid: str, frames: list[bytes], path: Path, offset_table: str = "basic") -> int:
    """Write `ds` with `frames` (one codestream per frame) encapsulated in transfer syntax `uid` to `path`; returns
    the pixel data bytes (module docstring). ``offset_table`` "extended" adds the Extended Offset Table."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    value, table, lengths = encapsulate_frames(frames, offset_table)
    meta = FileMetaDataset()
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
    with known_transfer_syntaxes(), atomic_file(path) as fh:
        ds.save_as(fh, enforce_file_format=True)
    return size
