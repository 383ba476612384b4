"""Input faults a new user meets first: an empty folder, files medpipe does not read, a typo in an input option;
and the promise that every input folder is only read (hashes and mtimes before and after)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from medpipe.errors import PresetError
from medpipe.volumes import INPUT_OPTIONS, discover_inputs, input_settings, load_inputs

from conftest import ROOT, SAMPLE, shared

READ_LIST = ("DICOM", "PNG", "NIfTI", "NRRD", "MetaImage", "NumPy")


def snapshot(root) -> dict:
    return {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_empty_folder_gives_one_line_naming_it_and_what_is_read(tmp_path):
    (tmp_path / "empty").mkdir()
    vols, errors = load_inputs([tmp_path / "empty"], Console(width=200))
    assert not vols and len(errors) == 1
    assert str(tmp_path / "empty") in errors[0] and "empty folder" in errors[0]
    assert all(k in errors[0] for k in READ_LIST)


def test_empty_folder_through_the_cli_ends_with_a_useful_line(tmp_path):
    (tmp_path / "empty").mkdir()
    preset = tmp_path / "p.yaml"
    preset.write_text(f"name: e\ninput: {(tmp_path / 'empty').as_posix()}\ncodecs:\n  - {{codec: jpegls}}\n")
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), str(preset), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "empty folder" in out and "NIfTI" in out and not out.rstrip().endswith("loaded:")


def test_unknown_files_each_get_one_line_with_what_is_read(tmp_path):
    (tmp_path / "scan.xyz").write_bytes(os.urandom(4096))
    (tmp_path / "scan.gz").write_bytes(b"\x1f\x8b" + os.urandom(100))
    (tmp_path / "README.txt").write_text("export notes")
    vols, errors = load_inputs([tmp_path], Console(width=300))
    assert not vols
    xyz = [e for e in errors if "scan.xyz" in e]
    gz = [e for e in errors if "scan.gz" in e]
    assert len(xyz) == 1 and "not a DICOM file" in xyz[0] and "NIfTI" in xyz[0]
    assert len(gz) == 1 and "unpack it first" in gz[0]
    summary = [e for e in errors if "no volume found among 3 file(s)" in e]
    assert len(summary) == 1 and "README.txt" in summary[0] and all(k in summary[0] for k in READ_LIST)


def test_input_options_are_data_and_typos_are_refused():
    assert {"color", "cross_check", "on_damage", "duplicate_tolerance"} <= set(INPUT_OPTIONS)
    assert input_settings(None)["on_damage"] == "refuse_series" and input_settings({"color": "components"})
    with pytest.raises(PresetError, match="unknown key 'on_damge'; did you mean 'on_damage'"):
        input_settings({"on_damge": "drop_slice"})
    with pytest.raises(PresetError, match="'grey' is not one of"):
        discover_inputs([SAMPLE], None, {"color": "grey"})


def test_every_input_folder_is_only_read(tmp_path):
    """A folder of every kind, including damaged and refused inputs: nothing written, nothing touched."""
    root = tmp_path / "inputs"
    for f in sorted(SAMPLE.glob("*.dcm"))[:4]:
        (root / "ct").mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, root / "ct" / f.name)
    head = sorted(shared("ct_head/cq500_ct5").glob("*.dcm"))[:3]
    (root / "damaged").mkdir()
    for f in head:
        shutil.copy2(f, root / "damaged" / f.name)
    data = bytearray((root / "damaged" / head[1].name).read_bytes())
    data[-3000:-2936] = bytes(64)
    (root / "damaged" / head[1].name).write_bytes(bytes(data))
    shutil.copy2(shared("pathology/skimage_ihc.png"), root / "ihc.png")
    np.save(root / "arr.npy", np.arange(24, dtype=np.uint16).reshape(2, 3, 4))
    (root / "arr.json").write_text(json.dumps({"bits_stored": 12}))
    nibabel = pytest.importorskip("nibabel")
    shutil.copy2(Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii", root / "anat.nii")
    (root / "notes.xyz").write_bytes(b"not an image")
    before = snapshot(root)
    folders = {p: p.stat().st_mtime_ns for p in [root, *sorted(q for q in root.rglob("*") if q.is_dir())]}
    vols, errors = load_inputs([root], Console(width=200))
    assert {v.name for v in vols} >= {"ct", "ihc", "arr", "anat"} and len(errors) == 2  # damaged series, notes.xyz
    assert snapshot(root) == before
    assert {p: p.stat().st_mtime_ns for p in folders} == folders  # no file created and removed either


def test_preamble_less_dicom_is_read_whatever_its_name(tmp_path):
    """A bare data set (no 128-byte preamble, no 'DICM', no file meta) that pydicom reads with force=True."""
    import pydicom
    from pydicom.dataset import FileMetaDataset

    src = sorted(SAMPLE.glob("*.dcm"))[0]
    for name in ("scan.bin", "IM0001", "slice.dat"):
        ds = pydicom.dcmread(src)
        ds.preamble, ds.file_meta = None, FileMetaDataset()
        pydicom.dcmwrite(tmp_path / name, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
        assert (tmp_path / name).read_bytes()[128:132] != b"DICM"
        vols, errors = load_inputs([tmp_path / name], Console(width=200))
        assert not errors and np.array_equal(vols[0].pixels[0], pydicom.dcmread(src).pixel_array), name


def test_folder_of_unrelated_pictures_is_read_picture_by_picture(tmp_path):
    import imagecodecs

    (tmp_path / "a.png").write_bytes(imagecodecs.png_encode(np.zeros((20, 30), np.uint8)))
    (tmp_path / "b.png").write_bytes(imagecodecs.png_encode(np.full((40, 10, 3), 90, np.uint8)))
    vols, errors = load_inputs([tmp_path], Console(width=200))
    assert not errors and sorted(v.shape for v in vols) == [(1, 20, 30), (1, 40, 10)]
