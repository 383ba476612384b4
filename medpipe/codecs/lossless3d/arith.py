"""The binary arithmetic coder and its adaptive counters (numba, integer only): the logistic squash/stretch
tables (computed from their formula), a carry-less 32-bit coder (the design of Matt Mahoney's lpaq1), counters
that pack probability and count in one word. The model (model.py) decides what each bit means; this module only
codes bits. State lives in the model's one array ``st``: the coder's
five words (low, high, code, position, overrun) at ``st[AC:AC + 5]``.
"""
from __future__ import annotations

import decimal

import numpy as np
from numba import njit

AC = 0  # offset of the arithmetic coder's state in st


def _squash_table() -> np.ndarray:
    """The logistic squash(d) = 4096 / (1 + e^(-d / 256)) for d in -2047..2047, rounded, within 1..4095.

    Computed from the formula with :mod:`decimal` (software arithmetic, correctly rounded at the precision set
    here), not the platform's libm: the table, and so every stream, is the same on every machine."""
    ctx = decimal.Context(prec=40)
    out = np.empty(4095, np.int32)
    for d in range(-2047, 2048):
        v = ctx.divide(4096, ctx.add(1, ctx.exp(decimal.Decimal(-d) / 256)))
        out[d + 2047] = min(4095, max(1, int(v.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))))
    return out


def _stretch_table(squash: np.ndarray) -> np.ndarray:
    """Inverse of squash: stretch(p) = ln(p / (1 - p)) in squash's units, p 12-bit."""
    out = np.empty(4096, np.int32)
    pi = 0
    for d in range(-2047, 2048):
        v = int(squash[d + 2047])
        for p in range(pi, v + 1):
            out[p] = d
        pi = v + 1
    out[pi:] = 2047
    return out


def _squash_table_v1() -> np.ndarray:
    """Stream version 1's squash: lpaq1's 33 points, interpolated. Kept only so that streams written before
    2026-12-05 (and the archives holding them) still decode bit-exact; nothing is encoded with it."""
    t = [1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348, 3607,
         3785, 3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094]
    out = np.empty(4095, np.int32)
    for d in range(-2047, 2048):
        w, k = d & 127, (d >> 7) + 16
        out[d + 2047] = (t[k] * (128 - w) + t[k + 1] * w + 64) >> 7
    return out


def tables(squash: np.ndarray) -> np.ndarray:
    """squash then stretch, one array: what the model copies into its state (model.SQT)."""
    return np.concatenate([squash, _stretch_table(squash)]).astype(np.int64)


TABLES = {1: tables(_squash_table_v1()), 2: tables(_squash_table())}  # per stream version
# adaptation rate of a counter that has seen n bits: 1 / (n + 1.5), floored at 1 / LIMIT
RATE = np.array([65536 * 2 // (2 * n + 3) for n in range(1024)], np.int32)


@njit(cache=True, inline="always")
def code_bit(decode, st, buf, bit, p16):
    """Binary arithmetic coder (carry-less, 32-bit, after lpaq); p16 = P(bit = 1) in 1/65536.

    st[AC:AC + 5] = low, high, code, position, overrun. The decoder reads zeros past the end and counts them: a
    whole stream never needs that, so an overrun means truncation or damage."""
    x1 = st[AC]
    x2 = st[AC + 1]
    rng = x2 - x1
    xmid = x1 + (rng >> 16) * p16 + (((rng & 0xFFFF) * p16) >> 16)
    if decode:
        bit = 1 if st[AC + 2] <= xmid else 0
    if bit:
        x2 = xmid
    else:
        x1 = xmid + 1
    while ((x1 ^ x2) & 0xFF000000) == 0:
        pos = st[AC + 3]
        if decode:
            c = 0
            if pos < buf.shape[0]:
                c = buf[pos]
            else:
                st[AC + 4] += 1
            st[AC + 2] = ((st[AC + 2] << 8) & 0xFFFFFFFF) | c
        else:
            buf[pos] = x2 >> 24
        st[AC + 3] = pos + 1
        x1 = (x1 << 8) & 0xFFFFFFFF
        x2 = ((x2 << 8) & 0xFFFFFFFF) | 255
    st[AC] = x1
    st[AC + 1] = x2
    return bit


@njit(cache=True, inline="always")
def counter_update(st, i, bit, limit):
    """Counter st[i]: P(1) in 1/65536 in the low 32 bits, bits seen n above; rate 1 / (n + 1.5), n <= limit.
    One word per counter: one load and one store per update."""
    v = st[i]
    n = v >> 32
    p = v & 0xFFFFFFFF
    p += (((bit << 16) - p) * RATE[n]) >> 16
    if n < limit:
        n += 1
    st[i] = (n << 32) | p


@njit(cache=True, inline="always")
def clamp16(p):
    if p < 32:
        return 32
    if p > 65504:
        return 65504
    return p


BITLEN16 = np.array([int(v).bit_length() for v in range(1 << 16)], np.int8)


@njit(cache=True, inline="always")
def bitlen(v):
    """Bit length of a non-negative int64 by table: two lookups up to 2^32, four up to 2^64."""
    if v < 65536:
        return np.int64(BITLEN16[v])
    if v < 4294967296:
        return 16 + np.int64(BITLEN16[v >> 16])
    if v < 281474976710656:
        return 32 + np.int64(BITLEN16[v >> 32])
    return 48 + np.int64(BITLEN16[v >> 48])
