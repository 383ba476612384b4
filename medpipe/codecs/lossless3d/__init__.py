"""lossless3d: a 3-D lossless coder for CT and MR volumes (issue 14: beyond JPEG XL).

API: ``encode_volume(volume, bits=None) -> bytes`` for a (slices, rows, cols) uint8 / uint16 / int8 / int16 array
(any depth up to 16 bits, signed or not) and ``decode_volume(data, expected_shape=None, expected_dtype=None)
-> ndarray`` (same dtype, shape, values); a truncated, damaged, foreign or newer stream raises
:class:`StreamError`. The matrix codec is
:class:`.codec.Lossless3D` (``codec: lossless3d``). The inner loop is numba (``@njit(cache=True)``): compiled once
per machine and loaded from numba's cache afterwards; :meth:`.codec.Lossless3D.prepare` does it before a timed
call.

Design
------
Voxels are coded slice by slice, row by row; the coder sees the causal part of this slice and all of the
previous slice, so it knows the previous slice *below and right* of the voxel too. One numba function
(``model.run``) encodes and decodes: each modelling step is written once. All arithmetic is integer (tables
built with Python integers), so a stream decodes identically on every CPU and operating system.

Predictors (in 1/8 units): N, W, W+NE-N, N+NE-NNE in-plane; P+W-PW, P+N-PN across slices (P = the previous
slice's voxel at the same place); and an NLMS predictor (normalised least mean squares, integer) over the offsets
of N, W, NW, NE, WW, NN and the previous slice's cross (P and its 4 neighbours) from MED (LOCO-I's median
predictor). They are blended with weights 1 / e^2, e = each predictor's recent error summed around the voxel
(N, W x2; NW, NE, WW, NN, NWW, NEE; previous slice at the same place and, halved, above, below, left, right), as
in TMW / GraLIC / JPEG XL's weighted predictor. Error feedback then corrects the blend: a second NLMS over the
blend's own errors at 19 places around (W, WW, the row above from -2 to +2, NN and its two neighbours; the
previous slice's 3 x 3). It reads
the blend's errors, not its own, so it is a filter and stays stable (fed its own errors it diverged).

Contexts: the expected error E = final errors at N, W, NW/2, NE/2 plus, across slices, at P and (halved) below
and right, quantised in half octaves (q); the best predictor's error sum (qe); the signs of the errors at N and W;
a CALIC texture byte (W, N, NW, NE, 2W-WW, 2N-NN, P above or below the prediction, sign of fN+fW); the spread of
the predictions.

Entropy coder: binary arithmetic coding (32-bit, carry-less, lpaq style, 16-bit probabilities). The residual's
magnitude class (bit length of |e|) is coded by a unary walk up or down from the class expected at (q, qe) (a
running mean), then the sign, then the two bits under the leading one; each of these decisions mixes four
adaptive counters (contexts: texture x q, qe, error signs x q, spread) in a logistic mixer (lpaq's, integer,
weight set by decision, q and qe). Lower mantissa bits use one adaptive counter per (class, bit, q / 4). About
3.7 binary decisions per voxel. A counter holds its probability and its count in one int64 word; all coder
state is one array (numba reference-counts every array handed to a function: one array instead of eight halved the time).

Static model (``model: static``, stream flag 32 alone; :mod:`.static`, :mod:`.static_kernel`): an asymmetric
design, the encoder searches and the decoder follows. Per slab the encoder fits, by least squares on a subsample,
integer weights of a linear predictor over 15 causal taps (W N NW NE WW NN and the previous slice's 3 x 3), one
set per texture class (8 equal-population classes of the gradients of the row above and the previous slice) plus
a set for the slab's first slice; then, from two middle slices the kernel codes first, the weights of a second
stage over the first stage's errors at 8 places around (W WW NW N NE NN, the previous slice's P and below). The
folded residual becomes a hybrid-uint token (below 16 whole; above, its sign, bit length and two top bits; the rest
raw bits) under one of 20 activity contexts (the residuals around, this slice and the previous one, in half
octaves); the encoder counts the tokens per context and stores the counts (normalised to 4096, deflated), and
rANS codes the tokens. The decoder does per voxel one prediction, one table look-up and one rANS step, branch-free
where the data decide; the sums that do not depend on the voxel to the left are computed for the whole row first.
Its slab (after the slab table): weights, class thresholds and shift, the three lengths, the table, the rANS code
(read forwards, written backwards), the extra bits. The decoder checks every length, weight and frequency row
(sum 4096, none above 4094, which keeps the stream floor below) before the kernel runs.

Stream format (little-endian): a 40-byte header, then the payload.
  0 magic "MP3D" | 4 version (2) | 5 flags: low 6 bits model features (F_* in model.py, or 32: the static
  model), high 2 bits mode
  (0 coded, 1 stored raw, 2 constant) | 6 bits per sample (1-16, as declared) | 7 sample type (0 uint8,
  1 uint16, 2 int8, 3 int16) | 8 slices, 12 rows, 16 cols (uint32) | 20 lo: the minimum value (int32; the coder
  codes value - lo) | 24 maxval = max - lo (uint32) | 28 payload length (uint32) | 32 CRC32 of the decoded values
  (little-endian bytes of the sample type) | 36 CRC32 of bytes 0-35 and the payload.
A coded payload starts with its slab table: slab count (uint16), options (uint8; bit 0: value table), 0
(uint8), each slab's code length (uint32); with a value table, its length (uint32) and the table (the steps
between the used values as uint16, deflated: values.py); then each slab's arithmetic code. Slabs are equal runs
of slices coded independently (fresh model), so threads decode them in parallel; with a value table the coder
codes each value's rank in the table. Version 1 (before 2026-12-05; read, never written): the payload is one
slab's code alone, coded with lpaq's interpolated squash table (arith.TABLES[1]).
The stream CRC rejects any damage before decoding starts (fast, and the decoder never meets random bytes by
chance); the values CRC checks the decoded volume end to end, so a decoder bug or a damaged stream that slipped
past the first check can never return wrong values silently. A coding that would not be smaller than the raw
samples is stored raw (worst case: raw size + 40 bytes); a constant volume is the header alone. The decoder
checks the header before it allocates anything: it refuses unknown versions or flags, inconsistent headers (shape
beyond 2^20 a side or 2^32 voxels; a coded payload shorter than 1 byte per 16384 voxels, which the coder cannot
make, or not shorter than raw), a shape or sample type other than the caller expects, and, with no expectation,
a volume that would not fit in the memory available; then slab and value tables that do not fit, payloads that
end early (its loops are bounded by the volume's size and 16 classes; reads past the end are counted and stop it
at the next row) and decoded values out of range.

Measurements: what each idea gained when it was tried, and the whole-volume tables, are in
``bench/measured/lossless3d-*/`` and the README; ``python bench/lossless3d.py`` measures the coder as it is.

Credit: the entropy coder follows the PAQ family of context-mixing compressors (Matt Mahoney's PAQ8 and lpaq1):
binary decisions, adaptive counters, logistic mixing of their stretched probabilities, a carry-less 32-bit
arithmetic coder. The blend of predictors by their recent errors comes from TMW (Meyer and Tischer), GraLIC
(Alexander Ratushnyak) and JPEG XL's weighted predictor; the median predictor and bias ideas from LOCO-I /
JPEG-LS and CALIC (Wu and Memon). The code is medpipe's own: no table or source is copied (the squash table is
computed from its formula, arith.py).

What limits it: CT noise. The residual is mostly the scanner's noise, which no predictor removes; the gains come
from averaging it better (blend, NLMS, feedback) and from knowing its local level (contexts). Thick chest
slices (5 mm) give the previous slice little to say, and there the ratio is lowest. Speed: about 3.7 mixed
binary decisions and 7 blended predictors plus two NLMS filters per voxel; encode and decode cost the same.
"""
from __future__ import annotations

from .stream import StreamError


def encode_volume(volume, bits=None, **kw) -> bytes:
    """See :func:`.coder.encode_volume` (imported on first use: numba loads only when coding)."""
    from .coder import encode_volume as encode

    return encode(volume, bits, **kw)


def decode_volume(data, expected_shape=None, expected_dtype=None, threads: int = 1, slab_seconds=None):
    """See :func:`.coder.decode_volume`: the header is checked against the expectation (and, with no expected
    shape, the memory available) before anything is allocated."""
    from .coder import decode_volume as decode

    return decode(data, expected_shape, expected_dtype, threads, slab_seconds)


__all__ = ["StreamError", "decode_volume", "encode_volume"]
