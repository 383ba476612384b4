"""Explicit, recorded mapping of stored values into a codec's input depth.

Every codec takes unsigned samples of some depth (8, 10, 12, 16 bits). A volume is mapped by
``coded = (clip(v, lo, hi) - offset) >> shift``; the inverse puts each value back at the centre of its bin.
With shift 0 and no clipping the mapping is exactly reversible; otherwise the row says it lost precision.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DepthMap:
    offset: int  # subtracted from the stored values first
    shift: int  # then right-shifted by this many bits
    lo: int  # values are clipped to [lo, hi] (the data range, or a user window)
    hi: int
    bits_in: int  # bits the (clipped, offset) values span
    bits_out: int  # the codec's input depth
    dtype: str  # the original dtype, restored on inverse
    clipped: bool = False  # a window cut off values present in the data

    @property
    def exact(self) -> bool:
        return self.shift == 0 and not self.clipped

    @property
    def coded_dtype(self):
        # 8-bit sources stay 8-bit (codecs then write 8-bit streams); otherwise 16-bit containers
        return np.uint8 if self.bits_out <= 8 or np.dtype(self.dtype).itemsize == 1 else np.uint16

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        v = pixels.astype(np.int32)
        if self.clipped:
            v = np.clip(v, self.lo, self.hi)
        v -= self.offset
        if self.shift:
            v >>= self.shift
        return v.astype(self.coded_dtype)

    def inverse(self, coded: np.ndarray) -> np.ndarray:
        v = coded.astype(np.int32)
        if self.shift:
            v = (v << self.shift) + (1 << (self.shift - 1))  # centre of the bin halves the error
        v += self.offset
        return np.clip(v, self.lo, self.hi).astype(self.dtype)

    def describe(self) -> str:
        parts = [f"window [{self.lo}, {self.hi}] (clips, lossy)"] if self.clipped else []
        if self.offset:
            parts.append(f"offset {-self.offset:+d}")
        if self.shift:
            parts.append(f">>{self.shift} ({self.bits_in}->{self.bits_out} bits, lossy)")
        return ", ".join(parts) or "identity"

    def as_dict(self) -> dict:
        return {"offset": self.offset, "shift": self.shift, "lo": self.lo, "hi": self.hi,
                "bits_in": self.bits_in, "bits_out": self.bits_out, "dtype": self.dtype, "clipped": self.clipped}


def bits_for(span: int) -> int:
    """Bits needed for values 0..span."""
    return max(1, math.ceil(math.log2(span + 1)))


def plan_depth(value_range: tuple[int, int], dtype, codec_bits: int,
               window: tuple[int, int] | None = None) -> DepthMap:
    """Choose offset and shift so the values fit ``codec_bits``; keep unsigned data that fits untouched."""
    lo, hi = window if window else value_range
    if window is None and lo >= 0 and hi < (1 << codec_bits):
        offset = 0  # already fits: code the stored values as they are
        span_bits = bits_for(hi)
    else:
        offset = lo
        span_bits = bits_for(hi - lo)
    shift = max(0, span_bits - codec_bits)
    clipped = window is not None and (window[0] > value_range[0] or window[1] < value_range[1])
    return DepthMap(offset=offset, shift=shift, lo=lo, hi=hi, bits_in=span_bits, bits_out=codec_bits,
                    dtype=np.dtype(dtype).str, clipped=clipped)
