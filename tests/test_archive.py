"""Intertwined archives on real data: build / list / extract / verify round trips, damage detection, wide values.

Inputs are small real copies (8 slices of each series, every second row and column -> 256 x 256, uncompressed
DICOM with all original headers) so the suite stays fast; the full comparison is bench/archive_gain.py.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medpipe.archive import ArchiveError, Settings, build_archive, extract_archive, read_manifest, verify_archive
from medpipe.archive.compare import gain_equal_psnr, measure
from medpipe.archive.plan import group_volumes, parse_settings, stream_order
from medpipe.cli import main as cli_main
from medpipe.cli.archive import parse_codec_arg
from medpipe.errors import FfmpegError, PresetError
from medpipe.volumes import load_volume, read_dicom
from medpipe.volumes.series import sort_slices

from conftest import shared

FAST_LOSSLESS = {"codec": "x265", "lossless": True, "preset": "ultrafast"}


def small_copy(src: Path, dst: Path, start: int | None = None, n: int = 8) -> Path:
    """n consecutive slices (middle ones unless ``start``) of a real series, decimated 2x, written uncompressed."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    files = sorted(p for p in src.iterdir() if p.is_file())
    headers = [read_dicom(p, pixels=False) for p in files]
    order = sort_slices(headers, files)
    start = len(files) // 2 - n // 2 if start is None else start
    dst.mkdir(parents=True)
    for i in order[start:start + n]:
        ds = pydicom.dcmread(files[i])
        px = np.ascontiguousarray(ds.pixel_array[::2, ::2])
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.Rows, ds.Columns = px.shape
        ds.PixelSpacing = [float(x) * 2 for x in ds.PixelSpacing]
        ds.PixelData = px.tobytes()
        ds["PixelData"].VR = "OW"
        ds.save_as(dst / files[i].name, enforce_file_format=True)
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("archive-in")
    phantom = [small_copy(shared(f"ct_head/philips_phantom_stereotaxis_{x}"), base / f"phantom_{x}") for x in "ab"]
    # slices 12-19 of the chest pair hold the -2000 padding and values up to 4095: 13 bits, 2351 distinct values
    chest = [small_copy(shared(f"ct_chest/acrin_flt_breast_001/{x}"), base / x, start=12)
             for x in ("series_2_805941", "series_2_729346")]
    return {"phantom": phantom, "chest": chest}


@pytest.fixture(scope="module")
def vols(data):
    return {k: [load_volume(p) for p in paths] for k, paths in data.items()}


def same_series(restored_dir: Path, original):
    """Restored DICOM series equals the original: pixels, SOP Instance UIDs, patient and series identity."""
    import pydicom

    back = load_volume(restored_dir)
    assert back.pixels.dtype == original.pixels.dtype
    np.testing.assert_array_equal(back.pixels, original.pixels)
    assert [h.SOPInstanceUID for h in back.headers] == [h.SOPInstanceUID for h in original.headers]
    for h, o in zip(back.headers, original.headers):
        assert (h.PatientID, h.SeriesInstanceUID, h.StudyInstanceUID) == (o.PatientID, o.SeriesInstanceUID,
                                                                          o.StudyInstanceUID)
        assert (h.BitsStored, h.PixelRepresentation) == (o.BitsStored, o.PixelRepresentation)
    ds = pydicom.dcmread(next(restored_dir.iterdir()))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


# ---------------------------------------------------------------- settings, grouping, ordering

def test_settings_unknown_key_suggests():
    with pytest.raises(PresetError, match="did you mean 'order'"):
        parse_settings({"ordr": "interleave"})
    with pytest.raises(PresetError, match="did you mean 'interleave'"):
        parse_settings({"order": "interleaved"})
    with pytest.raises(PresetError, match="group_by: unknown key 'bodypart'.*body_part"):
        parse_settings({"group_by": ["modality", "bodypart"]})
    s = parse_settings({"order": "similarity", "epsilon": 0.3, "codec": "ffv1"})
    assert (s.order, s.epsilon, s.codec) == ("similarity", 0.3, {"codec": "ffv1"})


def test_codec_argument():
    assert parse_codec_arg("x265:lossless=true,preset=slow,crf=22") == {
        "codec": "x265", "lossless": True, "preset": "slow", "crf": 22}
    assert parse_codec_arg("{codec: ffv1, bits: 16}") == {"codec": "ffv1", "bits": 16}
    with pytest.raises(PresetError, match="key=value"):
        parse_codec_arg("x265:lossless")


def test_orders_are_permutations_and_interleave_matches_positions():
    inter = stream_order([2, 4], "interleave")
    assert inter == [(1, 0), (0, 0), (1, 1), (1, 2), (0, 1), (1, 3)]
    assert stream_order([2, 3], "sequential") == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    rng = np.random.default_rng(0)
    thumbs = [rng.random((3, 4, 4)), rng.random((2, 4, 4))]
    tour = stream_order([3, 2], "similarity", thumbs)
    assert sorted(tour) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)] and tour[0] == (0, 0)


@pytest.mark.slow
def test_grouping_by_metadata_then_similarity(vols):
    four = vols["phantom"] + vols["chest"]
    groups = group_volumes(four, Settings(epsilon=2.0))
    assert [g.members for g in groups] == [[0, 1], [2, 3]]  # body part BRAIN vs BREAST keeps them apart
    strict = group_volumes(vols["phantom"], Settings(epsilon=1e-4))
    assert [g.members for g in strict] == [[0], [1]]
    assert "archived alone" in strict[1].why and "eq. 4.1" in strict[1].why


# ---------------------------------------------------------------- round trips

def test_lossless_round_trip_list_verify_extract(vols, tmp_path, capsys):
    arc = tmp_path / "arc"
    m = build_archive(vols["phantom"], arc, Settings(codec=FAST_LOSSLESS, order="interleave", epsilon=2.0), _ctx())
    assert sorted(p.name for p in arc.iterdir()) == ["g01.mkv", "headers", "manifest.json", "order.txt",
                                                     "patients.txt"]
    g = m["groups"][0]
    assert g["lossless"] and g["order_kind"] == "interleave" and len(g["scans"]) == 2
    assert not list(tmp_path.glob(".*part*"))
    order = [ln.split("\t") for ln in (arc / "order.txt").read_text().splitlines() if not ln.startswith("#")]
    assert len(order) == 16 and order[0][:4] == ["g01", "0", "s01", "0"] and order[1][2] == "s02"
    assert "PLASTIC" in (arc / "patients.txt").read_text()
    assert cli_main(["archive", "list", str(arc)]) == 0
    listing = capsys.readouterr().out
    for word in ("phantom_a", "phantom_b", "g01", "x265", "interleave", "PLASTIC"):
        assert word in listing, word
    assert cli_main(["archive", "verify", str(arc)]) == 0
    out = tmp_path / "restored"
    paths = extract_archive(arc, out, _ctx())
    for p, v in zip(paths, vols["phantom"]):
        same_series(p, v)
    # one patient only
    one = extract_archive(arc, tmp_path / "one", _ctx(), patient="s02")
    assert [p.name for p in one] == ["s02_phantom_b"]
    with pytest.raises(ArchiveError, match="no scan of patient 'nobody'"):
        extract_archive(arc, tmp_path / "none", _ctx(), patient="nobody")


def test_wide_values_use_a_value_table(vols, tmp_path):
    """-2000..4095 spans 13 bits: x265 lossless 12-bit codes it through a reversible value table."""
    lo = min(v.value_range[0] for v in vols["chest"])
    hi = max(v.value_range[1] for v in vols["chest"])
    assert hi - lo >= 4096  # really does not fit 12 bits
    arc = tmp_path / "arc"
    m = build_archive(vols["chest"], arc, Settings(codec={"codec": "auto", "preset": "ultrafast"},
                                                   order="similarity", epsilon=5.0), _ctx())
    g = m["groups"][0]
    assert g["codec"]["codec"] == "x265" and g["mapping"]["kind"] == "table" and g["lossless"]
    assert len(g["mapping"]["table"]) <= 4096
    paths = extract_archive(arc, tmp_path / "out", _ctx(), patient="ACRIN-FLT-Breast_001")
    for p, v in zip(paths, vols["chest"]):
        same_series(p, v)


def test_wide_values_without_table_fall_back_to_ffv1(vols, tmp_path, capsys):
    rc = cli_main(["archive", "build", *map(str, [v.source for v in vols["chest"]]), "--out", str(tmp_path / "arc"),
                       "--codec", "x265:lossless=true,preset=ultrafast", "--no-value-table", "--epsilon", "5"])
    assert rc == 0
    g = read_manifest(tmp_path / "arc")["groups"][0]
    assert g["codec"]["codec"] == "ffv1" and g["lossless"] and "x265" in g["codec_note"]
    assert verify_archive(tmp_path / "arc", _ctx())["lossless"]


def test_lossy_archive_reports_quality_and_marks_files(vols, tmp_path):
    import pydicom

    arc = tmp_path / "arc"
    m = build_archive(vols["phantom"], arc, Settings(codec={"codec": "x265", "crf": 20, "preset": "ultrafast"},
                                                     epsilon=2.0), _ctx())
    assert not m["lossless"]
    q = m["scans"][0]["quality"]
    assert not q["exact"] and 30 < q["psnr_db"] < 90 and 0.5 < q["ssim"] <= 1
    verify_archive(arc, _ctx())
    paths = extract_archive(arc, tmp_path / "out", _ctx())
    orig = vols["phantom"][0]
    back = load_volume(paths[0])
    assert int(np.abs(back.pixels.astype(int) - orig.pixels.astype(int)).max()) == q["max_abs_err"]
    ds = pydicom.dcmread(next(paths[0].iterdir()))
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_23008_2"
    assert ds.SOPInstanceUID not in {h.SOPInstanceUID for h in orig.headers}
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID in {h.SOPInstanceUID for h in orig.headers}


def test_per_slice_codec_archive(vols, tmp_path):
    arc = tmp_path / "arc"
    m = build_archive(vols["phantom"], arc, Settings(codec={"codec": "jpegxl", "effort": 1}, epsilon=2.0), _ctx())
    assert m["groups"][0]["stream"] == "g01.jpegxl.bin" and m["lossless"]
    for p, v in zip(extract_archive(arc, tmp_path / "out", _ctx()), vols["phantom"]):
        same_series(p, v)


# ---------------------------------------------------------------- damage and atomicity

@pytest.fixture(scope="module")
def built(vols, tmp_path_factory):
    arc = tmp_path_factory.mktemp("built") / "arc"
    build_archive(vols["phantom"], arc, Settings(codec=FAST_LOSSLESS, epsilon=2.0), _ctx())
    return arc


def damaged_copy(built: Path, tmp_path: Path) -> Path:
    arc = tmp_path / "arc"
    shutil.copytree(built, arc)
    return arc


def test_flipped_byte_in_video_is_detected(built, tmp_path, capsys):
    arc = damaged_copy(built, tmp_path)
    video = arc / "g01.mkv"
    data = bytearray(video.read_bytes())
    data[len(data) // 2] ^= 0x01
    video.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="g01.mkv: SHA-256 mismatch"):
        verify_archive(arc, _ctx())
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError, match="damaged"):
        extract_archive(arc, out, _ctx())
    assert list(out.iterdir()) == []  # nothing partial
    with pytest.raises(ArchiveError, match="damaged"):
        extract_archive(arc, tmp_path / "new", _ctx(), patient="s01")
    assert not (tmp_path / "new").exists()
    assert cli_main(["archive", "verify", str(arc)]) == 2
    assert "SHA-256 mismatch" in capsys.readouterr().out


def test_missing_order_line_is_detected(built, tmp_path):
    arc = damaged_copy(built, tmp_path)
    lines = (arc / "order.txt").read_text().splitlines(keepends=True)
    del lines[5]
    (arc / "order.txt").write_text("".join(lines))
    with pytest.raises(ArchiveError, match="line\\(s\\) missing"):
        verify_archive(arc, _ctx())
    with pytest.raises(ArchiveError, match="order.txt"):
        extract_archive(arc, tmp_path / "out", _ctx())
    assert not (tmp_path / "out").exists()


def test_damaged_header_and_manifest_are_detected(built, tmp_path):
    arc = damaged_copy(built, tmp_path)
    hdr = next((arc / "headers" / "s01").iterdir())
    hdr.write_bytes(hdr.read_bytes()[:-10])
    with pytest.raises(ArchiveError, match="header of s01 .* is damaged"):
        verify_archive(arc, _ctx())
    (arc / "manifest.json").write_text((arc / "manifest.json").read_text()[:100])
    with pytest.raises(ArchiveError, match="manifest.json: damaged"):
        verify_archive(arc, _ctx())


def test_failed_build_leaves_nothing(vols, tmp_path):
    arc = tmp_path / "arc"
    bad = {"codec": "x265", "crf": 20, "preset": "ultrafast", "extra": ["-no_such_option", "1"]}
    with pytest.raises(FfmpegError):
        build_archive(vols["phantom"], arc, Settings(codec=bad, epsilon=2.0), _ctx())
    assert list(tmp_path.iterdir()) == []
    arc.mkdir()
    with pytest.raises(ArchiveError, match="already exists"):
        build_archive(vols["phantom"], arc, Settings(codec=FAST_LOSSLESS), _ctx())


# ---------------------------------------------------------------- preset and comparison

def test_preset_run_builds_archive_and_comparison(data, tmp_path):
    from medpipe.cli import main
    from medpipe.results import read_rows

    preset = tmp_path / "p.yaml"
    preset.write_text(json.dumps({
        "name": "arc", "inputs": [str(p) for p in data["phantom"]],
        "codecs": [FAST_LOSSLESS], "archive": {"order": "interleave", "epsilon": 2.0, "compare": True}}))
    assert main([str(preset), "--out", str(tmp_path / "res")]) == 0
    run = next((tmp_path / "res").iterdir())
    assert verify_archive(run / "archive", _ctx())["lossless"]
    rows = read_rows(run / "results.csv")
    assert [r["mode"] for r in rows] == ["separate", "intertwined"]
    assert rows[1]["gain"] == pytest.approx(rows[0]["compressed_bytes"] / rows[1]["compressed_bytes"])
    preset.write_text(json.dumps({"name": "arc", "inputs": [str(data["phantom"][0])], "codecs": ["ffv1"],
                                  "archive": {"ordr": "interleave"}}))
    assert main([str(preset), "--out", str(tmp_path / "res2")]) == 2


def test_equal_psnr_gain_interpolation():
    sep = [(40.0, 1000.0), (44.0, 2000.0), (48.0, 4000.0)]
    half = [(p, b / 2) for p, b in sep]
    g, rng = gain_equal_psnr(sep, half)
    assert g == pytest.approx(2.0) and rng == (40.0, 48.0)
    assert gain_equal_psnr(sep, [(60.0, 1.0), (70.0, 2.0)]) == (None, None)


def test_measure_separate_vs_intertwined_lossless(vols):
    sep = measure(vols["phantom"], FAST_LOSSLESS, _ctx(), "separate", with_ssim=False)
    it = measure(vols["phantom"], FAST_LOSSLESS, _ctx(), "intertwined", "sequential", with_ssim=False)
    assert sep["exact"] and it["exact"] and sep["status"] == it["status"] == "ok"
    assert sep["raw_bytes"] == it["raw_bytes"] and sep["compressed_bytes"] > 0 and it["compressed_bytes"] > 0


_CTX = None


def _ctx():
    global _CTX
    from medpipe.codecs import CodecContext

    if _CTX is None:
        _CTX = CodecContext()
    return _CTX


def test_shipped_preset_is_valid():
    from conftest import ROOT
    from medpipe.preset import load_preset

    preset = load_preset(ROOT / "presets" / "intertwined.yaml")
    s = preset.archive  # parsed (and checked) when the preset loaded
    assert s.order == "sequential" and s.compare and preset.codecs[0].codec.lossless
    assert s.codec == {"codec": "x265", "bits": 12, "lossless": True, "preset": "medium"}
    assert all(p.parts[-1] for p in preset.inputs) and len(preset.inputs) == 6
