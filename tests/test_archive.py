"""Archives on real data: candidates and the smallest kept, round trips (byte-identical files), restore to
compressed syntaxes, PACS export folders, bounded memory, presets, and the size promise on dev data.

Inputs are small real copies (8 slices of each series, every second row and column -> 256 x 256, uncompressed
DICOM with all original headers) so the suite stays fast; the full measurement is bench/archive_size.py. The seal
and damage cases are in test_archive_seal.py, the header store and restored files in test_archive_files.py.
"""
from __future__ import annotations

import gc
import json
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest

from medpipe.archive import ArchiveError, Settings, build_archive, extract_archive, open_archive, verify_archive
from medpipe.archive.candidates import CANDIDATE_NAMES, image_plan
from medpipe.archive.compare import gain_equal_psnr, measure
from medpipe.archive.plan import group_volumes, stream_order
from medpipe.archive.settings import parse_settings
from medpipe.cli import main as cli_main
from medpipe.cli.archive import parse_codec_arg
from medpipe.errors import FfmpegError, PresetError
from medpipe.volumes import load_volume, read_dicom
from medpipe.volumes.series import sort_slices

from conftest import shared

FAST = {"candidates": ["jpegxl-dicom", "jpegxl", "jpegxl-2slices"], "effort": 1}  # fast, still real choices
FAST_X265 = {"codec": "x265", "lossless": True, "preset": "ultrafast"}


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


def originals(src: Path, dst: Path, n: int = 3) -> Path:
    """n middle files of a real series copied as they are (compressed originals)."""
    files = sorted(p for p in src.iterdir() if p.is_file())
    dst.mkdir(parents=True)
    for p in files[len(files) // 2: len(files) // 2 + n]:
        shutil.copy2(p, dst / p.name)
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


def settings(**kw) -> Settings:
    return parse_settings({**FAST, "epsilon": 5.0, **kw})


_CTX = None


def _ctx():
    global _CTX
    from medpipe.codecs import CodecContext

    if _CTX is None:
        _CTX = CodecContext()
    return _CTX


def same_files(restored_dir: Path, original_dir: Path) -> None:
    """Every restored file is the original file, byte for byte (uncompressed originals)."""
    names = sorted(p.name for p in original_dir.iterdir())
    assert sorted(p.name for p in restored_dir.iterdir()) == names
    for n in names:
        assert (restored_dir / n).read_bytes() == (original_dir / n).read_bytes(), n


# ---------------------------------------------------------------- settings, plans

def test_settings_unknown_keys_and_candidates_suggest():
    with pytest.raises(PresetError, match="did you mean 'order'"):
        parse_settings({"ordr": "interleave"})
    with pytest.raises(PresetError, match="group_by: unknown key 'bodypart'.*body_part"):
        parse_settings({"group_by": ["modality", "bodypart"]})
    with pytest.raises(PresetError, match="unknown candidate 'jpegxl-3slice'.*jpegxl-3slices"):
        parse_settings({"candidates": ["jpegxl-3slice"]})
    s = parse_settings({"candidates": "ffv1", "effort": 9, "max_group": 2})
    assert (s.candidates, s.effort, s.max_group) == (("ffv1",), 9, 2)
    assert parse_codec_arg("x265:lossless=true,preset=slow") == {"codec": "x265", "lossless": True, "preset": "slow"}


def test_orders_and_image_plans_cover_every_slice_once():
    assert stream_order([2, 4], "interleave") == [(1, 0), (0, 0), (1, 1), (1, 2), (0, 1), (1, 3)]
    for arrange, width in (("single", 1), ("neighbours", 2), ("neighbours", 3), ("scans", 1)):
        order, plan = image_plan(arrange, width, [7, 5, 9])
        assert sorted(order) == sorted((i, k) for i, n in enumerate([7, 5, 9]) for k in range(n))
        assert sum(plan) == len(order) and all(1 <= c <= 4 for c in plan)
    order, plan = image_plan("neighbours", 3, [7])
    assert plan == [3, 3, 1] and order[:3] == [(0, 0), (0, 1), (0, 2)]
    order, plan = image_plan("scans", 1, [4, 6])
    assert plan[:4] == [2, 2, 2, 2] and {i for i, _ in order[:2]} == {0, 1}


def test_grouping_by_metadata_then_similarity_and_group_size(vols):
    four = vols["phantom"] + vols["chest"]
    assert [g.members for g in group_volumes(four, Settings(epsilon=2.0))] == [[0, 1], [2, 3]]
    strict = group_volumes(vols["phantom"], Settings(epsilon=1e-4))
    assert [g.members for g in strict] == [[0], [1]] and "eq. 4.1" in strict[1].why
    one = group_volumes(vols["phantom"], Settings(epsilon=2.0, max_group=1))
    assert [g.members for g in one] == [[0], [1]] and "max_group 1" in one[1].why


# ---------------------------------------------------------------- round trips

def test_round_trip_restores_every_file_byte_identical(data, vols, tmp_path, capsys):
    arc = tmp_path / "arc"
    index = build_archive(vols["phantom"], arc, settings(), _ctx())
    assert sorted(p.name for p in arc.iterdir()) == ["SEAL", "g01.bin", "headers", "index.json", "order.txt",
                                                     "patients.txt"]
    g = index["groups"][0]
    rows = {r["candidate"]: r for r in g["candidates"]}
    assert list(rows) == list(FAST["candidates"])
    kept = min(r["bytes"] for r in rows.values() if r["bytes"])
    assert rows[g["candidate"]]["bytes"] == kept == g["compressed_bytes"]
    assert not list(tmp_path.glob(".*part*"))
    assert cli_main(["archive", "list", str(arc)]) == 0
    listing = capsys.readouterr().out
    for word in ("phantom_a", "phantom_b", "g01", g["candidate"], "PLASTIC", "jpegxl-dicom"):
        assert word in listing, word
    assert cli_main(["archive", "verify", str(arc)]) == 0
    paths = extract_archive(arc, tmp_path / "restored", _ctx())
    for p, src in zip(paths, data["phantom"]):
        same_files(p, src)
    one = extract_archive(arc, tmp_path / "one", _ctx(), patient="s02")
    assert [p.name for p in one] == ["s02_phantom_b"]
    with pytest.raises(ArchiveError, match="no scan of patient 'nobody'"):
        extract_archive(arc, tmp_path / "none", _ctx(), patient="nobody")
    with pytest.raises(ArchiveError, match="already exists; extract never overwrites"):
        extract_archive(arc, tmp_path / "one", _ctx(), patient="s02")


def _encapsulated_frames(path: Path) -> tuple:
    import pydicom
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(path)
    return ds, list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


@pytest.mark.parametrize("syntax, uid", [("jpegxl", "1.2.840.10008.1.2.4.110"), ("jpegls", "1.2.840.10008.1.2.4.80"),
                                         ("htj2k", "1.2.840.10008.1.2.4.201")])
def test_extract_to_compressed_syntaxes(data, vols, tmp_path, syntax, uid):
    """Signed 16-bit chest CT restored as lossless JPEG XL / JPEG-LS / HTJ2K: the stored values, every other
    element of the original unchanged, the SOP Instance UID kept; JPEG XL copies the archive's codestreams."""
    import pydicom

    from medpipe.archive.candidates import decode_codestream

    arc = tmp_path / "arc"
    index = build_archive(vols["chest"][:1], arc, settings(candidates=["jpegxl-dicom"]), _ctx())
    (out,) = extract_archive(arc, tmp_path / "out", _ctx(), syntax=syntax)
    scan = index["scans"][0]
    stream = (arc / "g01.bin").read_bytes()
    sizes = index["groups"][0]["parts"][0]["chunk_sizes"]
    for k, f in enumerate(scan["files"]):
        ds, frames = _encapsulated_frames(out / f["name"])
        orig = pydicom.dcmread(data["chest"][0] / f["name"])
        assert ds.file_meta.TransferSyntaxUID == uid and ds.SOPInstanceUID == orig.SOPInstanceUID
        for el in orig:
            if el.keyword != "PixelData":
                assert ds[el.tag].value == el.value, el.keyword
        values = decode_codestream(uid, frames[0], scan)
        assert np.array_equal(values, orig.pixel_array)
        if syntax == "jpegxl":  # no second encode: the archive's own codestream
            own = stream[sum(sizes[:k]): sum(sizes[:k + 1])]
            assert frames[0] in (own, own + b"\x00")  # fragments are padded to even length


def test_compressed_originals_restore_to_native_with_identical_elements(tmp_path):
    """JPEG-LS originals (unsigned phantom, signed chest) come back as Explicit VR Little Endian: every element of
    the original byte-identical, pixel values equal to the decoded originals."""
    import pydicom
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    srcs = [originals(shared("ct_head/philips_phantom_stereotaxis_a"), tmp_path / "ph", 2),
            originals(shared("ct_chest/acrin_flt_breast_001/series_2_805941"), tmp_path / "ch", 2)]
    arc = tmp_path / "arc"
    build_archive([load_volume(p) for p in srcs], arc, settings(candidates=["jpegxl"], effort=1), _ctx())
    out = extract_archive(arc, tmp_path / "out", _ctx())
    for restored, src in zip(out, srcs):
        for p in src.iterdir():
            orig, back = pydicom.dcmread(p), pydicom.dcmread(restored / p.name)
            assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
            assert np.array_equal(back.pixel_array, orig.pixel_array)
            for el in orig:
                if el.keyword == "PixelData":
                    continue
                a, b = DicomBytesIO(), DicomBytesIO()
                for fp in (a, b):
                    fp.is_little_endian, fp.is_implicit_VR = True, False
                write_data_element(a, orig[el.tag])
                write_data_element(b, back[el.tag])
                assert a.getvalue() == b.getvalue(), el.keyword


def test_pacs_export_folder_is_walked_and_other_files_left_out(data, tmp_path, capsys):
    export = tmp_path / "export"
    shutil.copytree(data["phantom"][0], export / "PATIENT" / "STUDY" / "SER1")
    shutil.copytree(data["chest"][0], export / "PATIENT2" / "SER7")
    (export / "README.txt").write_text("exported by a PACS")
    rc = cli_main(["archive", "build", str(export), "--out", str(tmp_path / "arc"), "--candidates", "jpegxl-dicom",
                   "--effort", "1"])
    assert rc == 0, capsys.readouterr().out
    index = open_archive(tmp_path / "arc")
    assert sorted(s["shape"][0] for s in index["scans"]) == [8, 8] and len(index["groups"]) == 2
    paths = extract_archive(tmp_path / "arc", tmp_path / "out", _ctx())
    assert len(paths) == 2
    names = lambda d: sorted(f.name for f in d.iterdir())  # noqa: E731
    for p in paths:
        src = next(s for s in (data["phantom"][0], data["chest"][0]) if names(s) == names(p))
        same_files(p, src)


def test_memory_holds_one_group_at_a_time(data, tmp_path):
    """A build holds at most max_group volumes at once, however many scans it archives."""
    alive, peak = set(), [0]

    class CountedSource:
        def __init__(self, path):
            self.path = path

        def load(self, errors=None):
            vol = load_volume(self.path)
            alive.add(id(vol))
            weakref.finalize(vol, alive.discard, id(vol))
            peak[0] = max(peak[0], len(alive))
            return vol

    srcs = [CountedSource(p) for p in data["phantom"] + data["chest"]]
    gc.collect()
    build_archive(srcs, tmp_path / "arc", settings(candidates=["jpegxl-dicom"], max_group=2), _ctx())
    assert peak[0] <= 2


def test_changed_input_between_survey_and_coding_is_refused(data, tmp_path):
    src = tmp_path / "scan"
    shutil.copytree(data["phantom"][0], src)

    class Changing:
        loads = 0

        def load(self, errors=None):
            Changing.loads += 1
            vol = load_volume(src)
            if Changing.loads == 2:
                vol.pixels = vol.pixels.copy()
                vol.pixels[0, 0, 0] += 1
                vol.__dict__.pop("content_hash", None)
            return vol

    with pytest.raises(Exception, match="changed while it was being archived"):
        build_archive([Changing()], tmp_path / "arc", settings(candidates=["jpegxl-dicom"]), _ctx())
    assert not (tmp_path / "arc").exists()


# ---------------------------------------------------------------- every candidate; video codecs; lossy

@pytest.mark.slow
def test_every_candidate_is_tried_and_the_smallest_kept(vols, tmp_path, capsys):
    from rich.console import Console

    arc = tmp_path / "arc"
    index = build_archive(vols["chest"], arc, Settings(epsilon=5.0, effort=3), _ctx(), Console(width=200))
    out = capsys.readouterr().out
    g = index["groups"][0]
    rows = {r["candidate"]: r for r in g["candidates"]}
    assert list(rows) == list(CANDIDATE_NAMES)
    jpeg = rows.pop("jpegxl-jpeg")  # the chest CT is not stored as baseline JPEG: skipped, and why
    assert jpeg["status"] == "skipped" and "not baseline JPEG" in jpeg["reason"]
    assert all(r["status"] == "ok" and r["bytes"] > 0 for r in rows.values()), rows
    assert g["compressed_bytes"] == min(r["bytes"] for r in rows.values()) == rows[g["candidate"]]["bytes"]
    for name in CANDIDATE_NAMES:
        assert name in out
    assert "kept" in out
    verify_archive(arc, _ctx())


@pytest.mark.slow
def test_x265_value_table_and_fallback_to_ffv1(vols, tmp_path):
    """-2000..4095 spans 13 bits: x265 lossless 12-bit codes it through a value table; without a table the
    archive stays lossless with FFV1 and says why."""
    arc = tmp_path / "arc"
    index = build_archive(vols["chest"], arc, Settings(codec={"codec": "x265", "lossless": True,
                                                              "preset": "ultrafast"}, epsilon=5.0), _ctx())
    g = index["groups"][0]
    assert g["codec"]["codec"] == "x265" and g["mapping"]["kind"] == "table" and g["lossless"]
    verify_archive(arc, _ctx())
    rc = cli_main(["archive", "build", *map(str, [v.source for v in vols["chest"]]), "--out", str(tmp_path / "b"),
                   "--codec", "x265:lossless=true,preset=ultrafast", "--no-value-table", "--epsilon", "5"])
    assert rc == 0
    g = open_archive(tmp_path / "b")["groups"][0]
    assert g["codec"]["codec"] == "ffv1" and g["lossless"] and "x265" in g["note"]


@pytest.mark.slow
def test_lossy_archive_reports_quality_and_marks_files(vols, tmp_path):
    import pydicom

    arc = tmp_path / "arc"
    index = build_archive(vols["phantom"], arc, Settings(codec={"codec": "x265", "crf": 20, "preset": "ultrafast"},
                                                         epsilon=2.0), _ctx())
    assert not index["lossless"]
    q = index["scans"][0]["quality"]
    assert not q["exact"] and 30 < q["psnr_db"] < 90
    verify_archive(arc, _ctx())
    with pytest.raises(ArchiveError, match="lossy archive restores as native"):
        extract_archive(arc, tmp_path / "x", _ctx(), syntax="jpegxl")
    paths = extract_archive(arc, tmp_path / "out", _ctx())
    orig = vols["phantom"][0]
    back = load_volume(paths[0])
    assert int(np.abs(back.pixels.astype(int) - orig.pixels.astype(int)).max()) == q["max_abs_err"]
    ds = pydicom.dcmread(next(paths[0].iterdir()))
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_23008_2"
    assert ds.SOPInstanceUID not in {h.SOPInstanceUID for h in orig.headers}


@pytest.mark.slow
def test_failed_build_leaves_nothing(vols, tmp_path):
    arc = tmp_path / "arc"
    bad = {"codec": "x265", "crf": 20, "preset": "ultrafast", "extra": ["-no_such_option", "1"]}
    with pytest.raises((FfmpegError, ArchiveError)):
        build_archive(vols["phantom"], arc, Settings(codec=bad, epsilon=2.0), _ctx())
    assert list(tmp_path.iterdir()) == []
    arc.mkdir()
    with pytest.raises(ArchiveError, match="already exists"):
        build_archive(vols["phantom"], arc, settings(), _ctx())


# ---------------------------------------------------------------- presets and comparison

@pytest.mark.slow
def test_preset_run_builds_archive_and_comparison(data, tmp_path):
    from medpipe.results import read_rows

    preset = tmp_path / "p.yaml"
    preset.write_text(json.dumps({
        "name": "arc", "inputs": [str(p) for p in data["phantom"]], "codecs": [FAST_X265],
        "archive": {"order": "interleave", "epsilon": 2.0, "compare": True}}))
    assert cli_main([str(preset), "--out", str(tmp_path / "res")]) == 0
    run = next((tmp_path / "res").iterdir())
    assert verify_archive(run / "archive", _ctx())["lossless"]
    rows = read_rows(run / "results.csv")
    assert [r["mode"] for r in rows] == ["separate", "intertwined"]
    assert rows[1]["gain"] == pytest.approx(rows[0]["compressed_bytes"] / rows[1]["compressed_bytes"])
    preset.write_text(json.dumps({"name": "arc", "inputs": [str(data["phantom"][0])], "codecs": ["ffv1"],
                                  "archive": {"ordr": "interleave"}}))
    assert cli_main([str(preset), "--out", str(tmp_path / "res2")]) == 2


def test_equal_psnr_gain_interpolation():
    sep = [(40.0, 1000.0), (44.0, 2000.0), (48.0, 4000.0)]
    g, rng = gain_equal_psnr(sep, [(p, b / 2) for p, b in sep])
    assert g == pytest.approx(2.0) and rng == (40.0, 48.0)
    assert gain_equal_psnr(sep, [(60.0, 1.0), (70.0, 2.0)]) == (None, None)


@pytest.mark.slow
def test_measure_separate_vs_intertwined_lossless(vols):
    sep = measure(vols["phantom"], FAST_X265, _ctx(), "separate", with_ssim=False)
    it = measure(vols["phantom"], FAST_X265, _ctx(), "intertwined", "sequential", with_ssim=False)
    assert sep["exact"] and it["exact"] and sep["raw_bytes"] == it["raw_bytes"]


def test_shipped_presets_are_valid():
    from conftest import ROOT
    from medpipe.preset import load_preset

    thesis = load_preset(ROOT / "presets" / "intertwined.yaml").archive
    assert thesis.codec == {"codec": "x265", "bits": 12, "lossless": True, "preset": "medium"} and thesis.compare
    smallest = load_preset(ROOT / "presets" / "archive.yaml")
    assert smallest.archive.codec == {"codec": "auto"} and smallest.archive.candidates == ()
    assert len(smallest.inputs) == 8


# ---------------------------------------------------------------- the size promise, on dev data

DEV_GROUPS = {"phantom": ["ct_head/philips_phantom_stereotaxis_a", "ct_head/philips_phantom_stereotaxis_b"],
              "chest": ["ct_chest/acrin_flt_breast_001/series_2_805941",
                        "ct_chest/acrin_flt_breast_001/series_2_729346"],
              "cq500_ct0": ["ct_head/cq500_ct0"], "cq500_ct5": ["ct_head/cq500_ct5"],
              "ge_dcmqa_human": ["ct_head/ge_dcmqa_human"], "mr": ["mr/siemens_t1_sag_brain"]}


@pytest.mark.slow
def test_archive_is_never_bigger_than_the_best_per_slice_standard_codec(tmp_path):
    """On every dev group (small real copies), the archive's bytes (streams + headers) are at most those of the
    same slices as per-slice JPEG XL e7 or JPEG-LS DICOM files, and its streams at most the JPEG XL codestreams."""
    from pydicom.uid import JPEGLSLossless as JPEG_LS

    from medpipe.archive.baseline import series_bytes
    from medpipe.syntaxes import JPEGXLLossless as JPEG_XL

    inputs = [small_copy(shared(rel), tmp_path / "in" / rel.replace("/", "_")) for g in DEV_GROUPS.values()
              for rel in g]
    vols = [load_volume(p) for p in inputs]
    index = build_archive(vols, tmp_path / "arc", parse_settings({"candidates": [
        "jpegxl-dicom", "jpegxl", "jpegxl-2slices", "jpegxl-3slices", "jpegxl-scans"]}), _ctx())
    assert len(index["groups"]) >= 6
    sizes = {f["path"]: f["bytes"] for f in index["files"]}
    by_id = {s["id"]: v for s, v in zip(index["scans"], vols)}
    for g in index["groups"]:
        scans = [s for s in index["scans"] if s["group"] == g["id"]]
        archive = sizes[g["stream"]] + sum(sizes[s["headers"]] for s in scans)
        jxl = [series_bytes(by_id[s["id"]], JPEG_XL, 7) for s in scans]
        jls = sum(series_bytes(by_id[s["id"]], JPEG_LS)["files"] for s in scans)
        assert sizes[g["stream"]] <= sum(b["codestreams"] for b in jxl), g["id"]
        assert archive <= min(sum(b["files"] for b in jxl), jls), g["id"]
