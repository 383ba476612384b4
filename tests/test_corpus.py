"""Regression corpus from outside the project (issue 11.11): pydicom's own test files, which ship in its wheel,
as one folder and file by file, plus the whole dev data folder. No exception escapes; every file is either part
of a volume or named in a message; one odd series never stops the others."""
from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest
from rich.console import Console

from medpipe.volumes import load_inputs

from conftest import shared

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def named(path: Path, text: str) -> bool:
    return re.search(rf"(?<![\w.+-]){re.escape(path.name)}(?![\w+-])", text) is not None


def run(paths, options=None):
    console = Console(record=True, width=100_000)  # no wrapping: one message, one line
    vols, errors = load_inputs(paths, console, options)
    return vols, errors, console.export_text()


@pytest.fixture(scope="module")
def corpus_run():
    if not PYDICOM_FILES.is_dir():
        pytest.skip(f"pydicom's test files are not installed ({PYDICOM_FILES})")
    return run([PYDICOM_FILES])


def test_pydicom_test_files_as_one_folder(corpus_run):
    vols, errors, log = corpus_run
    assert "Traceback" not in log and "medpipe bug" not in log
    assert len(vols) >= 30, len(vols)
    used = {f for v in vols for f in v.files}
    for f in sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file()):
        if f in used:
            continue
        assert named(f, log), f"{f} is neither in a volume nor named in a message"
        assert sum(named(f, e) for e in errors) <= 1, f
    names = [v.name for v in vols]
    assert len(names) == len(set(names))


def test_the_corpus_cases_of_issue_11(corpus_run):
    vols, errors, log = corpus_run
    by_file = {f.name: v for v in vols for f in v.files}
    # one SOP Instance in eight files and syntaxes: one slice, said once
    mr = by_file["MR_small.dcm"]
    assert mr.shape == (1, 64, 64)
    assert any("9 files hold one SOP Instance" in e["message"] for e in mr.events)
    assert log.count("9 files hold one SOP Instance") == 1
    # files without the DICM preamble that pydicom reads (with force=True) are read: bare data sets are
    # recognised, a bare RT plan is listed as a non-image object, not refused as "not DICOM"
    assert "ExplVR_LitEndNoMeta.dcm" in log and not any("ExplVR_LitEndNoMeta.dcm: not a DICOM" in e for e in errors)
    assert "MR_truncated.dcm (1.2.840.10008.1.2.1)" in log  # a damaged copy, never needed: named as a copy
    # a copy that cannot be decoded is replaced by its readable twin, and said so
    assert "JPEG2000-embedded-sequence-delimiter.dcm could not be used" in log
    assert "CT_small.dcm" in by_file and by_file["CT_small.dcm"].padding == (-2000, -2000)
    assert "JPEGLSNearLossless_16.dcm" in by_file and "NEAR=2" in by_file["JPEGLSNearLossless_16.dcm"].lossy_source


def test_pydicom_test_files_one_by_one():
    if not PYDICOM_FILES.is_dir():
        pytest.skip(f"pydicom's test files are not installed ({PYDICOM_FILES})")
    answered = 0
    for f in sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file()):
        vols, errors, log = run([f])
        assert "Traceback" not in log and "medpipe bug" not in log, f
        assert vols or errors, f"{f}: no volume and no message"
        assert all(f.name in e or str(f) in e for e in errors), (f, errors)
        answered += 1
    assert answered > 150


@pytest.mark.slow
def test_whole_dev_data_folder_loads_clean():
    """Every dev scan loads with the default checks (cross-check on), nothing damaged, nothing left out."""
    root = shared("")
    vols, errors, log = run([root])
    assert not errors and "damaged" not in log, errors
    listed = [line.split()[2] for line in (root / "CHECKSUMS.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert len(vols) == len(listed)  # one volume per entry of the data set (pictures included)
    used = {f for v in vols for f in v.files}
    dicom = [p for p in root.rglob("*.dcm")]
    assert set(dicom) <= used
    by_name = {v.name: v for v in vols}
    assert by_name["ct_head-cq500_ct0"].shape == (238, 512, 512)
    assert by_name["ct_chest-acrin_flt_breast_001-series_2_729346"].padding == (-2000, -2000)
    assert "Q=30" in by_name["cmu1_small_region"].lossy_source
    # acrin_flt_breast_013's headers say LossyImageCompression 01 (compressed lossily before it was shared)
    assert {n for n, v in by_name.items() if v.lossy_source} == {"cmu1_small_region", "ct_chest-acrin_flt_breast_013"}
