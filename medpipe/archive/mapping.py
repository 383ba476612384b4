"""The value mapping of a group: stored values of every scan -> one unsigned codec input, and back.

Three kinds, recorded in the manifest so restoring never guesses:

- ``depth``: ``(v - offset) >> shift`` (:mod:`medpipe.depth`); exact when ``shift`` is 0.
- ``table``: a sorted table of the distinct values present in the group; the codec codes each value's index.
  Exact, and it widens what a 12-bit lossless codec can take: a 13-bit CT (-2000..4095) with fewer than 4096
  distinct values fits. Only for lossless coding: indices are not proportional to values, so a lossy codec's
  error in index units would become an arbitrary error in values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..depth import DepthMap, bits_for, plan_depth
from ..errors import CodecSkip


@dataclass
class ValueMap:
    kind: str  # "depth" or "table"
    bits: int  # codec input depth
    depth: DepthMap | None = None
    table: np.ndarray | None = None  # int32, sorted, for kind "table"

    @property
    def exact(self) -> bool:
        return self.kind == "table" or bool(self.depth and self.depth.exact)

    @property
    def coded_dtype(self):
        return np.uint8 if self.bits <= 8 else np.uint16

    @property
    def side_bytes(self) -> int:
        """Bytes the decoder needs besides the stream: the table (2 bytes a value) or offset + shift."""
        return 2 * len(self.table) if self.kind == "table" else 8

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        if self.kind == "table":
            idx = np.searchsorted(self.table, pixels.astype(np.int32))
            return idx.astype(self.coded_dtype)
        return self.depth.forward(pixels).astype(self.coded_dtype, copy=False)

    def inverse(self, coded: np.ndarray) -> np.ndarray:
        """Coded samples -> stored values as int32 (each scan casts to its own dtype)."""
        if self.kind == "table":
            return self.table[np.minimum(coded.astype(np.int64), len(self.table) - 1)]
        return self.depth.inverse(coded).astype(np.int32)

    def describe(self) -> str:
        if self.kind == "table":
            return f"value table ({len(self.table)} distinct values -> {self.bits}-bit indices, exact)"
        return self.depth.describe()

    def as_dict(self) -> dict:
        d = {"kind": self.kind, "bits": self.bits, "exact": self.exact, "describe": self.describe()}
        if self.kind == "table":
            d["table"] = self.table.tolist()
        else:
            d["depth"] = self.depth.as_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ValueMap":
        if d["kind"] == "table":
            return cls("table", int(d["bits"]), table=np.asarray(d["table"], np.int32))
        return cls("depth", int(d["bits"]), depth=DepthMap(**d["depth"]))


def distinct_values(arrays) -> np.ndarray:
    """Sorted distinct values of integer arrays (bincount: far faster than np.unique on 100 M samples)."""
    lo = min(int(a.min()) for a in arrays)
    hi = max(int(a.max()) for a in arrays)
    seen = np.zeros(hi - lo + 1, bool)
    for a in arrays:
        for sl in a:  # slice by slice: bounded memory
            seen |= np.bincount((sl.astype(np.int64) - lo).ravel(), minlength=hi - lo + 1).astype(bool)
    return (np.flatnonzero(seen) + lo).astype(np.int32)


def plan_mapping(arrays, codec_bits: int, lossless: bool, allow_table: bool = True,
                 codec_name: str = "codec") -> ValueMap:
    """The mapping for a group coded at ``codec_bits``; a lossless codec never gets a lossy mapping."""
    lo = min(int(a.min()) for a in arrays)
    hi = max(int(a.max()) for a in arrays)
    dm = plan_depth((lo, hi), np.int32, codec_bits)
    if dm.exact or not lossless:
        return ValueMap("depth", codec_bits, depth=dm)
    if allow_table:
        table = distinct_values(arrays)
        if len(table) <= (1 << codec_bits):
            return ValueMap("table", codec_bits, table=table)
        why = f"and {len(table)} distinct values do not fit a {codec_bits}-bit value table either"
    else:
        why = "(value table disabled)"
    raise CodecSkip(f"values {lo}..{hi} span {bits_for(hi - lo)} bits {why}: {codec_name} at {codec_bits} bits "
                    "cannot code this group losslessly; use codec ffv1 (16-bit) or jpegxl")
