"""A PNG slice folder (dump_png's PNGs + medpipe_slices.json) is input like any other: each PNG's declared size is
held to max_picture_megapixels before it is decoded, and the sidecar's keys and types are checked, each fault one
line naming the file (and the key) -- no MemoryError, no 'medpipe bug' line, no traceback, no silent wrap."""
from __future__ import annotations

import json
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


def _edit(folder, **keys) -> str:
    side = folder / PNG_SIDECAR
    meta = json.loads(side.read_text())
    meta.update(keys)
    side.write_text(json.dumps(meta))
    return str(side)


@pytest.mark.parametrize("key, value, says", [
    ("offset", "abc", ".offset: expected integer, got str 'abc'"),
    ("offset", 1.5, ".offset: expected integer"),
    ("signed", "yes", ".signed: expected"),
    ("padding", [[1], {"a": 2}], ".padding[0]: expected integer"),
    ("padding", [5, 1], ".padding: [5, 1] is not [low, high]"),
    ("padding", 3, ".padding: expected list"),
    ("spacing_mm", [1, "x", 1], ".spacing_mm[1]"),
    ("bits_stored", 40, ".bits_stored: 40 is out of range"),
    ("modality", {"a": 1}, ".modality: expected"),
    ("bits_stord", 12, "unknown key 'bits_stord'; did you mean 'bits_stored'?"),
])
def test_sidecar_types_are_one_line_naming_the_key(folder, key, value, says):
    side = _edit(folder, **{key: value})
    assert one_line(folder, says).startswith(side)


def test_deeply_nested_sidecar_is_one_line(folder):
    (folder / PNG_SIDECAR).write_text("[" * 50000 + "]" * 50000)
    one_line(folder, f"{folder / PNG_SIDECAR}: nested too deeply")


def test_a_sidecar_that_is_not_an_object_is_one_line(folder):
    (folder / PNG_SIDECAR).write_text("[1, 2]")
    one_line(folder, f"{folder / PNG_SIDECAR}: a JSON list, not an object of keys")


def test_an_offset_that_leaves_int16_is_refused_not_wrapped(folder):
    side = _edit(folder, signed=True, offset=-40000)
    line = one_line(folder, "outside int16 (-32768..32767); refused instead of wrapping")
    assert line.startswith(f"{side}: offset -40000 takes the slices' values to -40000..")


def test_an_offset_that_stays_inside_is_applied(folder, volume):
    side = json.loads((folder / PNG_SIDECAR).read_text())
    _edit(folder, offset=side["offset"] + 7)
    vols, errors = loaded(folder)
    assert not errors and np.array_equal(vols[0].pixels, volume.pixels[:3] + 7)
