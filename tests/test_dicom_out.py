"""DICOM out: a lossless row is the same instance in another transfer syntax -- every attribute and UID kept, stored
values bit-identical as independent decoders (DCMTK, GDCM, OpenJPEG, djxl, zlib) read them; the offset copy and lossy
rows are derived series; dicom_bytes / dicom_cr are measured; video goes through the one ffmpeg runner."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

import interop
from conftest import ROOT, SAMPLE, shared
from helpers import row_of
from medpipe.codecs import parse_codec
from medpipe.dicom import syntaxes as sx
from medpipe.codecs.frames import encode_frame, strip_jpeg_wrappers
from medpipe.dicom.deliver import send_node, with_send_defaults
from medpipe.dicom.streaminfo import codestream_info
from medpipe.dicom.validate import decode_frames, encapsulation_problems, frame_problems
from medpipe.dicom.writer import DEFLATED_DIR, DICOM_OPTIONS, OFFSET_DIR, DicomSink
from medpipe.errors import PresetError
from medpipe.options import on_off
from medpipe.results import COLUMNS

LOSSLESS = {  # label -> (codec entry, transfer syntax written)
    "jpegls": ({"codec": "jpegls"}, sx.JPEG_LS_LOSSLESS),
    "ljpeg": ({"codec": "ljpeg"}, sx.JPEG_LOSSLESS_SV1),
    "j2k": ({"codec": "jpeg2000"}, sx.JPEG_2000_LOSSLESS),
    "htj2k": ({"codec": "htj2k"}, sx.HTJ2K_LOSSLESS_RPCL),  # dicom_out htj2k: rpcl (the default)
    "jpegxl": ({"codec": "jpegxl"}, sx.JPEG_XL_LOSSLESS),  # libjxl's default effort, as a user runs it
    "rle": ({"codec": "rle"}, sx.RLE_LOSSLESS),
}
LOSSY = {
    "jls_near2": ({"codec": "jpegls", "near": 2}, sx.JPEG_LS_NEAR),
    "j2k_psnr60": ({"codec": "jpeg2000", "lossless": False, "psnr": 60}, sx.JPEG_2000),
}
OTHERS = {"x264_420_8": {"codec": "x264", "bits": 8, "chroma": "420", "preset": "ultrafast"},
          "x265_gray12": {"codec": "x265", "bits": 12, "chroma": "gray", "preset": "ultrafast", "lossless": True},
          "x264_420_10": {"codec": "x264", "bits": 10, "chroma": "420", "preset": "ultrafast"},
          "x265_420_10": {"codec": "x265", "bits": 10, "chroma": "420", "preset": "ultrafast"},
          "png": {"codec": "png", "level": 1}}
CHEST = "ct_chest/acrin_flt_breast_001/series_2_805941"  # the signed chest CT (dev data)


def spec(label, entry):
    return parse_codec({**entry, "label": label}, "test")


def files_of(folder) -> list[Path]:
    return sorted(Path(folder).iterdir())


def pixel_data_bytes(path: Path) -> int:
    """Bytes from the first (7FE0,xxxx) element to the end of the file: the pixel data as stored."""
    data = path.read_bytes()
    starts = [data.rfind(tag) for tag in (b"\xe0\x7f\x01\x00OV", b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff")]
    return len(data) - min(s for s in starts if s >= 0)


def write_all(volume, ctx, root: Path, entries: dict, **options) -> tuple[dict, DicomSink]:
    sink = DicomSink(root, ctx, **options)
    return {label: row_of(volume, spec(label, entry), ctx, sink=sink) for label, entry in entries.items()}, sink


@pytest.fixture(scope="module")
def written(tmp_path_factory, sample_volume, ctx):
    """Every configuration once on the shipped signed head CT (int16, Bits Stored 16), with offset copies and the
    Deflated Image Frame series; {"rows": {label: row}, "deflated": record, "root": Path}."""
    root = tmp_path_factory.mktemp("dicom_out")
    entries = {k: v[0] for k, v in LOSSLESS.items()} | {k: v[0] for k, v in LOSSY.items()} | OTHERS
    rows, sink = write_all(sample_volume, ctx, root, entries, offset_copy=True, deflated=True)
    plain, _ = write_all(sample_volume, ctx, root, {"htj2k_plain": {"codec": "htj2k"}}, htj2k="plain")
    extras = sink.finish([sample_volume])
    deflated = next(e for e in extras if e["transfer_syntax"] == sx.DEFLATED_IMAGE_FRAME)
    return {"rows": rows | plain, "deflated": deflated, "root": root, "extras": extras}


def series(written) -> dict[str, tuple[Path, str]]:
    """label -> (folder, transfer syntax) for every lossless same-instance series, the deflated one included."""
    out = {label: (Path(written["rows"][label]["dicom_dir"]), uid) for label, (_, uid) in LOSSLESS.items()}
    out["htj2k_plain"] = (Path(written["rows"]["htj2k_plain"]["dicom_dir"]), sx.HTJ2K_LOSSLESS)
    out["deflated"] = (Path(written["deflated"]["folder"]), sx.DEFLATED_IMAGE_FRAME)
    return out


@pytest.mark.slow
def test_lossless_output_is_the_same_instance(written):
    """Issue 12: the stored values, every Image Pixel attribute and every UID unchanged; only the transfer syntax
    and the encapsulation differ. dicom_bytes is the pixel data as stored, dicom_cr = raw / dicom_bytes."""
    deflated = written["deflated"]
    for label, (folder, uid) in series(written).items():
        row = written["rows"].get(label) or {"status": "ok", "dicom_ts": deflated["transfer_syntax"],
                                             "dicom_bytes": deflated["dicom_bytes"], "dicom_cr": deflated["dicom_cr"],
                                             "raw_bytes": 28 * 512 * 512 * 2}
        assert row["status"] == "ok" and row["dicom_ts"] == uid, (label, row.get("reason"))
        files = files_of(folder)
        assert [f.name for f in files] == sorted(p.name for p in SAMPLE.glob("*.dcm")), label
        assert not list(folder.parent.glob("*.part")), "temporary folder left behind"
        for f in files:
            interop.assert_same_instance(SAMPLE / f.name, f)
            ds = pydicom.dcmread(f)
            assert ds.file_meta.TransferSyntaxUID == uid and ds["PixelData"].is_undefined_length
            got = decode_frames(ds, uid, [interop.nth_frame(f)])[0]
            assert np.array_equal(got, pydicom.dcmread(SAMPLE / f.name).pixel_array), (label, f.name)
        assert row["dicom_bytes"] == sum(pixel_data_bytes(f) for f in files), label
        assert row["dicom_cr"] == pytest.approx(row["raw_bytes"] / row["dicom_bytes"])


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted([*LOSSLESS, "htj2k_plain", "deflated"]))
def test_independent_decoders_give_the_stored_values(written, label):
    """Every file of every lossless series, by every independent decoder of its syntax that runs here."""
    folder, uid = series(written)[label]
    for f in files_of(folder):
        source = pydicom.dcmread(SAMPLE / f.name)
        for decoder in interop.DECODERS[uid]:
            assert np.array_equal(interop.decoded(decoder, f, source), source.pixel_array), (decoder, f.name)


@pytest.mark.slow
@pytest.mark.parametrize("label", ["jpegls", "ljpeg", "j2k", "rle", "jls_near2", "j2k_psnr60", "x264_420_8",
                                   "x265_420_10", "htj2k", "jpegxl", "deflated", "offset copy of jpegls"])
def test_dciodvfy_adds_no_error(written, label):
    """dicom3tools (2022) reads .70 .80 .90 .5 and the lossy/video syntaxes; it predates .202, .110 and .8.1 (skip
    with that reason)."""
    if label == "deflated":
        folder = Path(written["deflated"]["folder"])
    elif label.startswith("offset copy of "):
        folder = Path(written["rows"]["jpegls"]["dicom_dir"]).parent / OFFSET_DIR / "jpegls"
    else:
        folder = Path(written["rows"][label]["dicom_dir"])
    out = files_of(folder)[0]
    source = SAMPLE / out.name if (SAMPLE / out.name).exists() else SAMPLE / "01.dcm"  # video.dcm: any slice
    added = interop.dciodvfy_errors(out) - interop.dciodvfy_errors(source)
    assert not added, sorted(added)


@pytest.mark.slow
def test_rpcl_and_plain_htj2k(written):
    """.202: RPCL, TLM, base resolution <= 64 in every frame (PS3.5 10.18); .201 as the option asks."""
    for label, uid in (("htj2k", sx.HTJ2K_LOSSLESS_RPCL), ("htj2k_plain", sx.HTJ2K_LOSSLESS)):
        for f in files_of(written["rows"][label]["dicom_dir"]):
            info = codestream_info(uid, interop.nth_frame(f))
            assert info["ht"] and info["signed"] and info["precision"] == 16
            if uid == sx.HTJ2K_LOSSLESS_RPCL:
                assert info["progression"] == "RPCL" and info["tlm"] and 512 <= 64 << info["levels"]


@pytest.mark.slow
def test_offset_copy_is_a_derived_series_with_its_own_cr(written):
    """The option's offset-coded series: new SOP and Series UIDs, DERIVED, Pixel Representation 0, the HU
    unchanged; its CR is in the row beside dicom_cr (JPEG XL gains from the offset on this CT)."""
    rows = written["rows"]
    series_uids = set()
    for label in LOSSLESS:
        folder = Path(rows[label]["dicom_dir"]).parent / OFFSET_DIR / label
        assert "offset copy (derived series, stored values +1500)" in rows[label]["reason"], rows[label]["reason"]
        for f in files_of(folder)[:3]:
            src, ds = pydicom.dcmread(SAMPLE / f.name), pydicom.dcmread(f)
            assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
            assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.ImageType[0] == "DERIVED"
            assert "offset by +1500" in ds.DerivationDescription
            assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
            assert ds.PixelRepresentation == 0 and ds.BitsStored == 12 and float(ds.RescaleIntercept) == -1500
            stored = decode_frames(ds, LOSSLESS[label][1], [interop.nth_frame(f)])[0]
            hu = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            assert np.array_equal(hu, src.pixel_array * float(src.RescaleSlope) + float(src.RescaleIntercept))
            series_uids.add(ds.SeriesInstanceUID)
    assert len(series_uids) == len(LOSSLESS)
    copies = {e["label"]: e for e in written["extras"] if e["kind"] == "offset copy"}
    assert set(copies) == set(LOSSLESS) and all(Path(e["folder"]).is_dir() for e in copies.values())
    jxl = rows["jpegxl"]
    offset_cr = float(jxl["reason"].split("CR ")[1].split(",")[0])
    assert offset_cr > jxl["dicom_cr"] * 1.05, (offset_cr, jxl["dicom_cr"])


@pytest.mark.slow
def test_jpeg_xl_is_the_smallest_lossless_standard_output(written, capsys):
    sizes = {label: written["rows"][label]["dicom_bytes"] for label in [*LOSSLESS, "htj2k_plain"]}
    sizes["deflated"] = written["deflated"]["dicom_bytes"]
    with capsys.disabled():
        raw = written["rows"]["jpegls"]["raw_bytes"]
        print("\nsample head CT, dicom_bytes / dicom_cr / benchmark cr:")
        for label, size in sorted(sizes.items(), key=lambda kv: kv[1]):
            cr = written["rows"].get(label, {}).get("cr")
            print(f"  {label:12s} {size:>10,} {raw / size:6.3f} {cr or float('nan'):6.3f}")
    assert min(sizes, key=sizes.get) == "jpegxl", sizes


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(LOSSY))
def test_lossy_output_is_derived(written, label):
    row = written["rows"][label]
    assert row["status"] == "ok" and row["dicom_ts"] == LOSSY[label][1], row["reason"]
    files = files_of(row["dicom_dir"])
    assert len(files) == 28 and row["dicom_bytes"] == sum(pixel_data_bytes(f) for f in files)
    series_uids = set()
    for f in files[:3]:
        src, ds = pydicom.dcmread(SAMPLE / f.name), pydicom.dcmread(f)
        assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.LossyImageCompression == "01" and float(ds.LossyImageCompressionRatio) > 1
        assert ds.LossyImageCompressionMethod in ("ISO_14495_1", "ISO_15444_1") and ds.ImageType[0] == "DERIVED"
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        series_uids.add(ds.SeriesInstanceUID)
        err = np.abs(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) - src.pixel_array).max()
        assert err <= 2 if label == "jls_near2" else 0 < err < 200
    assert len(series_uids) == 1 and series_uids != {pydicom.dcmread(SAMPLE / "01.dcm").SeriesInstanceUID}


@pytest.mark.slow
def test_rows_without_a_dicom_form_say_why(written):
    rows = written["rows"]
    assert rows["x264_420_8"]["dicom_ts"] == "1.2.840.10008.1.2.4.102"
    assert rows["x265_gray12"]["dicom_ts"] is None and "no DICOM transfer syntax" in rows["x265_gray12"]["reason"]
    assert "4:2:0" in rows["x265_gray12"]["reason"] and "'gray'" in rows["x265_gray12"]["reason"]
    assert "8-bit" in rows["x264_420_10"]["reason"] and rows["x264_420_10"]["dicom_ts"] is None
    assert "no DICOM transfer syntax" in rows["png"]["reason"] and rows["png"]["dicom_bytes"] is None


@pytest.mark.slow
@pytest.mark.parametrize("label,uid,fmt,method,bits,profile", [
    ("x264_420_8", "1.2.840.10008.1.2.4.102", "h264", "ISO_14496_10", 8, "H.264"),
    ("x265_420_10", "1.2.840.10008.1.2.4.108", "hevc", "ISO_23008_2", 10, "HEVC Main 10 profile")])
def test_video_object_holds_a_decodable_stream(written, tmp_path, ctx, label, uid, fmt, method, bits, profile):
    row = written["rows"][label]
    ds = pydicom.dcmread(Path(row["dicom_dir"]) / "video.dcm")
    assert ds.file_meta.TransferSyntaxUID == uid and row["dicom_ts"] == uid and row["dicom_cr"] > 1
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420" and ds.NumberOfFrames == 28
    assert ds.BitsStored == bits and ds.SamplesPerPixel == 3 and "SourceImageSequence" not in ds
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == method
    assert profile in ds.DerivationDescription
    from pydicom.encaps import generate_fragments

    stream = b"".join(generate_fragments(ds.PixelData))
    assert stream[:3] == b"\x00\x00\x01" or stream[:4] == b"\x00\x00\x00\x01"  # Annex B elementary stream
    (tmp_path / f"s.{fmt}").write_bytes(stream)
    raw = ctx.ffmpeg.run(["-f", fmt, "-i", str(tmp_path / f"s.{fmt}"), "-f", "rawvideo", "-pix_fmt", "gray",
                          "pipe:1"])
    assert len(raw) == 28 * 512 * 512


@pytest.mark.slow
def test_signed_13_bit_series_keeps_pixel_representation_and_bits_stored(tmp_path, ctx):
    """The issue's case the other way round: a signed source with Bits Stored 13 stays PR 1 / BS 13."""
    from medpipe.volumes import load_dicom_files

    paths = [interop.derived_source(p, "s13", tmp_path / p.name) for p in sorted(SAMPLE.glob("*.dcm"))[9:12]]
    vol = load_dicom_files(paths, "s13", tmp_path)
    rows, _ = write_all(vol, ctx, tmp_path / "out", {"jpegls": {"codec": "jpegls"},
                                                     "jpegxl": {"codec": "jpegxl", "effort": 3}})
    for label, uid in (("jpegls", sx.JPEG_LS_LOSSLESS), ("jpegxl", sx.JPEG_XL_LOSSLESS)):
        assert rows[label]["status"] == "ok" and rows[label]["dicom_ts"] == uid, rows[label]["reason"]
        for f in files_of(rows[label]["dicom_dir"]):
            source = pydicom.dcmread(tmp_path / f.name)
            interop.assert_same_instance(tmp_path / f.name, f)
            decoder = "dcmtk" if uid == sx.JPEG_LS_LOSSLESS else "djxl"
            assert np.array_equal(interop.decoded(decoder, f, source), source.pixel_array)
            assert source.BitsStored == 13 and source.PixelRepresentation == 1 and source.pixel_array.min() < 0


@pytest.mark.slow
def test_unsigned_12_bit_series_reuses_the_benchmark_streams(tmp_path, ctx):
    """cq500_ct5 (uint16, 12 of 16 bits): identity mapping, so RLE frames are the benchmark's own streams (no second
    encode), and the stored values and attributes stay."""
    from medpipe.volumes import load_dicom_files

    folder = shared("ct_head/cq500_ct5")
    files = sorted(folder.glob("*.dcm"))[:6]
    vol = load_dicom_files(files, "cq500_ct5_part", folder)
    sink = DicomSink(tmp_path, ctx)
    row = row_of(vol, spec("rle", {"codec": "rle"}), ctx, sink=sink)
    assert row["status"] == "ok" and row["dicom_ts"] == sx.RLE_LOSSLESS, row["reason"]
    assert sink.last_reused == 6 and row["dicom_cr"] == pytest.approx(row["cr"], rel=0.01)
    for f in files:
        interop.assert_same_instance(f, Path(row["dicom_dir"]) / f.name)
        assert np.array_equal(interop.dcmtk_decode(Path(row["dicom_dir"]) / f.name), pydicom.dcmread(f).pixel_array)


@pytest.mark.slow
def test_multiframe_with_extended_offset_table(tmp_path, ctx):
    """A multi-frame object: one fragment per frame, the Extended Offset Table when asked (Basic one empty)."""
    from medpipe.volumes import load_dicom_files

    src = pydicom.dcmread(SAMPLE / "01.dcm")
    frames = np.stack([pydicom.dcmread(SAMPLE / f"{i:02d}.dcm").pixel_array for i in (1, 2, 3)])
    src.NumberOfFrames, src.PixelData = 3, frames.tobytes()
    path = tmp_path / "mf.dcm"
    src.save_as(path)
    vol = load_dicom_files([path], "mf", path)
    row = row_of(vol, spec("rle", {"codec": "rle"}), ctx, sink=DicomSink(tmp_path / "out", ctx,
                                                                            offset_table="extended"))
    assert row["status"] == "ok", row["reason"]
    out = Path(row["dicom_dir"]) / "mf.dcm"
    ds = pydicom.dcmread(out)
    assert ds.NumberOfFrames == 3 and len(ds.ExtendedOffsetTable) == 3 * 8
    assert np.array_equal(ds.pixel_array, frames) and row["dicom_bytes"] == pixel_data_bytes(out)
    assert np.array_equal(interop.dcmtk_decode(out), frames)


@pytest.mark.slow
def test_signed_chest_ct_every_lossless_syntax(tmp_path_factory, ctx, capsys):
    """The dev signed chest CT (int16, PR 1, BS 16, intercept -1024): every lossless syntax keeps the instance and
    decodes to the stored values in the independent decoder of its syntax (every file), the others on every 10th
    file; JPEG XL is the smallest lossless output."""
    from medpipe.volumes import load_volume

    folder = shared(CHEST)
    vol = load_volume(folder)
    root = tmp_path_factory.mktemp("chest")
    entries = {k: v[0] for k, v in LOSSLESS.items()}
    rows, sink = write_all(vol, ctx, root, entries, deflated=True)
    (deflated,) = sink.finish([vol])
    done = {label: (Path(rows[label]["dicom_dir"]), uid) for label, (_, uid) in LOSSLESS.items()}
    done["deflated"] = (Path(deflated["folder"]), sx.DEFLATED_IMAGE_FRAME)
    sources = {p.name: p for p in folder.glob("*.dcm")}
    for label, (out, uid) in done.items():
        for i, f in enumerate(files_of(out)):
            interop.assert_same_instance(sources[f.name], f)
            source = pydicom.dcmread(sources[f.name])
            for decoder in interop.DECODERS[uid][:1] if i % 10 else interop.DECODERS[uid]:
                assert np.array_equal(interop.decoded(decoder, f, source), source.pixel_array), (label, f.name)
    sizes = {label: rows[label]["dicom_bytes"] for label in LOSSLESS} | {"deflated": deflated["dicom_bytes"]}
    with capsys.disabled():
        print("\nchest CT, dicom_bytes / dicom_cr / benchmark cr:")
        for label, size in sorted(sizes.items(), key=lambda kv: kv[1]):
            print(f"  {label:12s} {size:>11,} {vol.raw_bytes / size:6.3f} {rows.get(label, {}).get('cr') or 0:6.3f}")
    assert min(sizes, key=sizes.get) == "jpegxl", sizes


@pytest.mark.slow
@pytest.mark.parametrize("how", ["--ffmpeg", "MEDPIPE_FFMPEG"])
def test_dicom_video_uses_the_one_ffmpeg_runner(tmp_path, how):
    """The video object's ffmpeg call honours --ffmpeg and MEDPIPE_FFMPEG and is in provenance."""
    import imageio_ffmpeg

    exe = tmp_path / ("ffmpeg-for-test.exe" if os.name == "nt" else "ffmpeg-for-test")
    try:
        exe.symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    except OSError:
        pytest.skip("cannot make a symbolic link here")
    series = tmp_path / "series"
    series.mkdir()
    for f in sorted(SAMPLE.glob("*.dcm"))[10:14]:
        (series / f.name).write_bytes(f.read_bytes())
    preset = tmp_path / "v.yaml"
    preset.write_text(f"input: {series.as_posix()}\ndicom_out: true\n"
                      "codecs: [{codec: x264, bits: 8, chroma: '420', preset: ultrafast}]\n")
    args, env = [sys.executable, str(ROOT / "run.py"), str(preset), "--out", str(tmp_path / "o")], dict(os.environ)
    if how == "--ffmpeg":
        args += ["--ffmpeg", str(exe)]
    else:
        env["MEDPIPE_FFMPEG"] = str(exe)
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (folder,) = (tmp_path / "o").iterdir()
    doc = json.loads((folder / "results.json").read_text())
    ff = doc["provenance"]["ffmpeg"]
    assert ff["binary"] == str(exe)
    assert any("h264_mp4toannexb" in c and str(exe) in c for c in ff["commands"]), ff["commands"]
    assert doc["rows"][0]["dicom_ts"] == "1.2.840.10008.1.2.4.102" and doc["rows"][0]["dicom_cr"] > 1


# -- fast: rules, options, sizes --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crop():
    return pydicom.dcmread(SAMPLE / "10.dcm").pixel_array[200:264, 180:276]  # real signed CT, 64 x 96


def attrs(signed=True, stored=16, rows=64, columns=96):
    return sx.PixelAttrs(rows, columns, 1, "MONOCHROME2", signed, 16, stored, stored - 1)


def test_frame_rules_find_what_a_codestream_and_header_disagree_on(crop):
    u12 = (crop.astype(np.int32) + 1500).clip(0, 4095).astype(np.uint16)
    assert frame_problems(sx.JPEG_LS_LOSSLESS, encode_frame(sx.JPEG_LS_LOSSLESS, crop, 16, True), attrs()) == []
    import imagecodecs

    p16 = imagecodecs.jpegls_encode(u12)  # CharLS codes uint16 at 16 bits: not Bits Stored 12 for unsigned data
    assert any("precision 16" in p for p in frame_problems(sx.JPEG_LS_LOSSLESS, strip_jpeg_wrappers(p16),
                                                           attrs(False, 12)))
    plain = encode_frame(sx.HTJ2K_LOSSLESS, crop, 16, True)
    assert any("TLM" in p for p in frame_problems(sx.HTJ2K_LOSSLESS_RPCL, plain, attrs()))
    unsigned = encode_frame(sx.JPEG_2000_LOSSLESS, u12, 12, False)
    assert any("SIZ" in p for p in frame_problems(sx.JPEG_2000_LOSSLESS, unsigned, attrs(True, 12)))
    assert any("64 x 96" in p for p in frame_problems(sx.JPEG_2000_LOSSLESS, unsigned, attrs(False, 12, 96, 64)))
    rle = encode_frame(sx.RLE_LOSSLESS, crop, 16, True)
    assert frame_problems(sx.RLE_LOSSLESS, rle, attrs()) == []
    assert any("segment" in p for p in frame_problems(sx.RLE_LOSSLESS, rle, sx.PixelAttrs(64, 96, 1, "MONOCHROME2",
                                                                                          False, 8, 8, 7)))
    deflated = encode_frame(sx.DEFLATED_IMAGE_FRAME, crop, 16, True)
    assert any("inflates" in p for p in frame_problems(sx.DEFLATED_IMAGE_FRAME, deflated, attrs(rows=32)))
    assert frame_problems(sx.JPEG_LS_LOSSLESS, b"not a codestream", attrs())[0].startswith("codestream unreadable")


def test_encapsulation_rules():
    from pydicom.encaps import encapsulate, encapsulate_extended

    frames = [b"\x01\x02", b"\x03\x04\x05\x06"]
    assert encapsulation_problems(encapsulate(frames, has_bot=True), 2) == ([], frames)
    wrong_offsets = b"\xfe\xff\x00\xe0" + struct.pack("<3I", 8, 0, 4) + encapsulate(frames, has_bot=False)[8:]
    assert "Basic Offset Table offsets" in encapsulation_problems(wrong_offsets, 2)[0][0]
    assert "fragments for 3 frame(s)" in encapsulation_problems(encapsulate(frames), 3)[0][0]
    value, table, lengths = encapsulate_extended(frames)
    assert encapsulation_problems(value, 2, table, lengths)[0] == []
    bad = encapsulation_problems(encapsulate(frames, has_bot=True), 2, table, lengths)[0]
    assert any("Basic Offset Table not empty" in p for p in bad)
    odd = b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\x00\xe0\x03\x00\x00\x00abc"
    assert "odd length" in encapsulation_problems(odd, 1)[0][0]


def test_dicom_bytes_is_the_pixel_data_as_stored(tmp_path, crop):
    from medpipe.dicom.part10 import save

    ds = pydicom.dcmread(SAMPLE / "10.dcm", stop_before_pixels=True)
    ds.Rows, ds.Columns = crop.shape
    import pynetdicom  # registers the JPEG XL UIDs in pydicom for good: pydicom knows them, cannot decode them

    assert pynetdicom.__version__ and pydicom.uid.UID(sx.JPEG_XL_LOSSLESS).is_transfer_syntax
    frame = encode_frame(sx.JPEG_XL_LOSSLESS, crop, 16, True, effort=1)
    size = save(ds, sx.JPEG_XL_LOSSLESS, [frame], tmp_path / "a.dcm")
    assert size == pixel_data_bytes(tmp_path / "a.dcm") == 12 + 8 + 4 + 8 + len(frame) + len(frame) % 2 + 8
    back = pydicom.dcmread(tmp_path / "a.dcm")
    assert np.array_equal(decode_frames(back, sx.JPEG_XL_LOSSLESS, [interop.nth_frame(tmp_path / "a.dcm")])[0], crop)


def test_columns_and_options():
    assert {"dicom_ts", "dicom_dir", "dicom_bytes", "dicom_cr"} <= set(COLUMNS)
    assert on_off(True, DICOM_OPTIONS, "dicom_out") == {
        "folder": "dicom", "offset_table": "basic", "verify": True, "htj2k": "rpcl", "offset_copy": False,
        "deflated": False, "send": None, "send_lossy": False}
    assert on_off(False, DICOM_OPTIONS, "dicom_out") is None
    with pytest.raises(PresetError, match="offset_table"):
        on_off({"offset_tabel": "basic"}, DICOM_OPTIONS, "dicom_out")
    with pytest.raises(PresetError, match="rpcl"):
        on_off({"htj2k": "lrcp"}, DICOM_OPTIONS, "dicom_out")
    assert OFFSET_DIR.startswith("_") and DEFLATED_DIR.startswith("_")  # never a (safe) label's folder


def test_send_node_comes_from_the_flag_or_the_preset():
    assert send_node(None, None) is None and send_node(None, {"send": None}) is None
    assert str(send_node("PACS@10.0.0.1:104", {"send": "OTHER@h:1"})) == "PACS@10.0.0.1:104"
    assert str(send_node(None, {"send": {"aet": "PACS", "host": "h", "port": 11112}})) == "PACS@h:11112"
    with pytest.raises(PresetError, match="^dicom_out.send 'PACS@h': expected AET@HOST:PORT"):
        send_node(None, {"send": "PACS@h"})
    with pytest.raises(PresetError, match="^--send"):
        send_node("nonsense", None)
    on = with_send_defaults(None, send_node("PACS@h:104", None))
    assert on == on_off(True, DICOM_OPTIONS, "dicom_out") and with_send_defaults(None, None) is None


def test_what_is_sent(tmp_path):
    """Lossless series (and their offset copies) always, lossy ones when asked, extras, each folder once."""
    from medpipe.dicom.deliver import series_to_send

    for name in ("v/jls", "v/_offset/jls", "v/near", "v/_deflated"):
        (tmp_path / name).mkdir(parents=True)
    rows = [{"status": "ok", "lossless": True, "dicom_dir": str(tmp_path / "v/jls")},
            {"status": "ok", "lossless": False, "dicom_dir": str(tmp_path / "v/near")},
            {"status": "skipped", "lossless": True, "dicom_dir": None}]
    extras = [{"folder": str(tmp_path / "v/_deflated")}, {"folder": str(tmp_path / "v/_offset/jls")}]
    assert series_to_send(rows, extras, lossy=False) == [tmp_path / p for p in ("v/jls", "v/_offset/jls",
                                                                               "v/_deflated")]
    assert tmp_path / "v/near" in series_to_send(rows, extras, lossy=True)


def test_a_series_that_does_not_verify_is_never_renamed_into_place(tmp_path, ctx, monkeypatch):
    """A frame decoding to other values fails the row with the reason; no series folder, no temporary left."""
    from medpipe.dicom import writer
    from medpipe.volumes import load_dicom_files

    vol = load_dicom_files(sorted(SAMPLE.glob("*.dcm"))[10:12], "two", SAMPLE)
    real = writer.encode_frame
    monkeypatch.setattr(writer, "encode_frame", lambda uid, values, *a, **k: real(uid, values + 1, *a, **k))
    row = row_of(vol, spec("jls", {"codec": "jpegls"}), ctx, sink=DicomSink(tmp_path, ctx))
    assert row["status"] == "failed" and row["dicom_dir"] is None and row["dicom_bytes"] is None
    assert "decodes to other values than it must hold (max difference 1)" in row["reason"], row["reason"]
    assert not any(tmp_path.rglob("*.dcm")) and not list(tmp_path.rglob("*.part"))


def test_a_source_read_as_implicit_vr_is_written(tmp_path, ctx):
    """pydicom's SC_rgb_jpeg.dcm says Explicit VR in its meta but holds an implicit-VR data set. pydicom writes a
    still-raw element of such a file with no VR (a TypeError naming a tag, with a whole traceback in its message);
    the writer decodes every element first, and any failure is one line."""
    from pydicom.data import get_testdata_file

    from medpipe.errors import described
    from medpipe.volumes import load_volume

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "sc.dcm").write_bytes(Path(get_testdata_file("SC_rgb_jpeg.dcm")).read_bytes())
    volume = load_volume(tmp_path / "in")
    row = row_of(volume, {"codec": "jpegls", "label": "jls"}, ctx, sink=DicomSink(tmp_path / "dcm", ctx))
    assert row["status"] == "ok" and row["dicom_ts"] == sx.JPEG_LS_LOSSLESS, row["reason"]
    out = pydicom.dcmread(next((tmp_path / "dcm").rglob("*.dcm")))
    assert out.ContentDate == "20200217" and out.SamplesPerPixel == 1
    try:
        pydicom.dcmread(get_testdata_file("SC_rgb_jpeg.dcm")).save_as(tmp_path / "x.dcm", enforce_file_format=True)
    except TypeError as exc:  # the library behaviour the writer works around, and the message it would give
        assert "\n" in str(exc) and "\n" not in described(exc)
