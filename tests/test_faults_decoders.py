"""Hostile pixel data for medpipe's own decoders (JPEG XL and Deflated Image Frame in the readers): each decoder
gets the shape from the header and refuses a codestream that disagrees before allocating; a header asking for more
memory than is free is refused with one line."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from pydicom.encaps import encapsulate

from conftest import SAMPLE
from medpipe.errors import InputError
from medpipe.volumes import decode_pixels, read_dicom

DEFLATED = "1.2.840.10008.1.2.8.1"
JPEG_XL = "1.2.840.10008.1.2.4.110"


def _with_frame(tmp_path, uid: str, fragment: bytes, **header) -> tuple:
    """A real CT file's data set with its pixel data replaced (pydicom 3.0 cannot write these syntaxes; the
    readers get the same data set from a file)."""
    path = sorted(SAMPLE.glob("*.dcm"))[0]
    ds = read_dicom(path)
    ds.file_meta.TransferSyntaxUID = uid
    ds.PixelData = encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    for k, v in header.items():
        setattr(ds, k, v)
    return ds, path


def _peak_mib() -> float:
    resource = pytest.importorskip("resource", reason="peak memory via getrusage (POSIX)")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_deflate_bomb_frame_is_refused_without_inflating_it(tmp_path):
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(bytes(512 << 20)) + bomb.flush()  # 512 MiB of zeros in about 0.5 MB
    ds, path = _with_frame(tmp_path, DEFLATED, data)
    before = _peak_mib()
    with pytest.raises(InputError, match="inflates to more than") as info:
        decode_pixels(ds, path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert _peak_mib() - before < 100  # bounded by the header's frame, not by the bomb


def test_a_short_deflated_frame_is_damaged(tmp_path):
    data = zlib.compressobj(6, zlib.DEFLATED, -15)
    ds, path = _with_frame(tmp_path, DEFLATED, data.compress(bytes(1000)) + data.flush())
    with pytest.raises(InputError, match="inflates to 1000 bytes"):
        decode_pixels(ds, path)


def test_a_jpeg_xl_frame_larger_than_its_header_is_refused_before_decoding(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    stream = imagecodecs.jpegxl_encode(np.zeros((1024, 1024), np.uint16), lossless=True)
    ds, path = _with_frame(tmp_path, JPEG_XL, stream)  # the sample says 512 x 512
    with pytest.raises(InputError, match="JPEG XL codestream says 1024 x 1024"):
        decode_pixels(ds, path)


def test_a_header_claiming_more_than_free_memory_is_one_line(tmp_path):
    ds, path = _with_frame(tmp_path, DEFLATED, b"\x03\x00", Rows=65535, Columns=65535, NumberOfFrames=4096)
    with pytest.raises(InputError, match="GiB is free here; refused") as info:
        decode_pixels(ds, path)
    assert str(path) in str(info.value)
