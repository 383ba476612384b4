"""One bad file never ends a survey (fuzz finding 19): the inventory reads each file's header, and any failure of
one file -- an unknown VR met when an element is converted, sequences nested past Python's recursion limit, a
deflated data set that does not inflate or inflates past its bound -- is one line naming it, printed and kept in
the inventory's skipped list, while the other files are counted. Real DICOM: slices of the shipped sample."""
from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian
from rich.console import Console

from conftest import ROOT, SAMPLE
from medpipe.survey.inventory import FolderSource, take_inventory


def sample_tree(root: Path, n: int = 3) -> list[Path]:
    """n slices of the shipped sample in Explicit VR Little Endian (the VR is in the file, PS3.5 7.1.2)."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for f in sorted(SAMPLE.glob("*.dcm"))[:n]:
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(root / f.name, enforce_file_format=True)
        out.append(root / f.name)
    return out


def inventory(root: Path) -> tuple[dict, str]:
    console = Console(record=True, width=400)
    _, facts = take_inventory(FolderSource(root), console)
    return facts, console.export_text()


def unknown_vr(path: Path) -> None:
    raw = path.read_bytes()
    at = raw.index(b"\x28\x00\x01\x01US")  # (0028,0101) Bits Stored, VR US -> 'U\x0e'
    path.write_bytes(raw[:at + 4] + b"U\x0e" + raw[at + 6:])


def deep_sequences(path: Path, depth: int = 5000) -> None:
    """Referenced Series Sequence nested ``depth`` times (undefined lengths, PS3.5 7.5.1) before Pixel Data."""
    raw = path.read_bytes()
    at = raw.index(b"\xe0\x7f\x10\x00")  # Pixel Data: the sequences go just before it (tags stay in order)
    open_ = b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    close = b"\xfe\xff\x0d\xe0" + struct.pack("<I", 0) + b"\xfe\xff\xdd\xe0" + struct.pack("<I", 0)
    path.write_bytes(raw[:at] + open_ * depth + close * depth + raw[at:])


def test_an_unknown_vr_is_one_line_and_the_survey_goes_on(tmp_path):
    files = sample_tree(tmp_path / "src")
    unknown_vr(files[1])
    facts, said = inventory(tmp_path / "src")
    line = (f"{files[1]}: damaged DICOM header (NotImplementedError: Unknown Value Representation '0x55 0x0e' in "
            "tag (0028,0101)); left out of the inventory")
    assert facts["instances"] == 2 and facts["skipped"] == [line]
    assert f"skipped: {line}" in said


def test_sequences_nested_past_the_recursion_limit_are_one_line(tmp_path):
    files = sample_tree(tmp_path / "src")
    deep_sequences(files[0])
    facts, said = inventory(tmp_path / "src")
    assert facts["instances"] == 2 and len(facts["skipped"]) == 1
    assert facts["skipped"][0].startswith(f"{files[0]}: damaged DICOM header (RecursionError: ")
    assert f"skipped: {files[0]}: damaged DICOM header" in said


def deflated(path: Path, padding: int = 0) -> None:
    """The file rewritten in Deflated Explicit VR Little Endian (PS3.5 A.5), ``padding`` zero bytes of Data Set
    Trailing Padding after Pixel Data (they deflate to almost nothing: a deflate bomb)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(path)
    if padding:
        ds.DataSetTrailingPadding = bytes(padding)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def test_a_deflated_data_set_that_does_not_inflate_is_one_line(tmp_path):
    files = sample_tree(tmp_path / "src")
    deflated(files[2])
    raw = bytearray(files[2].read_bytes())
    at = raw.index(b"1.2.840.10008.1.2.1.99") + 200  # into the deflated data set, after the File Meta Information
    raw[at:at + 16] = bytes(b ^ 0xFF for b in raw[at:at + 16])
    files[2].write_bytes(bytes(raw))
    facts, said = inventory(tmp_path / "src")
    assert facts["instances"] == 2 and len(facts["skipped"]) == 1, facts["skipped"]
    assert facts["skipped"][0].startswith(f"{files[2]}: damaged DICOM header (")
    assert f"skipped: {files[2]}: damaged DICOM header" in said


def test_a_deflate_bomb_is_refused_and_a_sound_deflated_file_counted(tmp_path):
    files = sample_tree(tmp_path / "src")
    deflated(files[0])
    deflated(files[1], padding=64 << 20)
    facts, said = inventory(tmp_path / "src")
    assert facts["instances"] == 2 and len(facts["skipped"]) == 1
    assert facts["skipped"][0].startswith(f"{files[1]}: the deflated data set inflates to more than ")
    assert facts["skipped"][0].endswith("its header declares 524288 bytes of pixel data; refused (a deflate bomb)")


def test_pydicom_warnings_about_odd_values_stay_out_of_the_output(tmp_path):
    """A value longer than its VR allows (a 122-character LO) made pydicom warn on stderr wherever the value was
    first converted: in the inventory, and again in the worker that measured the series."""
    files = sample_tree(tmp_path / "in", 2)
    ds = pydicom.dcmread(files[0])
    ds.Manufacturer = "x" * 122  # LO: 64 characters at most (PS3.5 6.2); the inventory reads it
    ds.save_as(files[0], enforce_file_format=True)
    done = subprocess.run([sys.executable, "run.py", "survey", str(tmp_path / "in"), "--codecs", "jpegls",
                           "--sample", "1", "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "measured 1/1" in done.stdout and "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
