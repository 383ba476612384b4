"""Research volumes on real files: nibabel's own NIfTI test volumes, and the shipped GE head CT written as NRRD
(pynrrd), MetaImage (metaimageio) and NumPy + JSON sidecar by those libraries. Stored values must come back
exactly, in slices x rows x cols, with spacing; float data only when it holds integers."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from medpipe.errors import InputError
from medpipe.volumes import load_inputs, load_volume

nibabel = pytest.importorskip("nibabel")
NIB_DATA = Path(nibabel.__file__).parent / "tests" / "data"


@pytest.fixture(scope="module")
def ct(sample_volume):
    """8 slices of the real head CT (int16, -1500 padding) as the reference array."""
    return sample_volume.pixels[10:18]


def xyz(stack: np.ndarray) -> np.ndarray:
    """slices x rows x cols -> (x, y, z), the index order NIfTI/NRRD/MetaImage files use."""
    return np.ascontiguousarray(np.transpose(stack, (2, 1, 0)))


def test_nifti_from_nibabel_test_data_keeps_stored_values():
    path = NIB_DATA / "anatomical.nii"  # big-endian int16, 33 x 41 x 25, 2 mm voxels
    vol = load_volume(path)
    raw = np.asarray(nibabel.load(str(path)).dataobj.get_unscaled())
    assert vol.shape == (25, 41, 33) and vol.pixels.dtype == np.dtype("int16") and vol.pixels.dtype.isnative
    assert np.array_equal(vol.pixels, np.transpose(raw, (2, 1, 0)))
    assert vol.spacing == (2.0, 2.0, 2.0) and vol.headers == [] and vol.signed
    assert vol.lossy_source == "" and vol.description.startswith("spm")


def test_nifti_scaling_is_recorded_not_applied_and_4d_is_stacked():
    vol = load_volume(NIB_DATA / "functional.nii")  # 17 x 21 x 3 x 20 int16 with scl_slope 0.0754
    raw = np.asarray(nibabel.load(str(NIB_DATA / "functional.nii")).dataobj.get_unscaled())
    assert vol.shape == (60, 21, 17) and vol.pixels.dtype == np.int16
    assert vol.rescale_slope == pytest.approx(0.0754069, rel=1e-5) and vol.rescale_intercept == pytest.approx(3100.76)
    assert np.array_equal(vol.pixels[3:6], np.transpose(raw[..., 1], (2, 1, 0)))  # time point 1 = slices 3..5
    assert any("20 stacks of 3 slices" in n for n in vol.notes)
    gz = load_volume(NIB_DATA / "example4d.nii.gz")
    assert gz.shape == (48, 96, 128) and gz.spacing == pytest.approx((2.2, 2.0, 2.0), abs=1e-5)


def test_float_nifti_with_fractions_is_refused_with_one_line():
    with pytest.raises(InputError, match="fractional values.*integer data only") as info:
        load_volume(NIB_DATA / "reoriented_anat_moved.nii")
    assert "\n" not in str(info.value)


def test_nrrd_raw_gzip_and_detached_header(tmp_path, ct):
    nrrd = pytest.importorskip("nrrd")
    header = {"space": "left-posterior-superior", "space directions": np.diag([0.49, 0.48, 4.0]),
              "content": "GE head CT"}
    nrrd.write(str(tmp_path / "raw.nrrd"), xyz(ct), {**header, "encoding": "raw"})
    nrrd.write(str(tmp_path / "gz.nrrd"), xyz(ct), {**header, "encoding": "gzip"})
    nrrd.write(str(tmp_path / "det.nhdr"), xyz(ct), {**header, "encoding": "raw"}, detached_header=True)
    vols, errors = load_inputs([tmp_path])
    assert not errors, errors
    assert sorted(v.name for v in vols) == ["det", "gz", "raw"]  # the detached data file is part of det.nhdr
    for v in vols:
        assert np.array_equal(v.pixels, ct) and v.pixels.dtype == np.int16
        assert v.spacing == pytest.approx((4.0, 0.48, 0.49)) and v.description == "GE head CT"


def test_metaimage_local_compressed_and_mhd_raw_pair(tmp_path, ct):
    metaimageio = pytest.importorskip("metaimageio")
    metaimageio.write(str(tmp_path / "local.mha"), ct, ElementSpacing=[0.49, 0.48, 4.0], Modality="MET_MOD_CT")
    metaimageio.write(str(tmp_path / "zlib.mha"), ct, ElementSpacing=[0.49, 0.48, 4.0], CompressedData=True)
    metaimageio.write(str(tmp_path / "pair.mhd"), ct, ElementSpacing=[0.49, 0.48, 4.0])
    assert (tmp_path / "pair.raw").exists() or (tmp_path / "pair.zraw").exists()
    vols, errors = load_inputs([tmp_path])
    assert not errors, errors
    assert sorted(v.name for v in vols) == ["local", "pair", "zlib"]
    for v in vols:
        assert np.array_equal(v.pixels, ct) and v.spacing == pytest.approx((4.0, 0.48, 0.49))
    assert {v.name: v.modality for v in vols}["local"] == "CT"


def test_numpy_with_sidecar(tmp_path, ct):
    np.save(tmp_path / "ct.npy", ct)
    (tmp_path / "ct.json").write_text(json.dumps({
        "shape": list(ct.shape), "bits_stored": 16, "signed": True, "spacing": [4.0, 0.48, 0.49], "modality": "CT",
        "padding": -1500, "rescale_slope": 1, "rescale_intercept": -1024, "description": "head"}))
    vol = load_volume(tmp_path / "ct.npy")
    assert np.array_equal(vol.pixels, ct) and vol.modality == "CT" and vol.spacing == (4.0, 0.48, 0.49)
    assert vol.padding == (-1500, -1500) and vol.padding_count == int((ct == -1500).sum()) > 0
    assert vol.signal_range == (int(ct[ct != -1500].min()), int(ct.max())) and vol.rescale_intercept == -1024
    assert not any("sidecar" in n for n in vol.notes)


def test_numpy_sidecar_mistakes_get_one_line_each(tmp_path, ct):
    np.save(tmp_path / "a.npy", ct)
    (tmp_path / "a.json").write_text(json.dumps({"bits_stord": 12}))
    with pytest.raises(InputError, match="a.json: unknown key 'bits_stord'; did you mean 'bits_stored'"):
        load_volume(tmp_path / "a.npy")
    (tmp_path / "a.json").write_text(json.dumps({"shape": [8, 512, 256]}))
    with pytest.raises(InputError, match=r"sidecar says shape \[8, 512, 256\], the array is \[8, 512, 512\]"):
        load_volume(tmp_path / "a.npy")
    (tmp_path / "a.json").write_text(json.dumps({"bits_stored": 8}))
    with pytest.raises(InputError, match="do not fit the sidecar's bits_stored 8"):
        load_volume(tmp_path / "a.npy")
    (tmp_path / "a.json").write_text(json.dumps({"padding": [[1], {"a": 2}]}))  # a fuzz case: was a TypeError
    with pytest.raises(InputError, match=r"a.json.padding\[0\]: expected integer, got \[1\]"):
        load_volume(tmp_path / "a.npy")
    (tmp_path / "a.json").write_text(json.dumps({"padding": [1, 2, 3]}))
    with pytest.raises(InputError, match=r"padding \[1, 2, 3\] is neither one stored value nor \[low, high\]"):
        load_volume(tmp_path / "a.npy")


def test_numpy_unsigned_12bit_in_int16_and_npz_arrays(tmp_path, ct):
    u12 = (ct.astype(np.int32) + 1500).astype(np.int16)  # 0..3621 held in int16, as scripts often save it
    np.savez(tmp_path / "two.npz", first=u12, second=u12[:3])
    (tmp_path / "two.json").write_text(json.dumps({"signed": False, "bits_stored": 12}))
    vols, errors = load_inputs([tmp_path / "two.npz"])
    assert not errors and sorted(v.name for v in vols) == ["two-first", "two-second"]
    first = [v for v in vols if v.name == "two-first"][0]
    assert first.pixels.dtype == np.uint16 and first.bits_stored == 12 and not first.signed
    assert np.array_equal(first.pixels, u12)


def test_numpy_float_integral_is_converted_and_fractional_refused(tmp_path, ct):
    np.save(tmp_path / "f.npy", ct.astype(np.float32))
    vol = load_volume(tmp_path / "f.npy")
    assert vol.pixels.dtype == np.int16 and np.array_equal(vol.pixels, ct)
    assert any("float32 pixels hold integers only" in n and "converted exactly to int16" in n for n in vol.notes)
    assert any("no JSON sidecar" in n for n in vol.notes)
    np.save(tmp_path / "g.npy", ct.astype(np.float32) + 0.25)
    with pytest.raises(InputError, match="fractional values"):
        load_volume(tmp_path / "g.npy")


def test_numpy_object_array_is_never_unpickled(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    vols, errors = load_inputs([tmp_path / "obj.npy"])
    assert not vols and len(errors) == 1 and "never unpickled" in errors[0]


def test_missing_reader_library_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nibabel", None)  # as on a machine without nibabel: import fails
    vols, errors = load_inputs([NIB_DATA / "anatomical.nii"])
    assert not vols and "reader not available: install nibabel" in errors[0]
