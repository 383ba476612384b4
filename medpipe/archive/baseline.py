"""What the archive is measured against: the same slices as standard per-slice DICOM files, built for real.

For each original file: its header (every element but the pixel data, headers.py) plus its frames encapsulated
in a lossless transfer syntax, each frame coded from the STORED values as PS3.5 specifies
(medpipe.codecs.frames.encode_frame): the bytes of a DICOM series in that syntax, as a PACS would store it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .candidates import dicom_codestream
from .dicomfile import encapsulated_file
from .headers import read_header
from .index import DTYPES


def series_bytes(vol, uid: str, effort: int | None = None) -> dict:
    """{"files": bytes of the whole series as DICOM files in ``uid``, "codestreams": their pixel part}."""
    scan = {"bits_stored": vol.bits_stored, "bits_allocated": vol.bits_allocated, "signed": vol.signed,
            "dtype": DTYPES[(vol.bits_allocated, vol.signed)]}
    stored = vol.pixels if vol.frame_order is None else vol.pixels[np.argsort(vol.frame_order)]
    total = streams = 0
    at = 0
    for path, ds in zip(vol.files, vol.headers):
        n = int(ds.get("NumberOfFrames", 1) or 1)
        record, _, _ = read_header(Path(path))
        codestreams = [dicom_codestream(uid, f, scan, effort) for f in stored[at:at + n]]  # effort: JPEG XL only
        total += len(encapsulated_file(record, uid, codestreams))
        streams += sum(len(c) for c in codestreams)
        at += n
    return {"files": total, "codestreams": streams}
