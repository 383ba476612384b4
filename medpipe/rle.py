"""RLE Lossless (PS3.5 Annex G) decoding that checks everything the format states, so a damaged frame is named
instead of decoded to wrong values (pydicom's own RLE decoder pads or cuts a segment of the wrong length
silently; pylibjpeg-rle panics on some damaged frames).

What Annex G fixes, and what is checked here:

- G.5 the RLE Header: 64 bytes, 16 little-endian uint32: the number of segments (1..15), then the offset of each
  segment (unused ones 0). The first segment starts at 64; offsets increase; each lies inside the frame.
- G.2 the segments: one per byte of each sample (BitsAllocated / 8 per sample, times Samples per Pixel), most
  significant byte first, each sample's bytes in turn (planes: Planar Configuration 1).
- G.3.1 the byte segment decoded (PackBits): a header byte n in 0..127 copies the next n + 1 bytes; -127..-1
  repeats the next byte -n + 1 times; -128 does nothing. Every segment decodes to exactly Rows x Columns bytes:
  a run that would overrun it, or a segment that ends short, is damage. G.3.2: a segment may end with one
  padding byte.
"""
from __future__ import annotations

import struct

import numpy as np

HEADER_BYTES = 64


class RleError(ValueError):
    """The frame contradicts PS3.5 Annex G (the message says where)."""


def segment_offsets(data: bytes, expected: int) -> list[int]:
    """G.5: the segment offsets, checked against the header's count and the frame's length."""
    if len(data) < HEADER_BYTES:
        raise RleError(f"{len(data)} bytes, shorter than the 64-byte RLE header (G.5)")
    count, *offsets = struct.unpack("<16I", data[:HEADER_BYTES])
    if count != expected:
        raise RleError(f"the RLE header gives {count} segments, the pixel module needs {expected} (G.2)")
    used = offsets[:count]
    if used[0] != HEADER_BYTES or any(b <= a for a, b in zip(used, used[1:])) or used[-1] >= len(data):
        raise RleError(f"segment offsets {used} are not increasing from 64 inside the {len(data)} bytes (G.5)")
    if any(offsets[count:]):
        raise RleError("offsets of unused segments are not 0 (G.5)")
    return used + [len(data)]


def unpack_segment(seg: bytes, size: int, which: int) -> bytearray:
    """G.3.1: PackBits -> exactly ``size`` bytes, or RleError."""
    out = bytearray(size)
    i = o = 0
    n = len(seg)
    while o < size:
        if i >= n:
            raise RleError(f"segment {which} ends after {o} of {size} bytes (G.3.1)")
        h = seg[i]
        i += 1
        if h < 128:  # literal run of h + 1 bytes
            k = h + 1
            if i + k > n or o + k > size:
                raise RleError(f"segment {which}: a literal run at byte {i - 1} runs past the "
                               f"{'segment' if i + k > n else 'frame'} (G.3.1)")
            out[o:o + k] = seg[i:i + k]
            i += k
            o += k
        elif h > 128:  # replicate run of 257 - h bytes
            k = 257 - h
            if i >= n or o + k > size:
                raise RleError(f"segment {which}: a replicate run at byte {i - 1} runs past the "
                               f"{'segment' if i >= n else 'frame'} (G.3.1)")
            out[o:o + k] = bytes((seg[i],)) * k
            i += 1
            o += k
    if n - i > 1:  # G.3.2: at most one padding byte after the last run
        raise RleError(f"segment {which}: {n - i} bytes left after its {size} bytes were decoded (G.3.1)")
    return out  # no bytes() copy: one segment in memory once


def decode_frame(data: bytes, rows: int, cols: int, samples: int = 1, bits_allocated: int = 16) -> np.ndarray:
    """One RLE frame -> (rows, cols) or (rows, cols, samples) unsigned samples; RleError when it is damaged.

    Memory: the output array, plus one segment (Rows x Columns bytes) at a time, written straight into its byte
    of every cell -- at most twice the decoded size (8-bit), never wider temporaries."""
    nbytes = bits_allocated // 8
    if bits_allocated % 8 or nbytes not in (1, 2, 4):
        raise RleError(f"BitsAllocated {bits_allocated} cannot be coded in RLE (G.2)")
    bounds = segment_offsets(data, samples * nbytes)
    size = rows * cols
    for k in range(samples * nbytes):  # G.3.1: two bytes replicate at most 128, so a short segment is known now
        if 64 * (bounds[k + 1] - bounds[k]) < size:
            raise RleError(f"segment {k + 1}: {bounds[k + 1] - bounds[k]} bytes cannot decode to the {size} bytes "
                           "of a frame (a replicate run gives at most 128 bytes for 2, G.3.1)")
    out = np.empty((rows, cols, samples), np.dtype(f"<u{nbytes}"))
    cells = out.reshape(size, samples).view(np.uint8).reshape(size, samples, nbytes)  # little endian: LSB first
    view = memoryview(data)  # segments read in place, not copied
    for s in range(samples):
        for b in range(nbytes):  # G.2: most significant byte first
            k = s * nbytes + b
            seg = unpack_segment(view[bounds[k]:bounds[k + 1]], size, k + 1)
            cells[:, s, nbytes - 1 - b] = np.frombuffer(seg, np.uint8)
            del seg
    return out.reshape(rows, cols) if samples == 1 else out
