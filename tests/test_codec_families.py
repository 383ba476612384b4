"""Each codec family called directly (encode, then decode), held to the tolerances the codec declares
(``lossless`` -> exact, ``error_bound`` -> max |error|), plus what each class declares as data: parameter ranges,
DICOM syntaxes, minimum frame sizes, and the ffmpeg runner's time limit."""
from __future__ import annotations

import time

import numpy as np
import pytest

from medpipe.codecs import REGISTRY, CodecContext, parse_codec
from medpipe.errors import CodecUnavailable, FfmpegError

# (configuration, input bits): every family, lossless and lossy settings it offers
CASES = [
    ({"codec": "jpegls"}, 12), ({"codec": "jpegls", "near": 3}, 12), ({"codec": "jpegls", "near": 1}, 8),
    ({"codec": "jpegls_pillow"}, 12), ({"codec": "jpegls_pillow", "near": 2}, 12),
    ({"codec": "ljpeg"}, 16), ({"codec": "jpeg8"}, 8),
    ({"codec": "jpeg2000"}, 16), ({"codec": "jpeg2000", "lossless": False, "psnr": 55}, 12),
    ({"codec": "htj2k"}, 12), ({"codec": "jpegxl", "effort": 1}, 16),
    ({"codec": "jpegxl-channels", "effort": 1, "channels": [2, 1]}, 12),
    ({"codec": "jpegxl", "effort": 3, "distance": 0.5}, 12), ({"codec": "png", "level": 1}, 16),
    ({"codec": "png_opencv", "level": 1}, 8), ({"codec": "rle"}, 16), ({"codec": "rle"}, 8),
    ({"codec": "jpeg2000_glymur"}, 12),
    ({"codec": "ffv1"}, 16), ({"codec": "ffv1", "bits": 12}, 12),
    ({"codec": "x265", "lossless": True, "preset": "ultrafast"}, 12),
    ({"codec": "x265", "crf": 28, "preset": "ultrafast"}, 12),
    ({"codec": "x264", "qp": 0, "preset": "ultrafast"}, 10),
    ({"codec": "x264", "crf": 23, "preset": "ultrafast", "chroma": "420"}, 10),
    # lossless3d compiles its numba coder on first use on a machine (~40 s): kept out of the fast subset
    *(pytest.param({"codec": "lossless3d"}, b, marks=pytest.mark.slow) for b in (12, 16, 8)),
]


def frames(bits: int, shape=(3, 37, 51)) -> np.ndarray:
    """Smooth anatomy-like data with noise, spanning ``bits`` (odd sizes exercise padding)."""
    n, h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(7)
    top = (1 << bits) - 1
    out = [(top * (0.5 + 0.4 * np.sin(x / 7 + k) * np.cos(y / 9)) + rng.normal(0, top / 200, (h, w)))
           for k in range(n)]
    return np.clip(np.rint(out), 0, top).astype(np.uint8 if bits <= 8 else np.uint16)


@pytest.mark.parametrize("cfg, bits", CASES, ids=lambda c: str(c) if isinstance(c, int) else "-".join(map(str, c.values())))
def test_encode_decode_within_declared_tolerance(cfg, bits, ctx):
    codec = parse_codec(cfg, "test").codec
    try:
        codec.check(ctx)
    except CodecUnavailable as exc:
        pytest.skip(str(exc))
    data = frames(bits)
    enc = codec.encode(data, ctx)
    assert enc.nbytes > 0 and tuple(enc.shape) == data.shape
    if codec.per_slice:
        assert len(enc.chunks) == data.shape[0]  # one stream per slice, as DICOM encapsulates them
    out = codec.decode(enc, ctx)
    assert out.shape == data.shape and out.dtype == data.dtype
    err = int(np.abs(out.astype(np.int64) - data.astype(np.int64)).max())
    if codec.lossless:
        assert err == 0
    elif codec.error_bound is not None:
        assert 0 < err <= codec.error_bound
    else:  # unbounded lossy: the same picture, not noise
        mse = float(np.mean((out.astype(np.float64) - data) ** 2))
        assert 0 < mse and 10 * np.log10(((1 << bits) - 1) ** 2 / mse) > 30


def test_every_registered_codec_is_covered():
    configs = [c.values[0] if hasattr(c, "values") else c[0] for c in CASES]
    # jpegxl-jpeg codes a source's own JPEG bitstreams, not values: tests/test_jpegxl_syntaxes.py covers it
    assert {c["codec"] for c in configs} == set(REGISTRY) - {"jpegxl-jpeg"}


def test_video_frames_smaller_than_the_encoder_opens_are_padded_and_cropped(ctx):
    """libx265 refuses pictures under 16 x 16 ('Image size is too small'); the codec declares it and pads."""
    codec = parse_codec({"codec": "x265", "lossless": True, "preset": "ultrafast"}, "test").codec
    assert codec.min_size == (16, 16)
    data = frames(12, (2, 3, 3))
    out = codec.decode(codec.encode(data, ctx), ctx)
    assert np.array_equal(out, data)
    odd = frames(10, (2, 5, 7))
    c420 = parse_codec({"codec": "x264", "qp": 0, "chroma": "420", "preset": "ultrafast"}, "test").codec
    assert np.array_equal(c420.decode(c420.encode(odd, ctx), ctx), odd)


@pytest.mark.parametrize("cfg, shape, uid, words", [
    ({"codec": "jpegls"}, (2, 64, 64), "1.2.840.10008.1.2.4.80", ""),
    ({"codec": "jpegls", "near": 2}, (2, 64, 64), "1.2.840.10008.1.2.4.81", ""),
    ({"codec": "jpeg2000", "lossless": False, "psnr": 50}, (2, 64, 64), "1.2.840.10008.1.2.4.91", ""),
    ({"codec": "x265", "bits": 10, "chroma": "420"}, (2, 64, 64), "1.2.840.10008.1.2.4.108", ""),
    ({"codec": "x265", "bits": 10, "chroma": "420"}, (2, 63, 64), None, "even rows and columns"),
    ({"codec": "x265", "bits": 12, "chroma": "420"}, (2, 64, 64), None, "bits=12"),
    ({"codec": "x265", "bits": 8, "chroma": "420", "lossless": True}, (2, 64, 64), None, "lossless=True"),
    ({"codec": "x264", "bits": 8, "chroma": "420"}, (2, 2160, 3840), None, "exceeds the frame size"),
    ({"codec": "ffv1"}, (2, 64, 64), None, "not a DICOM pixel encoding"),
])
def test_dicom_syntax_table(cfg, shape, uid, words):
    got, why = parse_codec(cfg, "test").codec.dicom_syntax(shape)
    assert got == uid and words in why


def test_quality_knobs_and_curves_are_declared():
    a = parse_codec({"codec": "x265", "crf": 22, "chroma": "gray"}, "test").codec
    b = parse_codec({"codec": "x265", "crf": 28, "chroma": "gray"}, "test").codec
    c = parse_codec({"codec": "x265", "crf": 28, "chroma": "420"}, "test").codec
    assert a.knobs() == {"crf": 22} and a.curve() == b.curve() != c.curve()


@pytest.mark.slow
def test_a_hung_ffmpeg_is_stopped_with_a_clear_error(ctx):
    """An ffmpeg that never ends (a real one, reading an endless source in real time) is killed at its limit."""
    try:
        ff = ctx.ffmpeg
    except CodecUnavailable as exc:
        pytest.skip(str(exc))
    t0 = time.monotonic()
    with pytest.raises(FfmpegError, match="did not finish within 2 s"):
        ff.run(["-re", "-f", "lavfi", "-i", "nullsrc=s=16x16:r=5", "-f", "null", "-"], timeout=2)
    assert time.monotonic() - t0 < 30


def test_timeouts_grow_with_the_work():
    ctx = CodecContext(timeout_factor=2.0)
    try:
        ff = ctx.ffmpeg
    except CodecUnavailable as exc:
        pytest.skip(str(exc))
    small, big = ff.timeout_for(10_000, 1), ff.timeout_for(10**9, 50)
    assert big > small >= 2 * 120  # factor 2 on the base, and more for a large slow configuration
