"""The one table of transfer syntaxes (medpipe.syntaxes): every module asks it, nothing else spells a UID, and the
frame coders cover every syntax medpipe writes."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid as pu

from medpipe import syntaxes as ts
from medpipe.codecs import REGISTRY, frames

ROOT = Path(__file__).resolve().parents[1]
TS_LITERAL = re.compile(r"1\.2\.840\.10008\.1\.2(?:\.[0-9]+)*(?![0-9])")


def test_no_transfer_syntax_uid_literal_outside_the_table():
    offenders = []
    for path in sorted([*(ROOT / "medpipe").rglob("*.py"), *(ROOT / "bench").rglob("*.py"), ROOT / "run.py"]):
        if path == ROOT / "medpipe" / "syntaxes.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if TS_LITERAL.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_grep_finds_what_it_must():
    assert TS_LITERAL.search('X = "1.2.840.10008.1.2.4.110"') and TS_LITERAL.search("'1.2.840.10008.1.2'")
    assert not TS_LITERAL.search('"1.2.840.10008.1.20"') and not TS_LITERAL.search('"1.2.840.10008.5.1.4.1.1.7"')


def test_no_private_uid_dictionary_patch():
    """pydicom's private _uid_dict is never touched (writing names the encoding through public arguments)."""
    for path in (ROOT / "medpipe").rglob("*.py"):
        assert "_uid_dict" not in path.read_text(encoding="utf-8"), path


def test_the_table_is_built_on_pydicom_constants():
    for name in ("ImplicitVRLittleEndian", "ExplicitVRLittleEndian", "JPEGBaseline8Bit", "JPEGLosslessSV1",
                 "JPEGLSLossless", "JPEG2000Lossless", "HTJ2KLosslessRPCL", "RLELossless", "HEVCM10P51"):
        row = ts.TABLE[getattr(pu, name)]
        assert row.keyword == name and row.name
    # what pydicom 3.0.2 lacks is defined once, with its PS3.6 name and keyword
    for uid, keyword in ((ts.JPEGXLLossless, "JPEGXLLossless"), (ts.JPEGXLJPEGRecompression,
                                                                  "JPEGXLJPEGRecompression"),
                         (ts.JPEGXL, "JPEGXL"), (ts.DeflatedImageFrameCompression, "DeflatedImageFrameCompression")):
        assert ts.TABLE[uid].keyword == keyword and ts.TABLE[uid].encapsulated
    # left out: pixel data by reference (JPIP) and SMPTE ST 2110 streams, which medpipe never meets in a file
    missing = {pu.UID(u).name for u in set(pu.AllTransferSyntaxes) - set(ts.TABLE)}
    assert missing and all("JPIP" in n or "SMPTE" in n for n in missing), missing


def test_every_row_says_what_the_issue_asks():
    for row in ts.TABLE.values():
        assert row.lossless in (True, False, None) and isinstance(row.encapsulated, bool)
        assert "PS3.5" in row.rules and row.signedness and row.fragments
        assert row.keeps_instance == (row.lossless is True or row.uid == ts.JPEGXLJPEGRecompression)
        assert (row.lossless is True) == (row.lossy_note == "")
    for uid, row in ts.WRITTEN.items():  # what medpipe writes: a coder, the accepted pixels, lossless
        assert row.family in frames.CODERS and row.pixels and row.lossless is True, uid
    assert ts.TABLE[pu.RLELossless].fragments.startswith("one fragment per frame (required)")
    assert ts.TABLE[pu.JPEGBaseline8Bit].lossless is False and ts.TABLE[pu.JPEG2000].lossless is None


def test_every_dicom_syntax_a_codec_declares_is_in_the_table():
    for cls in REGISTRY.values():
        for form in cls.dicom:
            assert form.uid in ts.TABLE and form.name == ts.TABLE[form.uid].short


@pytest.mark.parametrize("uid", sorted(ts.WRITTEN))
def test_each_written_syntax_codes_and_decodes_signed_data(uid):
    values = (np.arange(40 * 30, dtype=np.int32).reshape(40, 30) * 7 % 4000 - 2000).astype(np.int16)
    data = frames.encode_frame(uid, values, 12, True, bits_allocated=16, effort=1)
    attrs = ts.PixelAttrs(40, 30, 1, "MONOCHROME2", True, 16, 12, 11)
    assert np.array_equal(frames.decode_frame(uid, data, attrs), values)


def test_a_file_in_a_syntax_pydicom_does_not_know_is_written_without_pynetdicom(tmp_path):
    """Written and read back in a fresh interpreter where nothing registered JPEG XL with pydicom."""
    code = (
        "import sys, numpy as np, pydicom\n"
        "from pydicom.data import get_testdata_file\n"
        "from pathlib import Path\n"
        "from medpipe.codecs.frames import encode_frame\n"
        "from medpipe.dicom.part10 import save\n"
        "from medpipe.syntaxes import JPEGXLLossless\n"
        "ds = pydicom.dcmread(get_testdata_file('CT_small.dcm'))\n"
        "assert not pydicom.uid.UID(JPEGXLLossless).is_transfer_syntax\n"
        "save(ds, JPEGXLLossless, [encode_frame(JPEGXLLossless, ds.pixel_array, 16, True, effort=1)],\n"
        f"     Path({str(tmp_path / 'x.dcm')!r}))\n"
        "assert 'pynetdicom' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr
    back = pydicom.dcmread(tmp_path / "x.dcm")
    assert back.file_meta.TransferSyntaxUID == ts.JPEGXLLossless and back.file_meta.FileMetaInformationGroupLength
    assert back.SOPInstanceUID == pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm")).SOPInstanceUID
