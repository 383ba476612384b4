"""A PNG slice folder (dump_png's PNGs + medpipe_slices.json) is input like any other: each PNG's declared size is
held to max_picture_megapixels before it is decoded, one line naming the file -- no MemoryError."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from rich.console import Console

from medpipe.volumes import PNG_SIDECAR, dump_png, load_inputs, load_volume

from conftest import SAMPLE


@pytest.fixture(scope="module")
def volume():
    return load_volume(SAMPLE)


@pytest.fixture
def folder(volume, tmp_path):
    """The shipped sample, three slices of it dumped as medpipe dumps a volume."""
    from dataclasses import replace

    return dump_png(replace(volume, pixels=volume.pixels[:3]), tmp_path / "slices")


def loaded(folder, options=None):
    vols, errors = load_inputs([folder], Console(width=400), options)
    return vols, [e for e in errors if "0 DICOM volume" not in e]


def one_line(folder, says: str, options=None) -> str:
    vols, errors = loaded(folder, options)
    assert not vols and len(errors) == 1, errors
    assert "\n" not in errors[0] and "medpipe bug" not in errors[0] and says in errors[0], errors
    return errors[0]


def test_the_dump_reads_back_exactly(volume, folder):
    vols, errors = loaded(folder)
    assert not errors and np.array_equal(vols[0].pixels, volume.pixels[:3])


def _declare_size(png, rows: int, cols: int) -> None:
    """Rewrite the IHDR's width and height (and its CRC): the file stays small, its header claims the size."""
    data = bytearray(png.read_bytes())
    data[16:24] = struct.pack(">II", cols, rows)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    png.write_bytes(bytes(data))


def test_a_slice_declaring_40000_squared_is_refused_before_decoding(folder):
    first = sorted(folder.glob("*.png"))[0]
    _declare_size(first, 40000, 40000)
    line = one_line(folder, "max_picture_megapixels")
    assert line.startswith(f"{first}: the PNG slice holds 1600 million samples")


def test_the_limit_is_the_users(folder):
    first = sorted(folder.glob("*.png"))[0]
    _declare_size(first, 2000, 1000)
    one_line(folder, "holds 2 million samples, more than inputs.max_picture_megapixels (1)",
             {"max_picture_megapixels": 1})
    one_line(folder, "not a readable PNG")  # the default 256 lets it through to the decoder, which finds no data
