"""DICOM out: every codec with a transfer syntax writes conformant, encapsulated DICOM that pydicom and an
independent toolkit (DCMTK, GDCM where installed) decode to the source's values; rows without a syntax say why."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medpipe.results import COLUMNS
from medpipe.dicom.syntaxes import strip_jpeg_wrappers
from medpipe.dicom.writer import DICOM_OPTIONS, DicomSink
from medpipe.options import on_off
from medpipe.errors import PresetError
from medpipe.codecs import parse_codec

from helpers import row_of
from conftest import SAMPLE, shared

pytestmark = pytest.mark.slow  # builds real runs / DICOM series once per module

LOSSLESS = {  # label -> (codec entry, transfer syntax, DCMTK decompressor)
    "jpegls": ({"codec": "jpegls"}, "1.2.840.10008.1.2.4.80", "dcmdjpls"),
    "ljpeg": ({"codec": "ljpeg"}, "1.2.840.10008.1.2.4.70", "dcmdjpeg"),
    "rle": ({"codec": "rle"}, "1.2.840.10008.1.2.5", "dcmdrle"),
    "j2k": ({"codec": "jpeg2000"}, "1.2.840.10008.1.2.4.90", None),
    "htj2k": ({"codec": "htj2k"}, "1.2.840.10008.1.2.4.201", None),
}
LOSSY = {
    "jls_near2": ({"codec": "jpegls", "near": 2}, "1.2.840.10008.1.2.4.81"),
    "j2k_psnr60": ({"codec": "jpeg2000", "lossless": False, "psnr": 60}, "1.2.840.10008.1.2.4.91"),
}


def spec(label, entry):
    return parse_codec({**entry, "label": label}, "test")


def modality_values(ds) -> np.ndarray:
    arr = ds.pixel_array.astype(np.float64)
    return arr * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)


def source_values(path: Path) -> np.ndarray:
    return modality_values(pydicom.dcmread(path))


@pytest.fixture(scope="module")
def written(tmp_path_factory, sample_volume, ctx):
    """Run each configuration once on the shipped signed head CT, writing DICOM; {label: row}."""
    root = tmp_path_factory.mktemp("dicom_out")
    sink = DicomSink(root, ctx)
    rows = {}
    entries = {k: v[0] for k, v in LOSSLESS.items()} | {k: v[0] for k, v in LOSSY.items()}
    entries |= {"x264_420_8": {"codec": "x264", "bits": 8, "chroma": "420", "preset": "ultrafast"},
                "x265_gray12": {"codec": "x265", "bits": 12, "chroma": "gray", "preset": "ultrafast",
                                "lossless": True},
                "x264_420_10": {"codec": "x264", "bits": 10, "chroma": "420", "preset": "ultrafast"},
                "x265_420_10": {"codec": "x265", "bits": 10, "chroma": "420", "preset": "ultrafast"},
                "png": {"codec": "png", "level": 1}, "jpegxl": {"codec": "jpegxl", "effort": 1}}
    for label, entry in entries.items():
        rows[label] = row_of(sample_volume, spec(label, entry), ctx, sink=sink)
    return rows


def test_columns_have_dicom_fields():
    assert "dicom_ts" in COLUMNS and "dicom_dir" in COLUMNS


@pytest.mark.parametrize("label", sorted(LOSSLESS))
def test_lossless_output_pydicom_bit_exact_and_keeps_uids(written, label):
    row = written[label]
    assert row["status"] == "ok", row["reason"]
    assert row["dicom_ts"] == LOSSLESS[label][1]
    out = Path(row["dicom_dir"])
    files = sorted(out.glob("*.dcm"))
    assert [f.name for f in files] == sorted(p.name for p in SAMPLE.glob("*.dcm"))
    assert not list(out.parent.glob("*.part")), "temporary folder left behind"
    for f in files:
        src, ds = pydicom.dcmread(SAMPLE / f.name), pydicom.dcmread(f)
        assert ds.file_meta.TransferSyntaxUID == LOSSLESS[label][1]
        assert ds["PixelData"].is_undefined_length  # encapsulated
        assert ds.SOPInstanceUID == src.SOPInstanceUID and ds.SeriesInstanceUID == src.SeriesInstanceUID
        assert "LossyImageCompression" not in ds or ds.LossyImageCompression == src.get("LossyImageCompression")
        # signed CT is written as offset data with PixelRepresentation 0 and an adjusted intercept: HU exact
        assert ds.PixelRepresentation == 0 and ds.BitsStored == 12
        assert np.array_equal(modality_values(ds), modality_values(src)), f.name
        assert ds.PatientID == src.PatientID and ds.ImagePositionPatient == src.ImagePositionPatient


@pytest.mark.parametrize("label", sorted(LOSSY))
def test_lossy_output_is_derived(written, label):
    row = written[label]
    assert row["status"] == "ok", row["reason"]
    assert row["dicom_ts"] == LOSSY[label][1]
    files = sorted(Path(row["dicom_dir"]).glob("*.dcm"))
    assert len(files) == 28
    series = set()
    for f in files[:3]:
        src, ds = pydicom.dcmread(SAMPLE / f.name), pydicom.dcmread(f)
        assert ds.SOPInstanceUID != src.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.LossyImageCompression == "01"
        assert float(ds.LossyImageCompressionRatio) > 1
        assert ds.LossyImageCompressionMethod in ("ISO_14495_1", "ISO_15444_1")
        assert ds.ImageType[0] == "DERIVED"
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert ds.StudyInstanceUID == src.StudyInstanceUID
        series.add(ds.SeriesInstanceUID)
        err = np.abs(modality_values(ds) - modality_values(src)).max()
        if label == "jls_near2":
            assert err <= 2
        else:
            assert 0 < err < 200
    assert len(series) == 1 and series != {pydicom.dcmread(SAMPLE / "01.dcm").SeriesInstanceUID}


def test_video_rows(written):
    # 8-bit 4:2:0 H.264 fits DICOM's H.264 High Profile syntax; 12-bit monochrome HEVC and 10-bit H.264 do not
    assert written["x264_420_8"]["dicom_ts"] == "1.2.840.10008.1.2.4.102"
    assert written["x265_gray12"]["dicom_ts"] is None
    assert "no DICOM transfer syntax" in written["x265_gray12"]["reason"]
    assert "4:2:0" in written["x265_gray12"]["reason"] and "'gray'" in written["x265_gray12"]["reason"]
    assert "8-bit" in written["x264_420_10"]["reason"] and written["x264_420_10"]["dicom_ts"] is None
    assert "no DICOM transfer syntax" in written["png"]["reason"]
    jxl = written["jpegxl"]
    assert jxl["dicom_ts"] is None or jxl["dicom_ts"] == "1.2.840.10008.1.2.4.110"
    if jxl["dicom_ts"] is None:
        assert "pydicom" in jxl["reason"]


@pytest.mark.parametrize("label,uid,fmt,method,bits,profile", [
    ("x264_420_8", "1.2.840.10008.1.2.4.102", "h264", "ISO_14496_10", 8, "H.264"),
    ("x265_420_10", "1.2.840.10008.1.2.4.108", "hevc", "ISO_23008_2", 10, "HEVC Main 10 profile")])
def test_video_object_holds_a_decodable_stream(written, tmp_path, ctx, label, uid, fmt, method, bits, profile):
    ds = pydicom.dcmread(Path(written[label]["dicom_dir"]) / "video.dcm")
    assert ds.file_meta.TransferSyntaxUID == uid and written[label]["dicom_ts"] == uid
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420" and ds.NumberOfFrames == 28
    assert ds.BitsStored == bits and ds.SamplesPerPixel == 3
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == method
    assert profile in ds.DerivationDescription
    from pydicom.encaps import generate_fragments

    stream = b"".join(generate_fragments(ds.PixelData))
    assert stream[:3] == b"\x00\x00\x01" or stream[:4] == b"\x00\x00\x00\x01"  # Annex B elementary stream
    (tmp_path / f"s.{fmt}").write_bytes(stream)
    raw = ctx.ffmpeg.run(["-f", fmt, "-i", str(tmp_path / f"s.{fmt}"), "-f", "rawvideo", "-pix_fmt", "gray",
                          "pipe:1"])
    assert len(raw) == 28 * 512 * 512


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} not installed (Debian package dcmtk / libgdcm-tools / dicom3tools); "
                    ".ci/run installs it where apt-get works")
    return path


@pytest.mark.parametrize("label", ["jpegls", "ljpeg", "rle"])
def test_dcmtk_decodes_lossless_bit_exact(written, label, tmp_path):
    exe = tool(LOSSLESS[label][2])
    out = Path(written[label]["dicom_dir"])
    for f in sorted(out.glob("*.dcm")):
        plain = tmp_path / f.name
        subprocess.run([exe, str(f), str(plain)], check=True, capture_output=True)
        ds = pydicom.dcmread(plain)
        assert not ds.file_meta.TransferSyntaxUID.is_compressed
        assert np.array_equal(modality_values(ds), source_values(SAMPLE / f.name)), f.name


@pytest.mark.parametrize("label", ["j2k", "htj2k", "jpegls"])
def test_gdcm_decodes_lossless_bit_exact(written, label, tmp_path):
    exe = tool("gdcmconv")
    out = Path(written[label]["dicom_dir"])
    for f in sorted(out.glob("*.dcm"))[:4]:
        plain = tmp_path / f.name
        run = subprocess.run([exe, "--raw", str(f), str(plain)], capture_output=True, text=True)
        if run.returncode and label == "htj2k":
            pytest.skip(f"this gdcmconv cannot decode HTJ2K: {run.stderr.strip()[:200]}")
        assert run.returncode == 0, run.stderr
        ds = pydicom.dcmread(plain)
        assert np.array_equal(modality_values(ds), source_values(SAMPLE / f.name)), f.name


def dciodvfy_errors(path: Path) -> set[str]:
    run = subprocess.run([tool("dciodvfy"), str(path)], capture_output=True, text=True)
    errors = {line.strip() for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")}
    if any("non-encapsulated transfer syntax" in e for e in errors):
        ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        pytest.skip(f"this dciodvfy predates transfer syntax {ts} ({ts.name}) and cannot parse the file")
    return errors


@pytest.mark.parametrize("label", ["jpegls", "jls_near2", "rle", "ljpeg", "j2k", "j2k_psnr60", "htj2k",
                                   "x264_420_8", "x265_420_10"])
def test_dciodvfy_finds_no_errors_medpipe_added(written, label):
    out = Path(written[label]["dicom_dir"])
    f = sorted(out.glob("*.dcm"))[0]
    errors = dciodvfy_errors(f)
    source = dciodvfy_errors(SAMPLE / "01.dcm")
    # the shipped sample is de-identified: its empty DeidentificationMethod (Type 1C) is the source's own error
    assert errors <= source, errors - source
    assert not any("Type 2" in e for e in errors)  # missing Type 2 attributes are added empty


def test_unsigned_12bit_series_keeps_stored_values(tmp_path, ctx):
    """cq500_ct5 (uint16, 12 of 16 bits): identity mapping, stored values and attributes unchanged."""
    from medpipe.volumes import load_dicom_files

    folder = shared("ct_head/cq500_ct5")
    files = sorted(folder.glob("*.dcm"))[:6]
    vol = load_dicom_files(files, "cq500_ct5_part", folder)
    row = row_of(vol, spec("jls", {"codec": "jpegls"}), ctx, sink=DicomSink(tmp_path, ctx))
    assert row["status"] == "ok" and row["dicom_ts"] == "1.2.840.10008.1.2.4.80", row["reason"]
    for f in files:
        src, ds = pydicom.dcmread(f), pydicom.dcmread(Path(row["dicom_dir"]) / f.name)
        assert ds.BitsStored == src.BitsStored == 12 and ds.PixelRepresentation == 0
        assert ds.RescaleIntercept == src.RescaleIntercept
        assert np.array_equal(ds.pixel_array, src.pixel_array)


def test_xray_and_multiframe_with_extended_offset_table(tmp_path, ctx, sample_volume):
    """A multi-frame object gets one fragment per frame and, when asked, an Extended Offset Table."""
    from medpipe.volumes import load_dicom_files

    src = pydicom.dcmread(SAMPLE / "01.dcm")
    frames = np.stack([pydicom.dcmread(SAMPLE / f"{i:02d}.dcm").pixel_array for i in (1, 2, 3)])
    src.NumberOfFrames = 3
    src.PixelData = frames.tobytes()
    path = tmp_path / "mf.dcm"
    src.save_as(path)
    vol = load_dicom_files([path], "mf", path)
    assert vol.shape == (3, 512, 512)
    row = row_of(vol, spec("rle", {"codec": "rle"}), ctx, sink=DicomSink(tmp_path / "out", ctx,
                                                                            offset_table="extended"))
    assert row["status"] == "ok", row["reason"]
    ds = pydicom.dcmread(Path(row["dicom_dir"]) / "mf.dcm")
    assert ds.NumberOfFrames == 3 and "ExtendedOffsetTable" in ds
    assert len(ds.ExtendedOffsetTable) == 3 * 8
    assert np.array_equal(modality_values(ds), frames * float(src.RescaleSlope) + float(src.RescaleIntercept))


def test_strip_jpeg_wrappers_keeps_image_data():
    import imagecodecs

    sl = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4000
    jls = imagecodecs.jpegls_encode(sl)
    bare = strip_jpeg_wrappers(jls)
    assert b"SPIFF" in jls and b"SPIFF" not in bare and bare[:2] == b"\xff\xd8"
    assert np.array_equal(imagecodecs.jpegls_decode(bare), sl)
    lj = imagecodecs.jpeg8_encode(sl, lossless=True, predictor=1, bitspersample=12)
    assert b"JFIF" not in strip_jpeg_wrappers(lj)
    assert np.array_equal(imagecodecs.jpeg8_decode(strip_jpeg_wrappers(lj)), sl)


def test_options_are_checked():
    assert on_off(True, DICOM_OPTIONS, "dicom_out") == {"folder": "dicom", "offset_table": "basic", "verify": True}
    assert on_off(False, DICOM_OPTIONS, "dicom_out") is None
    with pytest.raises(PresetError, match="offset_table"):
        on_off({"offset_tabel": "basic"}, DICOM_OPTIONS, "dicom_out")
    with pytest.raises(PresetError, match="extended"):
        on_off({"offset_table": "huge"}, DICOM_OPTIONS, "dicom_out")


def test_rle_native_encoder_gives_the_same_stream(monkeypatch, ctx):
    """Without pylibjpeg-rle, pydicom's pure-Python RLE encoder is used: same bytes, same values."""
    from medpipe.codecs import codec_class, pydicom_family

    frames = (np.arange(2 * 40 * 33, dtype=np.uint16).reshape(2, 40, 33) * 7) % 4096
    codec = codec_class("rle")()
    fast = codec.encode(frames, ctx)
    monkeypatch.setattr(pydicom_family, "_plugin", lambda: "pydicom")
    slow = codec.encode(frames, ctx)
    assert "native" in codec.version(ctx)
    assert np.array_equal(codec.decode(slow, ctx), frames) and np.array_equal(codec.decode(fast, ctx), frames)
