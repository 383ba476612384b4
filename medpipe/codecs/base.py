"""The one codec interface.

A codec takes unsigned samples (slices x rows x cols, uint8 or uint16, already mapped to its depth by
:mod:`medpipe.depth`) and returns :class:`Encoded` bytes; ``decode`` gives the same array shape back. Timing,
sizing and metrics are done by :mod:`medpipe.bench` around these two calls only.

Each codec declares its parameters as data (:class:`Param`), so presets are validated against them and the
test matrix can loop over every registered codec.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import CodecUnavailable, PresetError


@dataclass(frozen=True)
class Param:
    type: type | tuple
    default: Any
    help: str
    choices: tuple | None = None


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


# Parameters every codec accepts; the bench applies them, not the codec.
COMMON_PARAMS: dict[str, Param] = {
    "label": Param(str, None, "name of this configuration in tables (default: codec + settings)"),
    "window": Param(list, None, "[lo, hi] stored values kept before mapping to the codec depth (clips: lossy)"),
}


class Codec:
    """Base class. Subclasses set the class attributes and implement ``encode``/``decode``."""

    name: ClassVar[str]  # registry key, used as ``codec:`` in presets
    family: ClassVar[str]  # library or tool behind it
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()  # importable modules; missing -> "not available: install ..."
    install_hint: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    lossless_coding: ClassVar[bool] = True  # class default; may depend on parameters (see ``lossless``)
    reduces_depth_ok: ClassVar[bool] = False  # lossless coding of a reduced-depth input is still a valid row
    per_slice: ClassVar[bool] = True
    max_bits: ClassVar[int] = 16
    dicom_ts: ClassVar[str | None] = None  # DICOM transfer syntax UID this configuration fits, if any

    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(self.params)
        if unknown:
            raise PresetError(f"codec '{self.name}' has no parameter {sorted(unknown)}")
        self.p = {k: kwargs.get(k, spec.default) for k, spec in self.params.items()}

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
        """Deepest input this configuration codes (bits); wider data is mapped down by the bench, recorded."""
        return self.max_bits

    def setting(self) -> str:
        """Human-readable settings (non-default parameters), for tables."""
        return ", ".join(f"{k}={v}" for k, v in self.p.items() if v != self.params[k].default) or "default"

    def canonical(self) -> dict:
        return {"codec": self.name, **{k: v for k, v in sorted(self.p.items())}}

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

    def check(self, ctx) -> None:
        """Raise CodecUnavailable when this configuration cannot run here (ctx gives ffmpeg etc.)."""
        reason = self.missing()
        if reason:
            raise CodecUnavailable(reason)

    def version(self, ctx) -> str:
        return self.family

    # ---- the work (timed by bench)
    def encode(self, frames: np.ndarray, ctx) -> Encoded:
        return Encoded([self.encode_slice(s) for s in frames], frames.shape, frames.dtype.str)

    def decode(self, enc: Encoded, ctx) -> np.ndarray:
        out = np.empty(enc.shape, np.dtype(enc.dtype))
        for i, chunk in enumerate(enc.chunks):
            out[i] = self.decode_slice(chunk)
        return out

    def encode_slice(self, sl: np.ndarray) -> bytes:
        raise NotImplementedError

    def decode_slice(self, data: bytes) -> np.ndarray:
        raise NotImplementedError


class NearLossless(Codec):
    """JPEG-LS style NEAR parameter: 0 is lossless, k > 0 guarantees |error| <= k (checked by the bench)."""

    params = {"near": Param(int, 0, "NEAR: maximum absolute error per sample (0 = lossless)")}

    @property
    def lossless(self):
        return self.p["near"] == 0

    @property
    def error_bound(self):
        return self.p["near"]
