"""An archive of a series stored as baseline JPEG (the jpegxl-jpeg candidate: its own JPEG frames as .111 streams)
verifies and extracts on a machine whose JPEG decoder rounds differently. Two real pydicom plugins stand for the two
machines: the build decodes with Pillow (libjpeg-turbo), verify and extract with pylibjpeg-libjpeg, picked by
MEDPIPE_JPEG_DECODER, which the readers and the .111 decoder both follow. They differ (by 1 on grey, up to 3 on
colour) on a few % of the samples of these JPEGs (asserted), as ISO 10918-1 allows. The archive's claim is the JPEG
frames (a SHA-256 each) and the files; a damaged stream is still refused, and an archive without the JPEG checksums
keeps its value check."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.uid import JPEGBaseline8Bit

from medpipe.archive import ArchiveError, Settings, build_archive, extract_archive, verify_archive
from medpipe.archive.index import INDEX, sha256
from medpipe.errors import InputError
from medpipe.jpeg_decoder import ENV_VAR
from medpipe.volumes import load_volume

from test_archive_seal import reseal
from test_jpegxl_syntaxes import baseline_jpeg_series

BUILD, OTHER = "pillow", "pylibjpeg"
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not {BUILD, OTHER} <= set(get_decoder(JPEGBaseline8Bit).available_plugins),
                                reason="needs both pydicom JPEG plugins (pillow, pylibjpeg-libjpeg)")


class Said:
    """A console that keeps what it is told (verify and extract print through ``console.print``)."""

    def __init__(self):
        self.lines: list[str] = []

    def print(self, *args, **kwargs):
        self.lines.append(" ".join(str(a) for a in args))

    def notes(self) -> list[str]:
        return [ln for ln in self.lines if ln.startswith("note:")]


def _differ(path: Path) -> int:
    """Samples on which the two plugins decode the file differently."""
    ds = pydicom.dcmread(path)
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    a, b = (decoder.as_array(ds, decoding_plugin=p)[0].astype(np.int32) for p in (BUILD, OTHER))
    assert np.abs(a - b).max() <= 3
    return int(np.count_nonzero(a != b))


def _build(sources: list[Path], arc: Path, ctx, monkeypatch) -> dict:
    monkeypatch.setenv(ENV_VAR, BUILD)
    index = build_archive([load_volume(p) for p in sources], arc, Settings(candidates=["jpegxl-jpeg"], effort=1),
                          ctx)
    monkeypatch.setenv(ENV_VAR, OTHER)  # "another machine" from here on
    return index


@pytest.fixture(scope="module")
def grey(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jpegdec") / "series"
    baseline_jpeg_series(folder)
    return folder


def test_the_two_decoders_differ_on_these_jpegs(grey):
    """Else the rest of this file would prove nothing."""
    counts = [_differ(p) for p in sorted(grey.iterdir())]
    assert all(c > 0 for c in counts), counts
    assert _differ(Path(get_testdata_file("SC_jpeg_no_color_transform.dcm"))) > 0


def test_a_grey_jpeg_archive_verifies_and_extracts_with_another_decoder(grey, tmp_path, ctx, monkeypatch):
    arc = tmp_path / "arc"
    index = _build([grey], arc, ctx, monkeypatch)
    g = index["groups"][0]
    assert g["candidate"] == "jpegxl-jpeg" and len(g["jpeg_sha256"]) == 3 and g["jpeg_decoder"].startswith(BUILD)
    said = Said()
    verify_archive(arc, ctx, said)
    note, = said.notes()
    assert "3 of 3 slice(s)" in note and OTHER in note and BUILD in note and "\n" not in note
    said = Said()
    folder = extract_archive(arc, tmp_path / "out", ctx, console=said)[0]
    assert [p.read_bytes() for p in sorted(folder.iterdir())] == [p.read_bytes() for p in sorted(grey.iterdir())]
    assert len(said.notes()) == 1  # the values' note; every file is the original, so none about values written
    # values written (another syntax): they are this machine's decoder's, and it says so
    said = Said()
    folder = extract_archive(arc, tmp_path / "jxl", ctx, syntax="jpegxl", console=said)[0]
    assert any("3 file(s) written from the values" in n and OTHER in n for n in said.notes()), said.notes()
    ours = np.stack([get_decoder(JPEGBaseline8Bit).as_array(pydicom.dcmread(p), decoding_plugin=OTHER)[0]
                     for p in sorted(grey.iterdir())])
    assert np.array_equal(load_volume(folder).pixels, ours)  # JPEG XL (.110) read back by medpipe
    monkeypatch.setenv(ENV_VAR, BUILD)  # the build's decoder: no note
    said = Said()
    verify_archive(arc, ctx, said)
    assert said.notes() == []


@pytest.mark.parametrize("name,slices", [("SC_jpeg_no_color_transform.dcm", 1), ("examples_ybr_color.dcm", 30)])
def test_a_colour_jpeg_archive_verifies_and_extracts_with_another_decoder(tmp_path, ctx, monkeypatch, name, slices):
    """pydicom's highdicom RGB secondary capture and its 30-frame YBR_FULL_422 ultrasound (the decoders' colour
    upsampling differs too: up to 3 apart)."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(get_testdata_file(name), src / name)
    assert _differ(src / name) > 0
    arc = tmp_path / "arc"
    _build([src], arc, ctx, monkeypatch)
    said = Said()
    verify_archive(arc, ctx, said)
    assert len(said.notes()) == 1 and f"of {slices} slice(s)" in said.notes()[0], said.lines
    folder = extract_archive(arc, tmp_path / "out", ctx)[0]
    assert (folder / name).read_bytes() == (src / name).read_bytes()


@pytest.mark.slow
def test_the_dev_colour_ultrasound_cine_with_another_decoder(tmp_path, ctx, monkeypatch):
    """The dev data's US cine colourised as YBR_FULL_422 JPEG (test_jpegxl_colour.colour_ultrasound)."""
    from test_jpegxl_colour import colour_ultrasound

    path = colour_ultrasound(tmp_path / "us")
    assert _differ(path) > 0
    arc = tmp_path / "arc"
    _build([path.parent], arc, ctx, monkeypatch)
    said = Said()
    verify_archive(arc, ctx, said)
    assert len(said.notes()) == 1 and "of 27 slice(s)" in said.notes()[0], said.lines
    folder = extract_archive(arc, tmp_path / "out", ctx)[0]
    assert (folder / path.name).read_bytes() == path.read_bytes()


def _edited(built: Path, to: Path, chunks=None, edit=None) -> Path:
    """A copy of the archive with the group's streams replaced by ``chunks`` and the index edited by ``edit``, every
    size and checksum then made to agree and the SEAL rewritten: what a careful editor leaves."""
    shutil.copytree(built, to)
    index = json.loads((to / INDEX).read_text())
    g = index["groups"][0]
    if chunks is not None:
        data = b"".join(chunks)
        (to / g["stream"]).write_bytes(data)
        g["parts"][0]["chunk_sizes"] = [len(c) for c in chunks]
        next(f for f in index["files"] if f["path"] == g["stream"]).update(bytes=len(data), sha256=sha256(data))
    if edit:
        edit(g)
    reseal(to, index)
    return to


def test_a_damaged_stream_is_still_refused(grey, tmp_path, ctx, monkeypatch):
    arc = tmp_path / "arc"
    index = _build([grey], arc, ctx, monkeypatch)
    g = index["groups"][0]
    data = (arc / g["stream"]).read_bytes()
    ends = np.cumsum([0, *g["parts"][0]["chunk_sizes"]])
    chunks = [data[a:b] for a, b in zip(ends[:-1], ends[1:])]
    # a flipped bit in the middle of slice 1's .111 stream: the file's SHA-256 refuses it; resealed, libjxl does
    bad = bytearray(chunks[1])
    bad[len(bad) // 2] ^= 0x10
    damaged = _edited(arc, tmp_path / "damaged", [chunks[0], bytes(bad), *chunks[2:]])
    with pytest.raises(ArchiveError, match="slice 1") as caught:
        verify_archive(damaged, ctx)
    assert "JPEG" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ArchiveError, match="slice 1"):
        extract_archive(damaged, tmp_path / "out", ctx)
    assert not (tmp_path / "out").exists()
    (arc / g["stream"]).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ArchiveError, match="SHA-256 mismatch"):
        verify_archive(arc, ctx)
    (arc / g["stream"]).write_bytes(data)
    # a valid .111 stream in the wrong place (slice 0's as slice 1's): the JPEG frame's own SHA-256 refuses it
    moved = _edited(arc, tmp_path / "moved", [chunks[0], chunks[0], *chunks[2:]])
    with pytest.raises(ArchiveError, match="slice 1: the JPEG frame fails its SHA-256"):
        verify_archive(moved, ctx)
    # an edited JPEG checksum, and a list of them that does not fit the streams
    edited = _edited(arc, tmp_path / "edited", edit=lambda g: g["jpeg_sha256"].__setitem__(1, "0" * 64))
    with pytest.raises(ArchiveError, match="slice 1: the JPEG frame fails its SHA-256"):
        verify_archive(edited, ctx)
    short = _edited(arc, tmp_path / "short", edit=lambda g: g["jpeg_sha256"].pop())
    with pytest.raises(ArchiveError, match="jpeg_sha256 is not one SHA-256 per stream"):
        verify_archive(short, ctx)
    markup = _edited(arc, tmp_path / "markup", edit=lambda g: g.__setitem__("jpeg_decoder", "[/x]"))
    with pytest.raises(ArchiveError, match="jpeg_decoder .* is malformed"):  # it is printed in the note
        verify_archive(markup, ctx)
    verify_archive(arc, ctx)  # the original is untouched


def test_an_archive_without_jpeg_checksums_keeps_the_value_check(grey, tmp_path, ctx, monkeypatch):
    """Archives built before the JPEG checksums: their values must equal the build's, as before."""
    arc = tmp_path / "arc"
    _build([grey], arc, ctx, monkeypatch)
    old = _edited(arc, tmp_path / "old", edit=lambda g: [g.pop(k) for k in ("jpeg_sha256", "jpeg_decoder")])
    with pytest.raises(ArchiveError, match="decoded frames differ"):
        verify_archive(old, ctx)
    monkeypatch.setenv(ENV_VAR, BUILD)
    verify_archive(old, ctx)


def test_a_jpeg_file_that_comes_back_native_has_this_decoders_values(grey, tmp_path, ctx, monkeypatch):
    """A JPEG file whose frame is split in two fragments cannot be rebuilt byte for byte: it comes back native, from
    the values this machine's decoder gives, and extract says so."""
    from pydicom.encaps import encapsulate, generate_frames

    src = tmp_path / "src"
    shutil.copytree(grey, src)
    ds = pydicom.dcmread(src / "02.dcm")
    ds.PixelData = encapsulate([next(generate_frames(ds.PixelData, number_of_frames=1))], fragments_per_frame=2)
    ds.save_as(src / "02.dcm", enforce_file_format=True)
    arc = tmp_path / "arc"
    _build([src], arc, ctx, monkeypatch)
    verify_archive(arc, ctx)
    said = Said()
    folder = extract_archive(arc, tmp_path / "out", ctx, console=said)[0]
    assert any("1 file(s) written from the values" in n for n in said.notes()), said.lines
    for name in ("01.dcm", "03.dcm"):
        assert (folder / name).read_bytes() == (src / name).read_bytes()
    native = pydicom.dcmread(folder / "02.dcm")
    want = get_decoder(JPEGBaseline8Bit).as_array(pydicom.dcmread(src / "02.dcm"), decoding_plugin=OTHER)[0]
    assert not native.file_meta.TransferSyntaxUID.is_compressed and np.array_equal(native.pixel_array, want)


def test_the_command_names_both_decoders_and_refuses_an_unknown_one(grey, tmp_path, ctx, monkeypatch):
    arc = tmp_path / "arc"
    _build([grey], arc, ctx, monkeypatch)
    env = {**os.environ, "PYTHONPATH": str(ROOT), ENV_VAR: OTHER}
    run = subprocess.run([sys.executable, "run.py", "archive", "verify", str(arc)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    notes = [ln for ln in run.stdout.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and OTHER in notes[0] and BUILD in notes[0] and notes[0].endswith("SHA-256"), run.stdout
    env[ENV_VAR] = "nosuch"
    run = subprocess.run([sys.executable, "run.py", "archive", "verify", str(arc)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 2 and f"{ENV_VAR}=nosuch" in out and "Traceback" not in out, out
    # reading a JPEG series with it: refused in one line too, never another decoder silently
    with pytest.raises(InputError, match=f"{ENV_VAR}=nosuch"):
        monkeypatch.setenv(ENV_VAR, "nosuch")
        load_volume(grey)


@pytest.mark.parametrize("plugin", [BUILD, OTHER])
def test_the_validator_decodes_a_jpeg_with_the_readers_decoder(grey, monkeypatch, plugin):
    """dicom/validate decodes a kept JPEG frame with the plugin the reader uses, not pydicom's own first choice:
    with either decoder chosen, the file holds exactly the values the reader read (they differ between the two)."""
    from medpipe.dicom.validate import check_file

    monkeypatch.setenv(ENV_VAR, plugin)
    path = sorted(grey.iterdir())[0]
    read = load_volume(path).pixels
    assert check_file(path, JPEGBaseline8Bit, expected=list(read)) == []
    monkeypatch.setenv(ENV_VAR, OTHER if plugin == BUILD else BUILD)
    assert check_file(path, JPEGBaseline8Bit, expected=list(read)) != []
