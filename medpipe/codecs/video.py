"""Video codecs through ffmpeg (libx264, libx265, ffv1): the whole volume is one stream, slices are frames.

Frames go to ffmpeg as raw video on a pipe in exactly the pixel format the encoder codes, and come back the
same way, so no scaler touches the values: grey data is the Y plane, chroma planes (4:2:0 / 4:4:4 rows, kept as
the thesis ran them) are constant mid-grey and the stream is flagged full range (``-color_range pc``). Odd sizes
are edge-padded to even for 4:2:0, and frames smaller than the encoder opens (x265: 16 x 16) to that size; both are
cropped back after decoding. Every call has a time limit derived from its work (a hung ffmpeg is stopped).
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from pydicom.uid import HEVCM10P51, HEVCMP51, MPEG4HP41

from ..errors import PresetError
from ..files import temp_dir

from .base import Codec, Encoded, Param, WrittenAs

CHROMA_FORMATS = {"gray": "gray{b}le", "420": "yuv420p{b}le", "444": "yuv444p{b}le"}


def pix_fmt(chroma: str, bits: int) -> str:
    if bits == 8:
        return {"gray": "gray", "420": "yuv420p", "444": "yuv444p"}[chroma]
    return CHROMA_FORMATS[chroma].format(b=bits)


def iter_frames(frames: np.ndarray, chroma: str, bits: int):
    """Raw planar frames one at a time (Y = data, U = V = 2^(bits-1), neutral; little-endian), so the volume is
    never copied whole into one pipe buffer."""
    dtype = np.dtype("<u2") if bits > 8 else np.dtype("u1")
    n, h, w = frames.shape
    neutral = b""
    if chroma != "gray":
        ch, cw = (h // 2, w // 2) if chroma == "420" else (h, w)
        neutral = np.full(2 * ch * cw, 1 << (bits - 1), dtype).tobytes()
    for frame in frames:
        yield frame.astype(dtype, copy=False).tobytes()
        if neutral:
            yield neutral


def read_frames(stream, shape: tuple[int, int, int], chroma: str, bits: int) -> np.ndarray:
    """Read raw planar frames from ffmpeg's stdout straight into the output array; chroma planes are dropped."""
    n, h, w = shape
    dtype = np.dtype("<u2") if bits > 8 else np.dtype("u1")
    out = np.empty((n, h, w), dtype)
    skip = 0 if chroma == "gray" else 2 * ((h // 2) * (w // 2) if chroma == "420" else h * w) * dtype.itemsize
    scratch = memoryview(bytearray(skip))
    for i in range(n):
        for buf in (memoryview(out[i]).cast("B"), scratch):
            got = 0
            while got < len(buf):
                k = stream.readinto(buf[got:])
                if not k:
                    raise RuntimeError(f"ffmpeg returned {i} whole frame(s), expected {n}")
                got += k
    if stream.read(1):
        raise RuntimeError(f"ffmpeg returned more than the {n} frames expected")
    return out


class FfmpegCodec(Codec):
    """Common ffmpeg plumbing; subclasses build the encoder arguments."""

    family = "ffmpeg"
    per_slice = False
    encoder: ClassVar[str]
    container = "mkv"
    lossless_coding = True
    fixed_depth = True  # gray10le / yuv444p12le ...: the pixel format sets the coded depth

    @property
    def chroma(self) -> str:
        return self.p.get("chroma", "gray")

    def depth(self) -> int:
        return int(self.p["bits"])

    def pix_fmt(self) -> str:
        return pix_fmt(self.chroma, self.depth())

    def check(self, ctx):
        super().check(ctx)
        ctx.ffmpeg.require(self.encoder, self.pix_fmt())

    def version(self, ctx):
        return ctx.ffmpeg.version.replace("ffmpeg version ", "ffmpeg ").split(" Copyright")[0]

    def encoder_args(self, threads: int = 0, frames: int = 1) -> list[str]:
        """Encoder arguments; ``threads`` (0: the encoder's choice) is the per-call thread budget, ``frames`` the
        number of frames in the stream."""
        raise NotImplementedError

    def padded_size(self, h: int, w: int) -> tuple[int, int]:
        """Frame size the encoder is given: at least ``min_size``, even for 4:2:0."""
        ph, pw = max(h, self.min_size[0]), max(w, self.min_size[1])
        if self.chroma == "420":
            ph, pw = ph + ph % 2, pw + pw % 2
        return ph, pw

    def encode(self, frames, ctx):
        n, h, w = frames.shape
        ph, pw = self.padded_size(h, w)
        if (ph, pw) != (h, w):  # edge padding codes cheaply and is cropped off after decoding
            frames = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w)), mode="edge")
        fmt, bits = self.pix_fmt(), self.depth()
        with temp_dir() as tmp:
            out = Path(tmp) / f"stream.{self.container}"
            # -color_range pc on the input too: otherwise ffmpeg inserts a limited->full range conversion
            # (measured: max error 263 on 12-bit CT in x265 "lossless" 4:4:4).
            ctx.ffmpeg.run(["-color_range", "pc", "-f", "rawvideo", "-pix_fmt", fmt, "-s", f"{pw}x{ph}",
                            "-framerate", "25", "-i", "pipe:0", *self.threads_args(ctx),
                            *self.encoder_args(ctx.ffmpeg.threads, n), "-pix_fmt", fmt, "-color_range", "pc", str(out)],
                           stdin=iter_frames(frames, self.chroma, bits),
                           timeout=ctx.ffmpeg.timeout_for(n * ph * pw, self.cost_per_voxel()))
            data = out.read_bytes()
        return Encoded([data], (n, h, w), frames.dtype.str, side={"padded": [ph, pw]})

    def decode(self, enc, ctx):
        ph, pw = enc.side["padded"]
        n, h, w = enc.shape
        with temp_dir() as tmp:
            src = Path(tmp) / f"stream.{self.container}"
            src.write_bytes(enc.chunks[0])
            frames = ctx.ffmpeg.run([*self.threads_args(ctx), "-i", str(src), "-f", "rawvideo",
                                     "-pix_fmt", self.pix_fmt(), "pipe:1"],
                                    read_stdout=lambda out: read_frames(out, (n, ph, pw), self.chroma, self.depth()),
                                    timeout=ctx.ffmpeg.timeout_for(n * ph * pw, 1.0))
        return np.ascontiguousarray(frames[:, :h, :w]).astype(np.dtype(enc.dtype), copy=False)

    def threads_args(self, ctx) -> list[str]:
        return ["-threads", str(ctx.ffmpeg.threads)] if ctx.ffmpeg.threads else []


# Relative encoder cost per voxel of each speed preset (one thread, measured on the shipped head CT); x265 costs
# 2.5x x264, chroma planes 1.2x (4:2:0) and 1.5x (4:4:4). Only the scheduler and ffmpeg time limits use it.
PRESET_COST = {"ultrafast": 0.3, "superfast": 0.4, "veryfast": 0.6, "faster": 1, "fast": 1.2, "medium": 2,
               "slow": 4, "slower": 8, "veryslow": 14, "placebo": 30}
CHROMA_COST = {"gray": 1.0, "420": 1.2, "444": 1.5}


class _HybridVideo(FfmpegCodec):
    """x264 / x265 shared parameters (the thesis's columns: preset, chroma, crf, g, tune)."""

    lib_params: ClassVar[str]
    fills_depth = True  # a lossy stream's quantiser is relative to the coded depth
    conflicts = (("crf", "qp"),)
    encoder_cost: ClassVar[float] = 1.0

    @property
    def lossless(self):
        return bool(self.p.get("lossless"))

    def cost_per_voxel(self) -> float:
        return PRESET_COST[self.p["preset"]] * self.encoder_cost * CHROMA_COST[self.chroma]

    def encoder_args(self, threads: int = 0, frames: int = 1):
        p = self.p
        args = ["-c:v", self.encoder, "-preset", p["preset"]]
        if p.get("lossless"):
            pass  # x265: set through -x265-params lossless=1 (lib_extra)
        elif p["qp"] is not None:
            args += ["-qp", str(p["qp"])]
        elif p["crf"] is not None:
            args += ["-crf", str(p["crf"])]
        if p["g"] is not None:
            args += ["-g", str(p["g"])]
        if p["tune"]:
            args += ["-tune", p["tune"]]
        lib = self.lib_extra(threads)
        if lib:
            args += [self.lib_params, ":".join(lib)]
        return args + [str(a) for a in p["extra"]]

    def lib_extra(self, threads: int = 0) -> list[str]:
        return []


_COMMON_HYBRID = {
    "preset": Param(str, "medium", "encoder speed preset",
                    ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                     "veryslow", "placebo")),
    "chroma": Param(str, "gray", "gray (monochrome), 420 or 444 (constant chroma planes, as the thesis)",
                    ("gray", "420", "444")),
    "crf": Param((int, float), None, "constant rate factor (encoder default when neither crf nor qp is set)",
                 range=(0, 51), knob=True),
    "qp": Param(int, None, "constant quantiser", range=(0, 51), knob=True),
    "g": Param(int, None, "keyframe interval (GOP length)", range=(1, 10000)),
    "tune": Param(str, None, "encoder tune (e.g. grain)"),
    "extra": Param(list, [], "further ffmpeg output arguments, as a list", item=(str, int, float)),
}


class X264(_HybridVideo):
    name, encoder, lib_params = "x264", "libx264", "-x264-params"
    description = "H.264/AVC via ffmpeg libx264, 8 or 10 bits; qp 0 is lossless"
    params = {**_COMMON_HYBRID, "bits": Param(int, 10, "coded depth: 8 or 10 (x264's maximum)", (8, 10))}
    lossy_method = "ISO_14496_10"
    # PS3.5 8.2.7/8.2.8: H.264 High Profile / Level 4.1 is 8-bit 4:2:0 (YBR_PARTIAL_420), frames up to 1920x1080
    dicom = (WrittenAs(MPEG4HP41, {"chroma": "420", "bits": 8, "qp": (None,) + tuple(range(1, 52))},
                       max_pixels=1920 * 1088, even_size=True, needs="8-bit 4:2:0 colour (YBR_PARTIAL_420), lossy"),)

    @property
    def lossless(self):
        return self.p.get("qp") == 0  # x264 codes qp 0 losslessly (High 4:4:4 Predictive)


class X265(_HybridVideo):
    name, encoder, lib_params = "x265", "libx265", "-x265-params"
    description = "H.265/HEVC via ffmpeg libx265, 8, 10 or 12 bits; lossless=true is bit-exact within 12 bits"
    params = {**_COMMON_HYBRID, "bits": Param(int, 12, "coded depth: 8, 10 or 12", (8, 10, 12)),
              "lossless": Param(bool, False, "x265 lossless mode (bit-exact when values fit the depth); qp 0 is "
                                             "NOT lossless in x265"),
              "x265_params": Param(str, "", "extra x265-params, colon-separated")}
    conflicts = (("crf", "qp", "lossless"),)
    encoder_cost = 2.5
    min_size = (16, 16)  # libx265 refuses smaller pictures ("Image size is too small")
    lossy_method = "ISO_23008_2"
    # PS3.5 8.2.9-8.2.10: HEVC Main / Main 10 Profile / Level 5.1, 4:2:0 (YBR_PARTIAL_420), lossy only
    dicom = (WrittenAs(HEVCMP51, {"chroma": "420", "bits": 8, "lossless": False}, max_pixels=4096 * 2304,
                       even_size=True, needs="8-bit 4:2:0 colour (YBR_PARTIAL_420), lossy"),
             WrittenAs(HEVCM10P51, {"chroma": "420", "bits": 10, "lossless": False}, max_pixels=4096 * 2304,
                       even_size=True, needs="10-bit 4:2:0 colour (YBR_PARTIAL_420), lossy"))

    def lib_extra(self, threads: int = 0):
        extra = ["log-level=error"]
        if threads:  # -threads sets x265's frame threads only; its worker pool (WPP, lookahead) is pools=N
            extra.append(f"pools={threads}")
        if self.p["lossless"]:
            extra.append("lossless=1")
        if self.p["x265_params"]:
            extra.append(self.p["x265_params"])
        return extra


# FFV1 slice counts ffmpeg accepts at level 3 -> the (rows, cols) grid it lays them out in: the smallest frame it codes
SLICE_GRID = {4: (2, 2), 6: (2, 3), 9: (3, 3), 12: (3, 4), 16: (4, 4), 24: (4, 6), 30: (5, 6)}


class Ffv1(FfmpegCodec):
    """FFV1 (RFC 9043), lossless. Defaults by measurement (``bench/codec_defaults.py`` on whole dev CT volumes; the
    README's "Codecs and their defaults", numbers in ``bench/measured/codec_defaults-2026-12-01``): ``-level 3``
    (slice CRCs, the archival version), ``-coder 2``, ``-context 1``, ``-slices 24`` and ``-g`` = the volume, so
    each frame's adaptive states continue from the frame before (a large context model starting cold on every
    frame costs more than it gains). ``-coder`` 0 and 2 give the same bytes above 8 bits (ffmpeg switches
    Golomb-Rice to the range coder). The price: a frame decodes only after the frames before it (medpipe decodes
    whole volumes); ``g: 1`` gives frames that decode alone, and then ``context: 0`` is the better choice."""

    name, encoder = "ffv1", "ffv1"
    description = "FFV1 version 3 (lossless, intra prediction) via ffmpeg, grey up to 16 bits"
    params = {"bits": Param(int, 16, "coded depth (gray<bits>le)", (8, 10, 12, 16)),
              "level": Param(int, 3, "FFV1 version: 3 (slices, slice CRCs; RFC 9043) or 1 (one slice per frame)",
                             (1, 3)),
              "slices": Param(int, 24, "slices per frame at level 3 (each keeps its own context states)",
                              tuple(SLICE_GRID)),
              "coder": Param(int, 2, "0 Golomb-Rice (8-bit data only; ffmpeg uses the range coder above 8 bits), "
                                     "2 range coder with custom state tables; 1 is ffmpeg's ambiguous alias (the "
                                     "default table before ffmpeg 7, the custom one after)", (0, 1, 2)),
              "context": Param(int, 1, "context model: 0 small, 1 large (needs data to adapt: pays with g > 1)",
                               (0, 1)),
              "g": Param(int, None, "keyframe interval in frames (default: one group for the whole volume; "
                                    "1: every frame decodes alone)", range=(1, None))}
    cost = 1.5

    @property
    def min_size(self) -> tuple[int, int]:
        """ffmpeg lays the slices out as a grid and refuses frames smaller than it (smaller frames are padded)."""
        return SLICE_GRID[self.p["slices"]] if self.p["level"] == 3 else (1, 1)

    def __init__(self, where=None, **kwargs):
        super().__init__(where, **kwargs)
        if self.p["level"] == 1 and "slices" in kwargs:
            raise PresetError(f"{where or self.name}: slices apply to level 3 only (level 1 codes one slice per "
                              "frame); remove slices or use level 3")

    def encoder_args(self, threads: int = 0, frames: int = 1):
        p = self.p
        args = ["-c:v", "ffv1", "-level", str(p["level"]), "-g", str(p["g"] or max(1, frames))]
        if p["level"] == 3:
            args += ["-slices", str(p["slices"])]
        return args + ["-coder", str(p["coder"]), "-context", str(p["context"])]


CODECS = [X264, X265, Ffv1]
