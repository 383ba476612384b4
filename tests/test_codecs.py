"""Round trip through the real bench path: every registered codec x 8/12/16-bit and signed input."""
from __future__ import annotations

import pytest

from medpipe.codecs import REGISTRY

from helpers import depth_variants, row_of, spec_of

# Every registered codec with its defaults, plus the lossless and near-lossless variants worth pinning.
CONFIGS = [{"codec": name} for name in sorted(REGISTRY)] + [
    {"codec": "x264", "qp": 0, "chroma": "gray", "preset": "ultrafast"},
    {"codec": "x265", "lossless": True, "chroma": "gray", "preset": "ultrafast"},
    {"codec": "x265", "lossless": True, "chroma": "420", "preset": "ultrafast"},
    {"codec": "x265", "lossless": True, "chroma": "444", "preset": "ultrafast"},
    {"codec": "jpegls", "near": 3},
    {"codec": "jpegls_pillow", "near": 3},
    {"codec": "jpeg2000", "lossless": False, "psnr": 60},
]
DEPTHS = ["u8", "u12", "u16", "s16"]


@pytest.fixture(scope="module")
def variants(sample_volume):
    return depth_variants(sample_volume)


def _id(cfg):
    return "-".join(f"{v}" for v in cfg.values())


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_round_trip(cfg, depth, variants, ctx):
    vol = variants[depth]
    spec = spec_of(cfg)
    row = row_of(vol, spec, ctx)
    if row["status"] == "skipped":
        reason = row["reason"]
        assert reason.startswith("not available") or "bits" in reason, reason
        pytest.skip(reason)
    assert row["status"] == "ok", row["reason"]
    assert row["compressed_bytes"] > 0 and row["cr"] == pytest.approx(vol.raw_bytes / row["compressed_bytes"])
    if row["lossless"]:
        assert row["exact"] is True and row["max_abs_err"] == 0 and row["psnr_db"] == float("inf")
    elif spec.codec.error_bound and row["codec_bits"] >= vol.span_bits:
        assert 0 < row["max_abs_err"] <= spec.codec.error_bound
    else:  # lossy: still a faithful picture of the same anatomy
        assert row["psnr_db"] > 25 and row["ssim"] > 0.7, row


def test_lossless_video_refuses_data_wider_than_its_depth(variants, ctx):
    row = row_of(variants["u16"], {"codec": "x265", "lossless": True}, ctx)
    assert row["status"] == "skipped" and "x265 codes at most 12" in row["reason"]
    assert vol_bits(variants["u16"]) > 12


def test_chroma_rows_code_the_luma_exactly(variants, ctx):
    """Constant chroma planes + full range: a lossless 4:2:0 stream must give the grey values back exactly
    (a limited-range conversion here once cost up to 263 grey levels)."""
    vol = variants["u12"]
    for chroma in ("420", "444"):
        row = row_of(vol, {"codec": "x265", "lossless": True, "chroma": chroma, "preset": "ultrafast"}, ctx)
        assert row["exact"] is True, (chroma, row["reason"], row["max_abs_err"])


@pytest.mark.slow
def test_lossless_rows_exact_on_the_shipped_sample(sample_volume, ctx):
    """Every lossless codec of the thesis matrix, bit-exact on the full real series (28 x 512 x 512)."""
    for cfg in ({"codec": "jpegls"}, {"codec": "jpeg2000"}, {"codec": "htj2k"}, {"codec": "ljpeg"},
                {"codec": "jpegxl", "effort": 3}, {"codec": "png", "level": 1}, {"codec": "ffv1"},
                {"codec": "x265", "lossless": True, "preset": "ultrafast"}):
        row = row_of(sample_volume, cfg, ctx)
        assert row["status"] == "ok", (cfg, row["reason"])
        assert row["lossless"] and row["exact"] is True, cfg
        assert row["cr"] > 2.5, (cfg, row["cr"])  # real CT compresses; a broken size would show here


def test_thesis_8bit_jpeg_row_says_it_reduced_precision(sample_volume, ctx):
    row = row_of(sample_volume, {"codec": "jpeg8"}, ctx)
    assert row["status"] == "ok" and row["lossless"] is False and row["exact"] is False
    assert "12->8 bits" in row["mapping"] and "precision lost" in row["reason"]
    assert 0 < row["max_abs_err"] <= 8  # >>4 with the bin centre restored: at most half a bin of 16


def test_unavailable_codec_is_a_skip_with_install_hint(variants, ctx):
    cls = REGISTRY["jpeg2000_glymur"]
    reason = cls.missing()
    if reason is None:
        pytest.skip("glymur with a system OpenJPEG is installed here")
    row = row_of(variants["u12"], {"codec": "jpeg2000_glymur"}, ctx)
    assert row["status"] == "skipped" and "install" in row["reason"]


def vol_bits(vol):
    return vol.span_bits


@pytest.mark.slow
def test_dicom_transfer_syntax_column(sample_volume, ctx):
    """Every row says which DICOM transfer syntax the configuration fits on this volume, or none."""
    cases = [({"codec": "jpegls"}, "1.2.840.10008.1.2.4.80"), ({"codec": "jpegls", "near": 2}, "1.2.840.10008.1.2.4.81"),
             ({"codec": "x265", "bits": 10, "chroma": "420", "preset": "ultrafast"}, "1.2.840.10008.1.2.4.108"),
             ({"codec": "x265", "bits": 12, "chroma": "gray", "preset": "ultrafast"}, None),  # no 12-bit grey video TS
             ({"codec": "jpeg8"}, None)]  # lossless coding of reduced data must not claim .4.70
    for cfg, uid in cases:
        row = row_of(sample_volume, cfg, ctx)
        assert row["status"] == "ok" and row["dicom_ts"] == uid, (cfg, row["dicom_ts"])
