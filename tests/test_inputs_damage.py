"""Damaged compressed input never passes as data (issue 11.4): real dev slices with 64 zeroed bytes in their
codestream, written to tmp_path (the inputs are never modified). Measured here: pyjpegls and imagecodecs' CharLS
reject such a JPEG-LS stream while pylibjpeg's libjpeg decodes it to noise (-32768..32767 in a -2000..2310
series); both lossless-JPEG decoders decode a damaged stream to the same wrong values, so only the series check
sees those."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder
from rich.console import Console

from medpipe.volumes import load_inputs
from medpipe.volumes.damage import decode_checked, header_range_problem, series_outliers
from medpipe.volumes.dicom import slice_position

from conftest import shared


def zero_64_bytes(src: Path, dst: Path, where: float = 0.5) -> Path:
    """A byte-identical copy of ``src`` except 64 zeroed bytes at ``where`` (fraction) of its first codestream."""
    raw = src.read_bytes()
    ds = pydicom.dcmread(src)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    at = raw.find(frame[:256]) + int(len(frame) * where)
    data = bytearray(raw)
    data[at:at + 64] = bytes(64)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def along_normal(rel: str) -> list[Path]:
    """The files of a dev series in slice order (CQ500 file numbers do not follow the anatomy)."""
    files = sorted(shared(rel).glob("*.dcm"))
    return sorted(files, key=lambda f: slice_position(pydicom.dcmread(f, stop_before_pixels=True)))


def series_copy(rel: str, dst: Path, start: int, n: int, damage: int | None = None, where: float = 0.5) -> list:
    """n neighbouring slices of a dev series copied to dst, slice ``damage`` with 64 zeroed codestream bytes."""
    files = along_normal(rel)[start:start + n]
    for i, f in enumerate(files):
        if i == damage:
            zero_64_bytes(f, dst / f.name, where)
        else:
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst / f.name)
    return files


def libjpeg_garbage(path: Path) -> np.ndarray:
    """What pylibjpeg's libjpeg makes of a damaged codestream (the decoder that accepts it)."""
    ds = pydicom.dcmread(path)
    arr, _ = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, decoding_plugin="pylibjpeg")
    return arr


def test_damaged_jpegls_slice_refuses_its_series(tmp_path):
    files = series_copy("ct_chest/acrin_flt_breast_001/series_2_805941", tmp_path / "chest", 50, 8, damage=3)
    vols, errors = load_inputs([tmp_path / "chest"], Console(width=200))
    assert not vols and len(errors) == 1, errors
    assert "series refused" in errors[0] and files[3].name in errors[0]
    assert "pyjpegls rejects the codestream" in errors[0] and "on_damage: drop_slice" in errors[0]


def test_drop_slice_processes_the_series_without_it_and_says_so(tmp_path):
    files = series_copy("ct_head/cq500_ct5", tmp_path / "head", 18, 6, damage=2)
    console = Console(record=True, width=300)
    vols, errors = load_inputs([tmp_path / "head"], console, {"on_damage": "drop_slice"})
    assert len(vols) == 1 and vols[0].shape == (5, 512, 512)
    vol = vols[0]
    assert files[2].name not in [f.name for f in vol.files] and len(vol.headers) == 5
    damaged = [e for e in vol.events if e["kind"] == "damaged"]
    assert len(damaged) == 1 and files[2].name in damaged[0]["message"]
    assert len(errors) == 1 and files[2].name in errors[0]  # the run reports it: exit code 1
    assert console.export_text().count(files[2].name) == 1
    assert vol.value_range[1] <= 4095 and vol.bits_stored == 12
    for i, f in enumerate(vol.files):
        assert np.array_equal(vol.pixels[i], pydicom.dcmread(f).pixel_array)
    assert vol.spacing[0] == pytest.approx(3.0, abs=0.1)  # one 3 mm step is missing, the median is unchanged


def test_lossless_jpeg_damage_that_every_decoder_accepts_is_caught_by_the_series_check(tmp_path):
    """cq500_ct0 (JPEG Lossless SV1): pylibjpeg and imagecodecs both decode the damaged stream, identically."""
    files = series_copy("ct_head/cq500_ct0", tmp_path / "ct0", 100, 7, damage=3)
    damaged = tmp_path / "ct0" / files[3].name
    decoded = decode_checked(pydicom.dcmread(damaged), damaged, cross_check=True)
    assert not decoded.problems  # no decoder objects ...
    assert not np.array_equal(decoded.array, pydicom.dcmread(files[3]).pixel_array)  # ... to wrong values
    vols, errors = load_inputs([tmp_path / "ct0"], Console(width=200))
    assert not vols and "far outside its neighbours' range" in errors[0] and files[3].name in errors[0]
    vols, errors = load_inputs([tmp_path / "ct0"], Console(width=200), {"damage_check": False})
    assert len(vols) == 1 and vols[0].shape[0] == 7  # what happened before: garbage passed as data


def test_series_check_on_real_decoder_garbage(tmp_path):
    """The two signatures, measured on what libjpeg returns for damaged real slices: values out of range
    (signed chest CT) and streaked rows (12-bit head CT, values still inside 0..4095)."""
    for rel, k, kind in [("ct_chest/acrin_flt_breast_001/series_2_805941", 50, "outside"),
                         ("ct_head/cq500_ct5", 20, "rougher")]:
        files = along_normal(rel)[k - 3:k + 4]
        stack = np.stack([pydicom.dcmread(f).pixel_array for f in files])
        padding = (-2000, -2000) if "chest" in rel else None
        assert series_outliers(stack, padding) == {}  # the real series: no false alarm
        garbage = libjpeg_garbage(zero_64_bytes(files[3], tmp_path / f"{kind}.dcm"))
        assert not np.array_equal(garbage, stack[3])
        bad = stack.copy()
        bad[3] = garbage
        found = series_outliers(bad, padding)
        assert list(found) == [3] and kind in found[3], found


def test_cross_check_adds_an_independent_decoder(tmp_path):
    damaged = zero_64_bytes(sorted(shared("ct_head/cq500_ct5").glob("*.dcm"))[20], tmp_path / "x.dcm")
    alone = decode_checked(pydicom.dcmread(damaged), damaged, cross_check=False)
    both = decode_checked(pydicom.dcmread(damaged), damaged, cross_check=True)
    assert len(alone.problems) == 1 and "pyjpegls rejects" in alone.problems[0]
    assert len(both.problems) == 2 and "frame coder (imagecodecs.jpegls_decode) rejects" in both.problems[1]
    clean = sorted(shared("ct_head/cq500_ct5").glob("*.dcm"))[20]
    assert decode_checked(pydicom.dcmread(clean), clean, cross_check=True).problems == []


def test_values_outside_bits_stored_are_named():
    arr = np.array([[0, 4095], [4096, 7]], dtype=np.uint16)
    assert "4096" in header_range_problem(arr, 12, False) and header_range_problem(arr[:1], 12, False) is None
    signed = np.array([[-2048, 2047]], dtype=np.int16)
    assert header_range_problem(signed, 12, True) is None and header_range_problem(signed, 11, True)


def test_multiframe_with_a_damaged_frame_is_refused_even_with_drop_slice(tmp_path):
    """Frames cannot be dropped from one object (DICOM output keeps its per-frame headers): refused. JPEG-LS:
    a decoder rejects the frame; lossless JPEG: the series check finds it among the other frames."""
    for rel, expect in [("ct_head/cq500_ct5", "damaged: pyjpegls rejects the codestream"),
                        ("ct_head/cq500_ct0", "never processed with frames missing")]:
        _multiframe_refused(rel, expect, tmp_path / rel.replace("/", "_"))


def _multiframe_refused(rel: str, expect: str, folder: Path) -> None:
    files = along_normal(rel)[100 if "ct0" in rel else 18:][:6]
    ds = pydicom.dcmread(files[0])
    frames = [next(generate_frames(pydicom.dcmread(f).PixelData, number_of_frames=1)) for f in files]
    bad = bytearray(frames[2])
    bad[len(bad) // 2:len(bad) // 2 + 64] = bytes(64)
    frames[2] = bytes(bad)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames)
    folder.mkdir(parents=True)
    ds.save_as(folder / "mf.dcm", enforce_file_format=True)
    vols, errors = load_inputs([folder / "mf.dcm"], Console(width=200), {"on_damage": "drop_slice"})
    assert not vols and len(errors) == 1 and expect in errors[0] and "mf.dcm" in errors[0], errors


# ---------------------------------------------------------------- what the formats themselves reveal (issue 21)

def _sample_series(dst: Path, n: int = 5) -> list[Path]:
    from conftest import SAMPLE

    dst.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, dst / f.name)) for f in sorted(SAMPLE.glob("*.dcm"))[10:10 + n]]


@pytest.mark.parametrize("on_damage", ["refuse_series", "drop_slice"])
def test_rows_that_disagree_with_the_pixel_data_length_name_the_file_damaged(tmp_path, on_damage):
    """Rows says 500 while the Pixel Data holds 512 rows: damaged (the probe saw it split off as a 500-row
    volume)."""
    files = _sample_series(tmp_path / "ct")
    ds = pydicom.dcmread(files[2])
    ds.Rows = 500
    ds.save_as(files[2])
    vols, errors = load_inputs([tmp_path / "ct"], Console(file=None, quiet=True), {"on_damage": on_damage})
    said = " ".join(errors)
    assert files[2].name in said and "Pixel Data holds 524288 bytes" in said and "holds 512 rows" in said, errors
    if on_damage == "refuse_series":
        assert vols == []
    else:
        assert [v.shape for v in vols] == [(4, 512, 512)]  # never a 500-row volume of its own
        assert any(e["kind"] == "damaged" for e in vols[0].events)


def _as_rle(files: list[Path]) -> None:
    from pydicom.uid import RLELossless

    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(RLELossless)
        ds.save_as(f)


@pytest.mark.parametrize("on_damage", ["refuse_series", "drop_slice"])
def test_rle_with_64_zeroed_bytes_is_damaged_by_annex_g(tmp_path, on_damage):
    """pylibjpeg-rle panics on such a frame and pydicom's own decoder returns wrong values; medpipe.rle checks
    every segment's length (PS3.5 G.3.1) and names the file."""
    files = _sample_series(tmp_path / "ct")
    _as_rle(files)
    zero_64_bytes(files[2], files[2])
    vols, errors = load_inputs([tmp_path / "ct"], Console(file=None, quiet=True), {"on_damage": on_damage})
    said = " ".join(errors)
    assert files[2].name in said and "RLE frame damaged" in said and "G.3.1" in said, errors
    assert vols == [] if on_damage == "refuse_series" else [v.shape[0] for v in vols] == [4]


def test_rle_frames_decode_exactly_as_pydicom_does_when_whole(tmp_path):
    files = _sample_series(tmp_path / "ct", 2)
    _as_rle(files)
    for f in files:
        ds = pydicom.dcmread(f)
        decoded = decode_checked(ds, f, cross_check=False)
        assert decoded.decoder.startswith("medpipe.rle") and not decoded.problems
        assert np.array_equal(decoded.array, ds.pixel_array) and decoded.array.dtype == ds.pixel_array.dtype


def _corpus():
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    import damage_detection

    return damage_detection


# Floors under the rates bench/damage_detection.py measured (40 damages per cell; README "Damaged input"); 8 here,
# seeded, so the result is the same on every run.
# None: the syntax cannot reveal that damage (no checksum; it decodes to plausible values), so nothing is asserted.
# Per syntax: (zero64, flip, truncate).
FLOORS = {"native": (None, None, 1.0), "RLE": (0.8, 0.6, 1.0), "JPEG baseline (8-bit)": (None, None, 0.8),
          "JPEG lossless SV1": (0.6, 0.8, 1.0), "JPEG-LS lossless": (1.0, 1.0, 1.0),
          "JPEG 2000 lossless": (None, None, 1.0), "HTJ2K lossless": (None, 0.6, 1.0),
          "JPEG XL lossless": (1.0, 1.0, 1.0), "Deflated Image Frame": (1.0, 1.0, 1.0)}


@pytest.mark.parametrize("syntax", list(FLOORS))
def test_damage_corpus_detection_rates(syntax):
    """Seeded zeroed runs, bit flips and truncations of a real CT slice in each stored syntax the readers accept,
    judged as the readers judge every file (structure, decoders, BitsStored, neighbours)."""
    dd = _corpus()
    series = shared("ct_head/cq500_ct5")
    rows = dd.corpus(series, n=8, seed=1, syntaxes={syntax: dd.SYNTAXES[syntax]})
    for row, floor in zip(rows, FLOORS[syntax]):
        if floor is not None:
            assert row["rate"] is not None and row["rate"] >= floor, row
