"""Loading real DICOM: sorting along the normal, multi-frame, PNG dump and reload exact, stored values kept."""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from medpipe.errors import InputError
from medpipe.volumes import dump_png, load_volume
from medpipe.volumes.dicom import slice_position

from conftest import SAMPLE


def test_sample_loads_stored_values_sorted_along_the_normal(sample_volume):
    v = sample_volume
    assert v.shape == (28, 512, 512) and v.pixels.dtype == np.int16 and v.signed
    assert v.bits_stored == 16 and v.value_range == (-1500, 2121) and v.span_bits == 12
    positions = [slice_position(h) for h in v.headers]
    assert positions == sorted(positions)  # sorted by position on the normal, not by file name
    assert v.raw_bytes == 28 * 512 * 512 * 2 and v.modality == "CT"
    assert "PixelData" not in v.headers[0]


def test_file_names_do_not_decide_the_order(tmp_path, sample_volume):
    files = sorted(SAMPLE.glob("*.dcm"))
    for i, f in enumerate(reversed(files)):  # names now run against the anatomy
        shutil.copy(f, tmp_path / f"im{i:02d}.dcm")
    again = load_volume(tmp_path)
    assert np.array_equal(again.pixels, sample_volume.pixels)


def test_multiframe_file(tmp_path, sample_volume):
    ds = pydicom.dcmread(sorted(SAMPLE.glob("*.dcm"))[0])
    frames = sample_volume.pixels[:3]
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    path = tmp_path / "multi.dcm"
    ds.save_as(path)
    v = load_volume(path)
    assert v.shape == (3, 512, 512) and np.array_equal(v.pixels, frames)


@pytest.mark.slow
def test_png_dump_round_trip_is_exact_for_signed_data(tmp_path, sample_volume):
    folder = dump_png(sample_volume, tmp_path / "png")
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 28
    import imagecodecs

    first = imagecodecs.png_decode(pngs[0].read_bytes())
    assert first.dtype == np.uint16  # 16-bit PNG, values not rescaled
    back = load_volume(folder)
    assert back.pixels.dtype == np.int16 and np.array_equal(back.pixels, sample_volume.pixels)


def test_bad_inputs_get_one_clear_message(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_volume(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="no volume found among 1 file.*notes.txt.*medpipe reads DICOM"):
        load_volume(tmp_path)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes((SAMPLE / "01.dcm").read_bytes()[:3000])
    with pytest.raises(InputError, match="broken.dcm"):
        load_volume(broken)


def _checksums():
    from conftest import SHARED_DATA

    table = {}
    for line in (SHARED_DATA / "CHECKSUMS.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            pixel_sha, _, path, *_ = line.split()
            table[path] = pixel_sha
    return table


@pytest.mark.parametrize("rel", ["ct_head/cq500_ct5", "ct_head/philips_phantom_stereotaxis_a",
                                 "ct_head/cq500_ct0", "xray/RG3_tibia_cr.dcm"])
@pytest.mark.slow
def test_compressed_dev_data_decodes_to_the_published_pixels(rel):
    """JPEG-LS and JPEG-lossless series decode through pydicom's plugins to exactly the pixels DATA.md lists."""
    import hashlib
    import os

    from conftest import shared

    v = load_volume(shared(rel))
    order = sorted(range(len(v.files)), key=lambda i: os.path.basename(v.files[i]))
    h = hashlib.sha256()
    for i in order:
        h.update(np.ascontiguousarray(v.pixels[i]).tobytes())
    assert h.hexdigest() == _checksums()[rel]
