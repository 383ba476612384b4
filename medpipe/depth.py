"""Explicit, recorded mappings of stored values into a codec's input, and back.

Every codec takes unsigned samples of some depth (8, 10, 12, 16 bits). Two kinds of mapping, both recorded in
results and archives so restoring never guesses:

- :class:`DepthMap`: ``coded = (clip(v, lo, hi) - offset) >> shift``. ``shift`` > 0 loses precision (the inverse
  puts each value back at the centre of its bin); ``shift`` < 0 shifts narrower data *up* to fill a lossy video
  codec's depth (exact: the inverse rounds back), so one crf means one quantiser on every input depth.
- :class:`TableMap`: a sorted table of the distinct values present; the codec codes each value's index. Exact, and
  it lets a 12-bit lossless codec take a 13-bit CT with fewer than 4096 distinct values. Lossless coding only.

``side_bytes`` is what the decoder needs besides the streams (the round trip adds it to the compressed size).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import CodecSkip


def bits_for(span: int) -> int:
    """Bits needed for values 0..span."""
    return max(1, math.ceil(math.log2(span + 1)))


@dataclass(frozen=True)
class DepthMap:
    offset: int  # subtracted from the stored values first
    shift: int  # then right-shifted by this many bits (negative: left-shifted, exact)
    lo: int  # values are clipped to [lo, hi] (the data range, or a user window)
    hi: int
    bits_in: int  # bits the (clipped, offset) values span
    bits_out: int  # the codec's input depth
    dtype: str  # the original dtype, restored on inverse
    clipped: bool = False  # a window cut off values present in the data

    kind = "depth"

    @property
    def exact(self) -> bool:
        return self.shift <= 0 and not self.clipped

    @property
    def identity(self) -> bool:
        return self.offset == 0 and self.shift == 0 and not self.clipped

    @property
    def side_bytes(self) -> int:
        """offset + shift, two int32 the decoder needs (none for the identity)."""
        return 0 if self.identity else 8

    @property
    def coded_dtype(self):
        # 8-bit sources stay 8-bit (codecs then write 8-bit streams) unless shifted up past 8 bits
        wide = self.bits_out > 8 and (np.dtype(self.dtype).itemsize > 1 or self.shift < 0)
        return np.uint16 if wide else np.uint8

    @property
    def coded_bits(self) -> int:
        """Bits the coded samples occupy (what the stream codes)."""
        return self.bits_out if self.shift else min(self.bits_out, self.bits_in)

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        v = pixels.astype(np.int32)
        if self.clipped:
            v = np.clip(v, self.lo, self.hi)
        v -= self.offset
        if self.shift > 0:
            v >>= self.shift
        elif self.shift < 0:
            v <<= -self.shift
        return v.astype(self.coded_dtype)

    def inverse(self, coded: np.ndarray) -> np.ndarray:
        v = coded.astype(np.int32)
        if self.shift > 0:
            v = (v << self.shift) + (1 << (self.shift - 1))  # centre of the bin halves the error
        elif self.shift < 0:
            v = (v + (1 << (-self.shift - 1))) >> -self.shift  # nearest: a lossy codec's error rounds back
        v += self.offset
        return np.clip(v, self.lo, self.hi).astype(self.dtype)

    def describe(self) -> str:
        parts = [f"window [{self.lo}, {self.hi}] (clips, lossy)"] if self.clipped else []
        if self.offset:
            parts.append(f"offset {-self.offset:+d}")
        if self.shift > 0:
            parts.append(f">>{self.shift} ({self.bits_in}->{self.bits_out} bits, lossy)")
        elif self.shift < 0:
            parts.append(f"<<{-self.shift} ({self.bits_in}->{self.bits_out} bits, exact)")
        return ", ".join(parts) or "identity"

    def as_dict(self) -> dict:
        return {"kind": "depth", "offset": self.offset, "shift": self.shift, "lo": self.lo, "hi": self.hi,
                "bits_in": self.bits_in, "bits_out": self.bits_out, "dtype": self.dtype, "clipped": self.clipped}


@dataclass(frozen=True, eq=False)
class TableMap:
    table: np.ndarray  # int32, sorted distinct values
    bits_out: int

    kind = "table"
    exact = True
    clipped = False
    shift = 0

    @property
    def side_bytes(self) -> int:
        return 2 * len(self.table)  # the table, 2 bytes a value

    @property
    def coded_dtype(self):
        return np.uint8 if self.bits_out <= 8 else np.uint16

    @property
    def coded_bits(self) -> int:
        return bits_for(len(self.table) - 1)

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.table, pixels.astype(np.int32)).astype(self.coded_dtype)

    def inverse(self, coded: np.ndarray) -> np.ndarray:
        """Coded samples -> stored values as int32 (the caller casts to the source dtype)."""
        return self.table[np.minimum(coded.astype(np.int64), len(self.table) - 1)]

    def describe(self) -> str:
        return f"value table ({len(self.table)} distinct values -> {self.bits_out}-bit indices, exact)"

    def as_dict(self) -> dict:
        return {"kind": "table", "bits_out": self.bits_out, "table": self.table.tolist()}


Mapping = DepthMap | TableMap


def mapping_from_dict(d: dict) -> Mapping:
    """The inverse of ``as_dict`` (archives read their mapping back)."""
    if d.get("kind") == "table":
        return TableMap(np.asarray(d["table"], np.int32), int(d["bits_out"]))
    fields = {k: d[k] for k in ("offset", "shift", "lo", "hi", "bits_in", "bits_out", "dtype", "clipped")}
    return DepthMap(**fields)


def stored_pattern(values: np.ndarray, precision: int) -> np.ndarray:
    """The two's complement bit pattern of each value in ``precision`` bits, as unsigned samples (bits above are
    zero): how codecs without signed samples (the JPEG family, JPEG XL) carry signed stored values."""
    unsigned = np.uint8 if precision <= 8 else np.uint16
    return (values.astype(np.int64) & ((1 << precision) - 1)).astype(unsigned)


def values_from_pattern(pattern: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Stored values back from such samples: keep Bits Stored bits, sign-extend from the High Bit when signed
    (PS3.5 8.1.1: the bits above are unused, whatever they hold)."""
    values = pattern.astype(np.int64) & ((1 << bits_stored) - 1)
    if signed:
        values = np.where(values >> (bits_stored - 1), values - (1 << bits_stored), values)
    return values


def plan_depth(value_range: tuple[int, int], dtype, codec_bits: int, window: tuple[int, int] | None = None,
               fill: bool = False) -> DepthMap:
    """Choose offset and shift so the values fit ``codec_bits``; keep unsigned data that fits untouched unless
    ``fill`` asks to shift narrower data up to the codec's depth (lossy video: one crf, one quantiser)."""
    lo, hi = window if window else value_range
    if window is None and lo >= 0 and hi < (1 << codec_bits) and not fill:
        offset = 0  # already fits: code the stored values as they are
        span_bits = bits_for(hi)
    else:
        offset = lo
        span_bits = bits_for(hi - lo)
    shift = span_bits - codec_bits if (span_bits > codec_bits or fill) else 0
    clipped = window is not None and (window[0] > value_range[0] or window[1] < value_range[1])
    return DepthMap(offset=offset, shift=shift, lo=lo, hi=hi, bits_in=span_bits, bits_out=codec_bits,
                    dtype=np.dtype(dtype).str, clipped=clipped)


def distinct_values(arrays) -> np.ndarray:
    """Sorted distinct values of integer arrays (bincount: far faster than np.unique on 100 M samples)."""
    lo = min(int(a.min()) for a in arrays)
    hi = max(int(a.max()) for a in arrays)
    seen = np.zeros(hi - lo + 1, bool)
    for a in arrays:
        for sl in a:  # slice by slice: bounded memory
            seen |= np.bincount((sl.astype(np.int64) - lo).ravel(), minlength=hi - lo + 1).astype(bool)
    return (np.flatnonzero(seen) + lo).astype(np.int32)


def plan_group_mapping(arrays, codec_bits: int, lossless: bool, allow_table: bool = True,
                       codec_name: str = "codec") -> Mapping:
    """The mapping for several arrays coded together at ``codec_bits``: offset/shift when that is exact (or the
    codec is lossy), else a value table; a lossless codec never gets a lossy mapping (CodecSkip says why)."""
    lo = min(int(a.min()) for a in arrays)
    hi = max(int(a.max()) for a in arrays)
    dm = plan_depth((lo, hi), np.int32, codec_bits)
    if dm.exact or not lossless:
        return dm
    if allow_table:
        table = distinct_values(arrays)
        if len(table) <= (1 << codec_bits):
            return TableMap(table, codec_bits)
        why = f"and {len(table)} distinct values do not fit a {codec_bits}-bit value table either"
    else:
        why = "(value table disabled)"
    raise CodecSkip(f"values {lo}..{hi} span {bits_for(hi - lo)} bits {why}: {codec_name} at {codec_bits} bits "
                    "cannot code this losslessly; use codec ffv1 (16-bit) or jpegxl")
