"""JPEG XL's other two DICOM syntaxes: .111 (JPEG Recompression: a baseline JPEG source re-coded losslessly, its
JPEG bytes back bit for bit, by imagecodecs and by djxl) and .112 (JPEG XL lossy, ``{codec: jpegxl, distance: D}``),
written, read back and decoded; and the matrix rows they are."""
from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGBaseline8Bit, generate_uid

import interop
from conftest import shared
from helpers import row_of
from medpipe.codecs import frames
from medpipe.dicom.validate import check_file
from medpipe.dicom.writer import DicomSink
from medpipe.syntaxes import JPEGXL, JPEGXLJPEGRecompression, TABLE
from medpipe.volumes import load_volume


def baseline_jpeg_series(folder, slices: int = 3):
    """A real CT slice (pydicom's CT_small.dcm) as a 3-file series stored in JPEG Baseline (.50), 8-bit, each
    slice a different window of it: what an old archive or a secondary capture holds. Returns the fragments."""
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    values = src.pixel_array.astype(np.int32)
    folder.mkdir()
    series_uid, out = generate_uid(), []
    for k in range(slices):
        lo, hi = np.percentile(values, [1 + 2 * k, 99 - 2 * k])
        grey = np.clip((values - lo) * 255 / (hi - lo), 0, 255).astype(np.uint8)
        jpeg = bytes(imagecodecs.jpeg8_encode(grey, level=90))
        ds = copy.deepcopy(src)
        ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = generate_uid(), series_uid, k + 1
        ds.ImagePositionPatient = [0, 0, float(k)]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.LossyImageCompression, ds.LossyImageCompressionRatio = "01", round(grey.size / len(jpeg), 2)
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.PixelData = encapsulate([jpeg])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"{k + 1:02d}.dcm", enforce_file_format=True)
        out.append(jpeg)
    return out


@pytest.fixture(scope="module")
def jpeg_volume(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jpeg") / "series"
    return load_volume(folder) if baseline_jpeg_series(folder) else None


def test_recompression_gives_the_jpeg_bytes_back():
    src = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))  # a real .50 file (DCMTK), colour
    jpeg = next(generate_frames(src.PixelData, number_of_frames=1))
    data = frames.recompress_jpeg(jpeg)
    assert len(data) < len(jpeg) and frames.original_jpeg(data) == jpeg
    assert TABLE[JPEGXLJPEGRecompression].keeps_instance and TABLE[JPEGXLJPEGRecompression].lossless is False


@pytest.mark.skipif(shutil.which("djxl") is None, reason="djxl not installed")
def test_djxl_reconstructs_the_same_jpeg(tmp_path, jpeg_volume):
    src = pydicom.dcmread(jpeg_volume.files[0])
    jpeg = next(generate_frames(src.PixelData, number_of_frames=1))
    (tmp_path / "in.jxl").write_bytes(frames.recompress_jpeg(jpeg))
    subprocess.run(["djxl", str(tmp_path / "in.jxl"), str(tmp_path / "out.jpg")], check=True, capture_output=True)
    assert (tmp_path / "out.jpg").read_bytes() == jpeg


def test_a_twelve_bit_jpeg_is_refused_with_the_reason():
    src = pydicom.dcmread(get_testdata_file("JPEG-lossy.dcm"))  # .51, 12-bit: not baseline-recompressible
    jpeg = next(generate_frames(src.PixelData, number_of_frames=1))
    with pytest.raises(Exception, match="cannot recompress"):
        frames.recompress_jpeg(jpeg)


def test_the_matrix_row_and_its_dicom_output(tmp_path, jpeg_volume, ctx):
    sink = DicomSink(tmp_path / "dicom", ctx)
    row = row_of(jpeg_volume, {"codec": "jpegxl-jpeg", "label": "jpegxl-jpeg"}, ctx, sink=sink)
    assert row["status"] == "ok" and row["lossless"], row["reason"]
    assert "against the source's own JPEG" in row["reason"] and "bit for bit" in row["reason"]
    assert row["dicom_ts"] == JPEGXLJPEGRecompression, row["reason"]
    written = sorted((tmp_path / "dicom").rglob("*.dcm"))
    assert len(written) == 3
    for k, (path, source) in enumerate(zip(written, jpeg_volume.files)):
        src, ds = pydicom.dcmread(source), pydicom.dcmread(path)
        # the same instance: the lossy source stays labelled lossy, its history unchanged, nothing new lost
        assert ds.SOPInstanceUID == src.SOPInstanceUID and ds.LossyImageCompression == "01"
        assert ds.LossyImageCompressionRatio == src.LossyImageCompressionRatio
        assert ds.LossyImageCompressionMethod == src.LossyImageCompressionMethod
        stream = next(generate_frames(ds.PixelData, number_of_frames=1))
        assert frames.original_jpeg(stream) == next(generate_frames(src.PixelData, number_of_frames=1))
        assert check_file(path, JPEGXLJPEGRecompression, [jpeg_volume.pixels[k]]) == []


def test_the_survey_offers_it_for_a_jpeg_stored_series(jpeg_volume):
    """A survey measures the row on a series stored as baseline JPEG: .111 DICOM files, smaller than stored."""
    from medpipe.codecs import parse_codec
    from medpipe.survey.measure import measure_series

    spec = parse_codec({"codec": "jpegxl-jpeg", "label": "JPEG XL JPEG Recompression"}, "test")
    record = measure_series({"paths": [str(p) for p in jpeg_volume.files], "series_uid": "x", "specs": [spec]})
    got = record["codecs"]["JPEG XL JPEG Recompression"]
    assert got["status"] == "ok" and got["dicom_ts"] == JPEGXLJPEGRecompression, got
    assert got["bytes"] < record["stored_bytes"]


@pytest.mark.slow
def test_the_command_runs_it_in_worker_processes(tmp_path, jpeg_volume):
    """The product path: `run.py` with a 2-process pool, whose workers get a volume's metadata without its DICOM
    headers. The row still finds the source's JPEG frames (read again from the files) and writes .111."""
    import csv
    import sys

    root = Path(__file__).resolve().parents[1]
    preset = tmp_path / "p.yaml"
    preset.write_text("name: p\noutput: out\ndicom_out: {folder: dicom}\ncodecs:\n"
                      "  - {codec: jpegxl-jpeg, label: jxl-jpeg}\n  - {codec: jpegls, label: jls}\n")
    done = subprocess.run([sys.executable, str(root / "run.py"), str(preset), "--input",
                           str(jpeg_volume.files[0].parent), "--jobs", "2"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    (results,) = (tmp_path / "out").rglob("results.csv")
    rows = {r["label"]: r for r in csv.DictReader(results.open())}
    assert rows["jxl-jpeg"]["status"] == "ok" and rows["jxl-jpeg"]["dicom_ts"] == JPEGXLJPEGRecompression, rows
    assert "bit for bit" in rows["jxl-jpeg"]["reason"]


def test_a_source_that_is_not_jpeg_skips_the_row(sample_volume, ctx):
    row = row_of(sample_volume, {"codec": "jpegxl-jpeg"}, ctx)
    assert row["status"] == "skipped" and "not baseline JPEG" in row["reason"]


def test_jpegxl_lossy_is_written_as_112(tmp_path, sample_volume, ctx):
    sink = DicomSink(tmp_path / "dicom", ctx)
    row = row_of(sample_volume, {"codec": "jpegxl", "distance": 1.0, "effort": 3, "label": "jxl-d1"}, ctx,
                 sink=sink)
    assert row["status"] == "ok" and not row["lossless"] and row["dicom_ts"] == JPEGXL, row["reason"]
    files = sorted((tmp_path / "dicom").rglob("*.dcm"))
    assert len(files) == 28
    src, ds = pydicom.dcmread(sample_volume.files[0]), pydicom.dcmread(files[0])
    assert ds.file_meta.TransferSyntaxUID == JPEGXL and ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_18181_1" and ds.ImageType[0] == "DERIVED"
    assert ds.SOPInstanceUID != src.SOPInstanceUID
    stream = next(generate_frames(ds.PixelData, number_of_frames=1))
    ours = frames.decode_frame(JPEGXL, stream, frames.PixelAttrs.of(ds))
    modality = ours * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    err = np.abs(modality - src.pixel_array.astype(np.float64)).max()
    assert 0 < err < 200
    if shutil.which("djxl"):  # another libjxl (the system's djxl): lossy decoding is not bit-exact across versions
        theirs = interop.djxl_decode(stream).astype(np.int64)
        assert theirs.shape == ours.shape and np.abs(theirs - ours).max() <= 2


def test_a_jpeg_stored_series_archived_with_the_111_candidate(tmp_path, jpeg_volume, ctx):
    """The archive keeps the series' own JPEG frames as .111: every stored stream gives the source's JPEG bytes
    back bit for bit, verify restores every slice exactly, and extract gives the original .50 files back, byte for
    byte."""
    from medpipe.archive import Settings, build_archive, extract_archive, verify_archive
    from medpipe.archive.verify import stream_chunks

    arc = tmp_path / "arc"
    index = build_archive([jpeg_volume], arc, Settings(candidates=["jpegxl-jpeg", "jpegxl"], effort=1), ctx)
    g = index["groups"][0]
    assert g["candidate"] == "jpegxl-jpeg" and g["lossless"], g["candidates"]
    chunks = stream_chunks(arc, g)[0]
    sources = [next(generate_frames(pydicom.dcmread(f).PixelData, number_of_frames=1)) for f in jpeg_volume.files]
    assert [frames.original_jpeg(c) for c in chunks] == sources
    verify_archive(arc, ctx)
    folder = extract_archive(arc, tmp_path / "out", ctx)[0]
    restored = sorted(folder.iterdir())
    assert [p.read_bytes() for p in restored] == [f.read_bytes() for f in jpeg_volume.files]


@pytest.mark.slow
def test_the_dev_ultrasound_cine_as_baseline_jpeg(tmp_path, ctx):
    """The dev data's Philips US cine (27 x 600 x 800, 8-bit grey) stored as JPEG Baseline, the way ultrasound
    archives hold it (quality 85, one fragment per frame): the matrix row, its CR against the JPEG, the DICOM output
    and the archive, whose extract gives the .50 file back byte for byte."""
    from medpipe.archive import Settings, build_archive, extract_archive

    src = pydicom.dcmread(shared("us/philips_greyscale_cine.dcm"))
    jpegs = [bytes(imagecodecs.jpeg8_encode(f, level=85)) for f in src.pixel_array]
    ds = copy.deepcopy(src)
    ds.PixelData = encapsulate(jpegs)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
    ds.LossyImageCompressionRatio = round(src.pixel_array.size / sum(len(j) for j in jpegs), 2)
    (tmp_path / "us").mkdir()
    ds.save_as(tmp_path / "us" / "cine.dcm", enforce_file_format=True)
    volume = load_volume(tmp_path / "us")
    row = row_of(volume, {"codec": "jpegxl-jpeg", "label": "jpegxl-jpeg"}, ctx, sink=DicomSink(tmp_path / "dcm", ctx))
    assert row["status"] == "ok" and row["dicom_ts"] == JPEGXLJPEGRecompression, row["reason"]
    print("\n", row["reason"])
    out = pydicom.dcmread(next((tmp_path / "dcm").rglob("*.dcm")))
    assert out.SOPInstanceUID == ds.SOPInstanceUID and out.LossyImageCompression == "01"
    stored = list(generate_frames(pydicom.dcmread(tmp_path / "us" / "cine.dcm").PixelData, number_of_frames=27))
    assert [frames.original_jpeg(f) for f in generate_frames(out.PixelData, number_of_frames=27)] == stored
    arc = tmp_path / "arc"
    index = build_archive([volume], arc, Settings(candidates=["jpegxl-jpeg"], effort=1), ctx)
    assert index["groups"][0]["candidate"] == "jpegxl-jpeg"
    folder = extract_archive(arc, tmp_path / "out", ctx)[0]
    assert next(folder.iterdir()).read_bytes() == (tmp_path / "us" / "cine.dcm").read_bytes()
