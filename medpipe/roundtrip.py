"""The one round trip: map values -> encode -> decode -> undo the mapping, timed and sized in one place.

The codec matrix, the archive's codec candidates and its comparisons call :func:`round_trip`. One place still
times a codec outside it: the archive's ``jpegxl-dicom`` candidate (``archive.candidates._dicom_trial``) codes
frame by frame with the same :func:`timed`. Nothing else times a codec.

- Timing: ``time.perf_counter`` around the codec call alone, encode and decode apart, best of ``repeat``; the
  mapping is timed apart (``map_ms``); metrics and file I/O are outside. A codec's one-time preparation (a JIT
  compile or cache load, :meth:`Codec.prepare`) runs before the timed calls and is reported apart (``prepare_ms``).
- Size: every byte the decoder needs = the codec's streams + the mapping's side data (:attr:`RoundTrip.size`).
- Exactness: a codec that declares itself lossless is checked sample by sample against what it was given, so a
  broken lossless codec is told apart from a lossy mapping.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .codecs import Codec, CodecContext, Encoded
from .depth import Mapping
from .errors import MedpipeError


def timed(fn, repeat: int = 1):
    """(result of the last call, fastest wall time in ms)."""
    best, result = float("inf"), None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return result, best * 1000.0


def by_slice(fn, volume: np.ndarray, dtype) -> np.ndarray:
    """``fn`` applied slice by slice into one new array: no whole-volume int32 temporaries (bounded memory)."""
    out = np.empty(volume.shape, dtype)
    for i, sl in enumerate(volume):
        out[i] = fn(sl)
    return out


@dataclass
class RoundTrip:
    encoded: Encoded
    mapping: Mapping
    restored: np.ndarray  # stored values after decoding and undoing the mapping (the source's dtype)
    encode_ms: float
    decode_ms: float
    map_ms: float
    codec_mismatches: int  # samples a lossless codec did not reproduce (0 for lossy codecs: not checked)
    prepare_ms: float = 0.0  # the codec's one-time preparation in this process (0 once done), not in encode_ms

    @property
    def size(self) -> int:
        """Every byte the decoder needs: streams plus the mapping's side data."""
        return self.encoded.nbytes + self.mapping.side_bytes


def round_trip(pixels: np.ndarray, codec: Codec, mapping: Mapping, ctx: CodecContext, *, repeat: int = 1,
               restore_dtype=None) -> RoundTrip:
    """Code ``pixels`` (slices x rows x cols) with ``codec`` through ``mapping`` and bring them back."""
    t0 = time.perf_counter()
    coded = by_slice(mapping.forward, pixels, mapping.coded_dtype)
    map_ms = (time.perf_counter() - t0) * 1000
    prepare_ms = codec.prepare(ctx) * 1000
    enc, encode_ms = timed(lambda: codec.encode(coded, ctx), repeat)
    dec, decode_ms = timed(lambda: codec.decode(enc, ctx), repeat)
    t0 = time.perf_counter()
    if tuple(dec.shape) != tuple(coded.shape):
        raise MedpipeError(f"{codec.name}: decoder returned shape {dec.shape}, expected {coded.shape}")
    mismatches = sum(int(np.count_nonzero(d != c)) for d, c in zip(dec, coded)) if codec.lossless else 0
    del coded  # memory: at most the source and two coded-size arrays at a time
    restored = by_slice(mapping.inverse, dec, restore_dtype or pixels.dtype)
    del dec
    map_ms += (time.perf_counter() - t0) * 1000
    return RoundTrip(enc, mapping, restored, encode_ms, decode_ms, map_ms, mismatches, prepare_ms)
