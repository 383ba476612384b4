"""Value tables: a volume that uses few of the values in its range is coded as ranks into the list of the values
it uses, and the list travels in the stream.

Why: a mammogram or radiograph whose values went through a look-up table (the dev set's MG crop uses 878 of
26120 values, a Canon DX 823 of 4096) has a comb-like histogram; predicted in value space its residuals are
large and mostly impossible, in rank space the image is smooth again. The encoder decides by a trial on a few
slices (the choice is per volume, recorded in the stream's slab table): ranks win on such images and lose on CT,
whose sparse tails (bone, metal) make rank space non-linear.
"""
from __future__ import annotations

import zlib

import numpy as np

from .stream import StreamError

TABLE_FRACTION = 0.75  # a table is tried when at most this fraction of the values in the range occurs
TRIAL_SLICES = 4  # middle slices coded both ways to choose


def used_values(work: np.ndarray, maxval: int) -> np.ndarray:
    """The values 0..maxval that occur, ascending (marked, not counted: np.bincount would convert the volume to
    64-bit first)."""
    seen = np.zeros(maxval + 1, bool)
    seen[work.reshape(-1)] = True
    return np.flatnonzero(seen)


def worth_trying(used: np.ndarray, maxval: int) -> bool:
    return len(used) <= TABLE_FRACTION * (maxval + 1)


def to_ranks(work: np.ndarray, used: np.ndarray) -> np.ndarray:
    lut = np.zeros(int(used[-1]) + 1, np.int32)
    lut[used] = np.arange(len(used), dtype=np.int32)
    return lut[work]


def trial_slices(work: np.ndarray) -> np.ndarray:
    mid = work.shape[0] // 2
    return work[max(0, mid - TRIAL_SLICES // 2):][:TRIAL_SLICES]


def pack_table(used: np.ndarray) -> bytes:
    """The steps between used values (each 1..65535) as uint16, deflated; the first value is always 0."""
    return zlib.compress(np.diff(used).astype("<u2").tobytes(), 9)


def unpack_table(data: bytes, maxval: int) -> np.ndarray:
    """The used values from a stream's table; StreamError unless they run from 0 to maxval, strictly rising.
    The inflated size is bounded by the range before anything is inflated."""
    limit = 2 * maxval
    inflater = zlib.decompressobj()
    try:
        steps = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise StreamError(f"lossless3d stream damaged: its value table does not inflate ({exc})") from None
    if len(steps) > limit or len(steps) % 2 or inflater.unconsumed_tail or not inflater.eof:
        raise StreamError("lossless3d stream damaged: its value table does not fit the value range")
    steps = np.frombuffer(steps, "<u2").astype(np.int64)
    used = np.concatenate([[0], np.cumsum(steps)])
    if len(used) < 2 or steps.min() < 1 or used[-1] != maxval:
        raise StreamError("lossless3d stream damaged: its value table does not run from 0 to the maximum")
    return used.astype(np.int32)
