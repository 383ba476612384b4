"""The one codec interface, and everything a codec knows about itself, as data.

A codec takes unsigned samples (slices x rows x cols, uint8 or uint16, already mapped to its depth by
:mod:`medpipe.depth`) and returns :class:`Encoded` bytes; ``decode`` gives the same array back. Timing and sizing
are done by :mod:`medpipe.roundtrip` around these two calls only; quality by :mod:`medpipe.metrics` on what it
brings back.

What a codec class declares (in the manner of pydicom's encoder capability tables), so no other module needs an
``if codec.name == ...``:

- ``params``: its parameters as :class:`medpipe.options.Option` (type, range, choices, which are quality knobs);
  ``conflicts``: parameters that may not be given together (refused when the preset loads);
- ``max_bits`` / ``depth()``: the deepest input it codes; ``fixed_depth``: the stream is always coded at that depth
  (video pixel formats) rather than at the data's; ``fills_depth``: lossy video whose quantiser is tied to the coded
  depth (narrower data is shifted up so one crf means one quantiser on every input);
- ``lossless`` / ``error_bound``: what it guarantees, which the round trip checks and tests use as tolerance;
- ``cost``: relative cost per voxel (scheduling hint only: the longest cells start first);
- ``dicom``: the DICOM transfer syntaxes (rows of :mod:`medpipe.syntaxes`) it can be written as, and under which
  conditions (:class:`WrittenAs`);
  ``lossy_method``: the Lossy Image Compression Method defined term (PS3.3 C.7.6.1.1.5.1);
- ``min_size``: the smallest frame the encoder opens (smaller frames are edge-padded and cropped back).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import CodecUnavailable, PresetError
from ..ffmpeg import Ffmpeg
from ..options import Option, check_value, did_you_mean
from ..syntaxes import TABLE

Param = Option  # a codec parameter is an option like any other


@dataclass
class Encoded:
    """Everything the decoder needs: per-slice streams or one video stream, plus the array's shape/dtype."""

    chunks: list[bytes]
    shape: tuple[int, int, int]
    dtype: str
    side: dict = field(default_factory=dict)  # small codec-specific facts (e.g. padding) the decoder needs

    @property
    def nbytes(self) -> int:
        return sum(len(c) for c in self.chunks)


@dataclass(frozen=True)
class WrittenAs:
    """A codec's configurations that can be written in transfer syntax ``uid`` (a row of the table): ``when`` maps
    parameter names to the values they must have (a tuple: any of them); ``max_pixels`` bounds rows x cols (video
    levels); ``even_size`` asks for even rows and columns (4:2:0 video)."""

    uid: str
    when: dict = field(default_factory=dict)
    max_pixels: int | None = None
    even_size: bool = False
    needs: str = ""  # what the syntax is, in words, for the row's reason

    @property
    def name(self) -> str:
        return TABLE[self.uid].short

    def refusal(self, params: dict) -> str | None:
        for key, want in self.when.items():
            allowed = want if isinstance(want, tuple) else (want,)
            if params.get(key) not in allowed:
                what = self.needs or f"{key} {' or '.join(map(str, allowed))}"
                return f"{self.name} is {what}; this configuration has {key}={params.get(key)!r}"
        return None


class CodecContext:
    """What codecs may need from the run: the one ffmpeg runner (resolved on first use), its thread budget and
    timeout policy. The run's commands are read back through :attr:`commands`."""

    def __init__(self, ffmpeg_path: str | None = None, threads: int = 0, timeout_factor: float = 1.0):
        self.ffmpeg_path = ffmpeg_path
        self.threads = threads
        self.timeout_factor = timeout_factor
        self._ffmpeg: Ffmpeg | None = None

    @property
    def ffmpeg(self) -> Ffmpeg:
        if self._ffmpeg is None:
            self._ffmpeg = Ffmpeg.locate(self.ffmpeg_path, threads=self.threads, timeout_factor=self.timeout_factor)
        return self._ffmpeg

    @property
    def ffmpeg_used(self) -> Ffmpeg | None:
        """The runner if any codec used ffmpeg in this context, else None (provenance says 'no ffmpeg')."""
        return self._ffmpeg

    @property
    def commands(self) -> list[str]:
        return list(self._ffmpeg.log) if self._ffmpeg else []


# Parameters every configuration accepts; the round trip applies them, not the codec.
COMMON_PARAMS: dict[str, Option] = {
    "label": Option(str, None, "name of this configuration in tables (default: codec + settings)"),
    "window": Option(list, None, "[lo, hi] stored values kept before mapping to the codec depth (clips: lossy)",
                     item=int),
}


class Codec:
    """Base class. Subclasses set the class attributes and implement ``encode``/``decode`` (or the per-slice
    ``encode_slice``/``decode_slice``)."""

    name: ClassVar[str]  # registry key, used as ``codec:`` in presets
    family: ClassVar[str]  # library or tool behind it
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()  # importable modules; missing -> "not available: install ..."
    install_hint: ClassVar[str] = ""
    params: ClassVar[dict[str, Option]] = {}
    conflicts: ClassVar[tuple[tuple[str, ...], ...]] = ()  # parameters that may not be set together
    lossless_coding: ClassVar[bool] = True  # class default; may depend on parameters (see ``lossless``)
    reduces_depth_ok: ClassVar[bool] = False  # lossless coding of a reduced-depth input is still a valid row
    per_slice: ClassVar[bool] = True
    max_bits: ClassVar[int] = 16
    fills_depth: ClassVar[bool] = False
    fixed_depth: ClassVar[bool] = False  # the stream is coded at depth() whatever the data span (video pixel formats)
    cost: ClassVar[float] = 2.0
    dicom: ClassVar[tuple[WrittenAs, ...]] = ()
    lossy_method: ClassVar[str | None] = None
    min_size: ClassVar[tuple[int, int]] = (1, 1)

    def __init__(self, where: str | None = None, **kwargs):
        """Parameters are checked against ``params`` (types, ranges, choices) and ``conflicts``; an error names
        ``where`` (e.g. the preset entry) and the key."""
        where = where or self.name
        unknown = set(kwargs) - set(self.params)
        if unknown:
            key = sorted(unknown)[0]
            raise PresetError(f"{where}: codec '{self.name}' has no parameter '{key}'{did_you_mean(key, self.params)}")
        for key, value in kwargs.items():
            check_value(value, self.params[key], f"{where}.{key}")
        for group in self.conflicts:
            given = [k for k in group if kwargs.get(k) is not None and kwargs.get(k) is not False]
            if len(given) > 1:
                raise PresetError(f"{where}: {' and '.join(given)} cannot be set together "
                                  f"({self.conflict_reason(given)}); keep one")
        self.p = {k: kwargs.get(k, spec.default) for k, spec in self.params.items()}

    @staticmethod
    def conflict_reason(given: list[str]) -> str:
        return "each sets the rate control on its own"

    # ---- what the configuration is
    @property
    def lossless(self) -> bool:
        """True when the codec itself reproduces its input exactly."""
        return self.lossless_coding

    @property
    def error_bound(self) -> int | None:
        """Guaranteed max |error| in coded units (0 lossless, k for near-lossless), None when unbounded."""
        return 0 if self.lossless else None

    def depth(self) -> int:
        """Deepest input this configuration codes (bits); wider data is mapped down by the round trip, recorded."""
        return self.max_bits

    def setting(self) -> str:
        """Human-readable settings (non-default parameters), for tables."""
        return ", ".join(f"{k}={v}" for k, v in self.p.items() if v != self.params[k].default) or "default"

    def canonical(self) -> dict:
        return {"codec": self.name, **{k: v for k, v in sorted(self.p.items())}}

    def curve(self) -> str:
        """The rate-distortion curve this configuration belongs to: codec + non-default parameters that are not
        quality knobs (configurations on one curve differ only in crf, qp, near, ...)."""
        rest = [f"{k}={' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(self.p.items())
                if not self.params[k].knob and v != self.params[k].default]
        return self.name + (f" ({', '.join(rest)})" if rest else "")

    def knobs(self) -> dict:
        return {k: v for k, v in self.p.items() if self.params[k].knob and v is not None}

    def cost_per_voxel(self) -> float:
        return self.cost

    # ---- DICOM
    def dicom_syntax(self, shape: tuple[int, int, int]) -> tuple[str | None, str]:
        """(transfer syntax UID, "") this configuration can be written as for frames of ``shape``, or (None, why)."""
        if not self.dicom:
            return None, f"no DICOM transfer syntax: {self.name} is not a DICOM pixel encoding"
        reasons = []
        for syn in self.dicom:
            why = syn.refusal(self.p)
            if why is None and syn.even_size and (shape[1] % 2 or shape[2] % 2):
                why = f"{syn.name} needs even rows and columns, the frames are {shape[1]}x{shape[2]}"
            if why is None and syn.max_pixels and shape[1] * shape[2] > syn.max_pixels:
                why = f"{shape[2]}x{shape[1]} exceeds the frame size {syn.name} allows"
            if why is None:
                return syn.uid, ""
            reasons.append(why)
        return None, "no DICOM transfer syntax: " + "; ".join(reasons)

    # ---- availability
    @classmethod
    def missing(cls) -> str | None:
        """None when usable here, else what to install."""
        for mod in cls.requires:
            try:
                importlib.import_module(mod)
            except ImportError:
                return f"not available: install {cls.install_hint or mod}"
        return None

    def check(self, ctx: CodecContext) -> None:
        """Raise CodecUnavailable when this configuration cannot run here (ctx gives ffmpeg etc.)."""
        reason = self.missing()
        if reason:
            raise CodecUnavailable(reason)

    def version(self, ctx: CodecContext) -> str:
        return self.family

    def take_source(self, volume) -> None:
        """Before a cell: a codec that codes the source's own bitstreams, not values (``jpegxl-jpeg``), takes them
        from the volume here, or raises CodecSkip saying why there are none. Values-only codecs need nothing."""

    def prepare(self, ctx: CodecContext) -> float:
        """Do now what the first call would otherwise pay for inside the timing (a JIT compile, a cache load):
        the round trip calls this before it times. Returns the seconds spent, 0.0 when there was nothing to do."""
        return 0.0

    # ---- the work (timed by the round trip)
    def encode(self, frames: np.ndarray, ctx: CodecContext) -> Encoded:
        return Encoded([self.encode_slice(s) for s in frames], frames.shape, frames.dtype.str)

    def decode(self, enc: Encoded, ctx: CodecContext) -> np.ndarray:
        out = np.empty(enc.shape, np.dtype(enc.dtype))
        for i, chunk in enumerate(enc.chunks):
            out[i] = self.decode_slice(chunk)
        return out

    def encode_slice(self, sl: np.ndarray) -> bytes:
        raise NotImplementedError

    def decode_slice(self, data: bytes) -> np.ndarray:
        raise NotImplementedError


class NearLossless(Codec):
    """JPEG-LS style NEAR parameter: 0 is lossless, k > 0 guarantees |error| <= k (checked by the round trip)."""

    params = {"near": Option(int, 0, "NEAR: maximum absolute error per sample (0 = lossless)", range=(0, 255),
                             knob=True)}
    lossy_method = "ISO_14495_1"

    @property
    def lossless(self):
        return self.p["near"] == 0

    @property
    def error_bound(self):
        return self.p["near"]
