"""Codec defaults chosen by measurement (bench/codec_defaults.py), depth fill for lossy video, the default preset
on a pip-only install, and the lossless Pareto figure of the report.

- FFV1 through medpipe gives the same stream, byte for byte, as plain ffmpeg given the chosen options on the same
  gray16le frames (the same binary, run here directly), so its CR is plain ffmpeg's.
- With ``fill_depth`` (the default), a 10-bit and a 12-bit copy of the same values at the same crf get PSNRs within
  0.5 dB, and the row says how the values were shifted; ``fill_depth: false`` codes the stored values as they are.
"""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, shared
from helpers import make_volume

from medpipe.codecs import REGISTRY, parse_codec
from medpipe.errors import PresetError
from medpipe.matrix import MATRIX_OPTIONS, CellSettings, measure_cell
from medpipe.preset import load_preset, parse_preset

# The FFV1 options chosen on the dev CT series (bench/measured/codec_defaults-*): written out here, not read from the
# codec, so a change of the defaults has to change this test too.
CHOSEN_FFV1 = ["-c:v", "ffv1", "-level", "3", "-slices", "24", "-coder", "2", "-context", "1"]


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def packets(path: Path) -> list[str]:
    """Every packet of the file's first stream (size and CRC) and its extradata, as ffmpeg's framecrc lists them."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                          "-c", "copy", "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line and not line.startswith("#tb")]


def ffv1_against_plain_ffmpeg(volume, ctx, tmp_path: Path) -> tuple[dict, int]:
    """(medpipe's row, plain ffmpeg's file size); asserts the two streams are the same packets."""
    spec = parse_codec({"codec": "ffv1"}, "test")
    res = measure_cell(volume, spec, ctx, CellSettings(ssim=False))
    row = res.row.as_dict()
    assert row["status"] == "ok" and row["exact"] is True, row["reason"]
    ours = tmp_path / "medpipe.mkv"
    ours.write_bytes(res.encoded.chunks[0])
    frames = res.mapping.forward(volume.pixels)  # the values medpipe coded (stored values, offset to unsigned)
    n, h, w = frames.shape
    plain = tmp_path / "plain.mkv"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt",
                    "gray16le", "-s", f"{w}x{h}", "-i", "pipe:0", *CHOSEN_FFV1, "-g", str(n), str(plain)],
                   input=frames.astype("<u2").tobytes(), check=True)
    ours_packets, plain_packets = packets(ours), packets(plain)
    assert len(ours_packets) >= n and ours_packets == plain_packets  # same extradata, same packets, same CRCs
    return row, plain.stat().st_size


def test_ffv1_defaults_are_the_measured_ones():
    codec = parse_codec({"codec": "ffv1"}, "test").codec
    assert codec.encoder_args(0, 28) == ["-c:v", "ffv1", "-level", "3", "-g", "28", "-slices", "24", "-coder", "2",
                                         "-context", "1"]
    with pytest.raises(PresetError, match="slices apply to level 3 only"):
        parse_codec({"codec": "ffv1", "level": 1, "slices": 4}, "test")


def test_ffv1_cr_equals_plain_ffmpeg_on_the_shipped_ct(sample_volume, ctx, tmp_path):
    """The shipped GE head CT is one of the dev CT series (ct_head/ge_dcmqa_human); 10 of its slices."""
    vol = make_volume(sample_volume.pixels[9:19], "ge_head_ct", 16)
    row, plain_size = ffv1_against_plain_ffmpeg(vol, ctx, tmp_path)
    # medpipe counts the stream plus the 8 bytes of its value offset; the stream itself is plain ffmpeg's file
    assert row["compressed_bytes"] == plain_size + 8
    assert row["cr"] == pytest.approx(vol.raw_bytes / (plain_size + 8), rel=1e-12)


@pytest.mark.slow
def test_ffv1_cr_equals_plain_ffmpeg_on_a_dev_ct(ctx, tmp_path):
    from medpipe.volumes import load_volume

    vol = load_volume(shared("ct_head/cq500_ct5"))  # unsigned 12-bit: no offset, the row's size is the file's
    row, plain_size = ffv1_against_plain_ffmpeg(vol, ctx, tmp_path)
    assert row["mapping"] == "identity" and row["compressed_bytes"] == plain_size


def test_ffv1_frames_smaller_than_its_slice_grid_are_padded(ctx):
    """24 slices are a 4 x 6 grid; ffmpeg refuses smaller frames, the codec pads them and crops back."""
    codec = parse_codec({"codec": "ffv1"}, "test").codec
    assert codec.min_size == (4, 6)
    for shape in ((1, 1, 1), (2, 3, 5), (2, 1, 7)):
        data = np.random.default_rng(3).integers(0, 4096, shape).astype(np.uint16)
        assert np.array_equal(codec.decode(codec.encode(data, ctx), ctx), data), shape


def test_ffv1_keyframes_follow_g(sample_volume, ctx, tmp_path):
    """Default: one keyframe, the states carry through the volume; g: 1: every frame decodes alone."""
    frames = (sample_volume.pixels[10:14].astype(np.int32) + 1500).astype(np.uint16)
    for g, keys in ((None, 1), (1, 4)):
        codec = parse_codec({"codec": "ffv1", **({"g": g} if g else {})}, "test").codec
        path = tmp_path / f"g{g}.mkv"
        path.write_bytes(codec.encode(frames, ctx).chunks[0])
        lines = [ln for ln in packets(path) if not ln.startswith("#")]
        assert len(lines) == 4 and sum(not ln.rstrip().endswith("F=0x0") for ln in lines) == keys, lines


def test_png_defaults_code_real_ct_smaller_than_zlibs_default_strategy(sample_volume):
    """Z_FILTERED was measured 2.3 % smaller than Z_DEFAULT_STRATEGY at level 9 on the dev CT series."""
    frames = (sample_volume.pixels[12:14, 128:384, 128:384].astype(np.int32) + 1500).astype(np.uint16)
    for name in ("png", "png_opencv"):
        default = parse_codec({"codec": name}, "test").codec
        assert (default.p["level"], default.p["strategy"]) == (9, "filtered")
        plain = parse_codec({"codec": name, "strategy": "default"}, "test").codec
        ours, theirs = (sum(len(c.encode_slice(s)) for s in frames) for c in (default, plain))
        assert ours < theirs, (name, ours, theirs)
        assert np.array_equal(default.decode_slice(default.encode_slice(frames[0])), frames[0])


def test_still_image_defaults_are_the_measured_ones():
    assert REGISTRY["jpegxl"].params["effort"].default == 9
    assert REGISTRY["htj2k"].params["resolutions"].default == 6
    assert REGISTRY["jpeg2000"].params["resolutions"].default == 6


# ---- depth fill for lossy video


def copies(sample_volume):
    """The same CT values at two depths: v (10-bit), v << 2 (12-bit); and v >> 2 (8-bit), (v >> 2) << 2 (10-bit)."""
    v = sample_volume.pixels[12:16, 128:384, 128:384].astype(np.int32)
    ten = ((v - v.min()) >> 2).astype(np.uint16)
    eight = (ten >> 2).astype(np.uint8)
    return {10: make_volume(ten, "ct10", 10), 12: make_volume(ten << 2, "ct12", 12),
            8: make_volume(eight, "ct8", 8), "10b": make_volume(eight.astype(np.uint16) << 2, "ct10b", 10)}


X265_CRF22 = {"codec": "x265", "bits": 12, "chroma": "gray", "preset": "fast", "crf": 22}
X264_CRF22 = {"codec": "x264", "bits": 10, "chroma": "gray", "preset": "fast", "crf": 22}


def rows(vols, cfg, ctx, fill: bool) -> list[dict]:
    spec = parse_codec(cfg, "test")
    out = [measure_cell(v, spec, ctx, CellSettings(fill_depth=fill, ssim=False)).row.as_dict() for v in vols]
    assert all(r["status"] == "ok" for r in out), [r["reason"] for r in out]
    return out


def test_fill_depth_one_crf_is_one_quantiser(sample_volume, ctx):
    """x265 12-bit, crf 22: the 10-bit copy is shifted up to the 12-bit copy's values and gets its PSNR."""
    c = copies(sample_volume)
    assert (c[10].span_bits, c[12].span_bits) == (10, 12)
    r10, r12 = rows([c[10], c[12]], X265_CRF22, ctx, fill=True)
    assert r10["mapping"] == "<<2 (10->12 bits, exact)" and r12["mapping"] == "identity"
    assert not r10["reason"] and r10["codec_bits"] == 12
    assert abs(r10["psnr_db"] - r12["psnr_db"]) <= 0.5, (r10["psnr_db"], r12["psnr_db"])


def test_fill_depth_8bit_data_in_10bit_x264(sample_volume, ctx):
    c = copies(sample_volume)
    assert (c[8].span_bits, c["10b"].span_bits) == (8, 10)
    r8, r10b = rows([c[8], c["10b"]], X264_CRF22, ctx, fill=True)
    assert r8["mapping"] == "<<2 (8->10 bits, exact)"
    assert abs(r8["psnr_db"] - r10b["psnr_db"]) <= 0.5, (r8["psnr_db"], r10b["psnr_db"])


def test_fill_depth_false_codes_the_stored_values(sample_volume, ctx):
    """The old behaviour: 10-bit data sits in the low quarter of the 12-bit range, the same crf quantises it
    coarser relative to its own range (lower PSNR, higher CR)."""
    c = copies(sample_volume)
    r10, r12 = rows([c[10], c[12]], X265_CRF22, ctx, fill=False)
    assert r10["mapping"] == "identity" and r10["codec_bits"] == 12
    assert r12["psnr_db"] - r10["psnr_db"] > 3, (r10["psnr_db"], r12["psnr_db"])
    assert r10["cr"] > r12["cr"]


def test_fill_depth_is_on_by_default_and_a_preset_turns_it_off():
    assert MATRIX_OPTIONS["fill_depth"].default is True
    assert load_preset(ROOT / "presets" / "headct.yaml").matrix["fill_depth"] is True
    off = parse_preset({"input": "x", "fill_depth": False, "codecs": ["x265"]})
    assert off.matrix["fill_depth"] is False


# ---- presets


def test_default_preset_runs_complete_on_a_pip_only_install():
    """Every row of headct.yaml is available from the wheels in requirements.txt (no system package): nothing is
    skipped for a missing backend; the optional backends live in optional.yaml."""
    preset = load_preset(ROOT / "presets" / "headct.yaml")
    assert [s.label for s in preset.codecs if s.codec.missing()] == []
    assert "jpeg2000_glymur" not in {s.codec.name for s in preset.codecs}
    assert "jpeg2000_glymur" in {s.codec.name for s in load_preset(ROOT / "presets" / "optional.yaml").codecs}


def test_thesis_8bit_jpeg_row_is_labelled_for_what_it_is():
    preset = load_preset(ROOT / "presets" / "headct.yaml")
    (jpeg8,) = [s for s in preset.codecs if s.codec.name == "jpeg8"]
    assert jpeg8.label == "JPEG lossless of 8-bit-reduced data (thesis row)"


def test_ladder_preset_has_the_trade_off_rows():
    preset = load_preset(ROOT / "presets" / "ladder.yaml")
    got = {(s.codec.name, s.codec.p.get("effort"), s.codec.p.get("level")) for s in preset.codecs}
    assert {("jpegxl", e, None) for e in (1, 3, 7, 9)} <= got
    assert {("png", None, lv) for lv in (1, 6, 9)} <= got
    assert {"htj2k", "jpegls", "ffv1", "jpeg2000"} <= {s.codec.name for s in preset.codecs}
    assert all(s.codec.lossless for s in preset.codecs) and preset.matrix["jobs"] == 1


# ---- the Pareto figure


def test_pareto_front():
    from medpipe.report.figures import pareto_front

    pts = [(100.0, 3.0), (10.0, 4.0), (50.0, 2.0), (1.0, 4.5), (5.0, 3.9)]
    assert sorted(pareto_front(pts)) == [0, 1, 3]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, sample_volume):
    """A real run of a small preset on 4 slices of the shipped CT: five exact lossless rows, one near-lossless and
    the 8-bit-reduced JPEG row (neither is lossless)."""
    from rich.console import Console

    from medpipe.runner import run_preset
    from medpipe.volumes import dump_png, load_volume

    base = tmp_path_factory.mktemp("pareto")
    small = load_volume(Path(sample_volume.source))
    small.pixels = np.ascontiguousarray(small.pixels[12:16])
    dump_png(small, base / "source" / "ct4")
    codecs = [{"codec": "jpegls"}, {"codec": "htj2k"}, {"codec": "ffv1"}, {"codec": "png", "level": 1},
              {"codec": "jpegxl", "effort": 1}, {"codec": "jpegls", "near": 2}, {"codec": "jpeg8"}]
    preset = parse_preset({"name": "p", "input": str(base / "source" / "ct4"), "codecs": codecs, "jobs": 1,
                           "ssim": False, "report": {"heatmaps": False}})
    assert run_preset(preset, Console(file=io.StringIO()), out=base / "results") == 0
    (folder,) = (base / "results").iterdir()
    return folder


@pytest.mark.slow
def test_report_draws_the_lossless_pareto_figure(small_run):
    from medpipe.report.figures import png_size

    items = json.loads((small_run / "report" / "figures.json").read_text())
    (pareto,) = [i for i in items if i["kind"] == "pareto"]
    assert pareto["panels"] == 2 and "5 rows" in pareto["caption"]
    path = small_run / "report" / "figures" / pareto["file"]
    assert png_size(path) == (pareto["width_px"], pareto["height_px"]) and pareto["width_px"] > 800
    assert f"figures/{pareto['file']}" in (small_run / "report" / "summary.md").read_text()


@pytest.mark.slow
def test_pareto_needs_two_exact_lossless_rows(small_run, tmp_path):
    """Built from the results file alone: with one lossless row left there is no trade-off to draw."""
    import shutil

    from medpipe import report

    folder = tmp_path / "run"
    shutil.copytree(small_run, folder)
    doc = json.loads((folder / "results.json").read_text())
    doc["rows"] = [r for r in doc["rows"] if not r["lossless"] or r["codec"] == "jpegls"]
    assert sum(bool(r["lossless"]) for r in doc["rows"]) == 1
    (folder / "results.json").write_text(json.dumps(doc))
    report.build_report(folder, {"heatmaps": False})
    kinds = [i["kind"] for i in json.loads((folder / "report" / "figures.json").read_text())]
    assert "pareto" not in kinds and "rd" in kinds
