"""The coder's inner loop (numba): blended prediction, contexts, binary arithmetic coding.

One function, :func:`run`, both encodes and decodes: every modelling step is written once and the two
directions differ only where a bit is either written or read, so they cannot drift apart. All arithmetic is
integer (no float, no libm), so a stream decodes to the same values on every CPU and operating system.

See the package docstring for the design and the measured effect of each idea.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from numba import njit

from . import arith
from .arith import AC, bitlen, clamp16, code_bit, counter_update

# numba keys a function's disk cache on its own source file alone (its documented limit: a change in another file
# goes unseen). The kernels here inline arith.py's helpers and freeze its tables, so arith.py's CRC is compiled in
# as well (built_on), and the coder drops this file's cache when it differs (coder._drop_stale_kernels).
ARITH_CRC = zlib.crc32(Path(arith.__file__).read_bytes())

# ---- stream feature flags (stored in the header; the decoder follows them; unknown bits are refused)
F_3D_PRED = 1  # inter-slice predictors join the blend, the previous slice's 3 x 3 joins the NLMS taps
F_3D_ERR = 2  # the previous slice's errors around the same place weigh predictors and enter the contexts
F_EF = 4  # error feedback: an NLMS over the blend's errors around (this slice and the previous) corrects it
F_MIX = 8  # logistic mixing of several context models per binary decision (else one context's counter)
F_LMS = 16  # an NLMS predictor over the 2-D / 3-D neighbourhood joins the blend
DEFAULT_FLAGS = F_3D_PRED | F_3D_ERR | F_EF | F_MIX | F_LMS
ALL_FLAGS = DEFAULT_FLAGS

# ---- return codes of run()
OK, ERR_OVERRUN, ERR_RANGE, ERR_OVERFLOW = 0, -1, -2, -3

N_PRED_2D, N_PRED_3D = 4, 2  # fixed predictors (the NLMS one comes on top)
N_TAPS_2D, N_TAPS_3D = 6, 5  # NLMS inputs
LMS_MU = 1000  # NLMS step, in 1/65536
EF_MU = 400  # error feedback NLMS step, in 1/65536
N_EF = 19  # error feedback taps
N_Q = 24  # quantised expected-error levels
MAX_K = 16  # magnitude classes: |e| <= maxval < 2^16


@njit(cache=True)
def built_on():
    """ARITH_CRC as it was when this file's cached kernels were compiled: numba takes a global as a constant."""
    return ARITH_CRC


@njit(cache=True, inline="always")
def model_bit(decode, st, buf, bit, mix, d, wsel):
    """Code one binary decision d. Without mixing the counter of the first context alone gives the
    probability; with mixing the counters of all N_IN contexts (st[CX + k] + d) are stretched, mixed by the
    weight set wsel + d (trained online), and all of them learn from the bit. All state lives in the one array st: numba passes arrays with reference counting,
    so one array instead of eight made this call 3x cheaper."""
    if not mix:
        i0 = CP + st[CX] + d
        bit = code_bit(decode, st, buf, bit, clamp16(st[i0] & 0xFFFFFFFF))
        counter_update(st, i0, bit, 60)
        return bit
    wb = MW + (wsel + d) * (N_IN + 1)
    dot = 256 * st[wb + N_IN]
    for k in range(N_IN):
        v = st[STRETCH_AT + ((st[CP + st[CX + k] + d] & 0xFFFFFFFF) >> 4)]
        st[SX + k] = v
        dot += v * st[wb + k]
    dot >>= 16
    pm = st[SQT + 2047 + min(max(dot, -2047), 2047)]
    p16 = clamp16(pm * 16)
    bit = code_bit(decode, st, buf, bit, p16)
    # train the mixer on its own output error (lpaq, slower rate) and the counters
    err = (((bit << 12) - pm) * MIX_LR) >> 3
    for k in range(N_IN):
        st[wb + k] += (st[SX + k] * err + 512) >> 10
        counter_update(st, CP + st[CX + k] + d, bit, 250)
    st[wb + N_IN] += (256 * err + 512) >> 10
    return bit


def _inverse_power_table(power: int) -> np.ndarray:
    """2^50 (4 / e)^power for the bucket centre of each error sum e >= 4 (exact below 64, then 32 buckets per
    octave); Python integers, so the table is the same on every machine."""
    out = np.zeros(64 + 25 * 32, np.int64)
    for e in range(4, 64):
        out[e] = (1 << 50) * 4 ** power // e ** power
    for b in range(7, 32):
        for m in range(32):
            mid = ((32 + m) << (b - 6)) + (1 << (b - 7))  # centre of the bucket of width 2^(b-6)
            out[64 + (b - 7) * 32 + m] = (1 << 50) * 4 ** power // mid ** power
    return out


BLEND_POWER = 2
INV_SQ = _inverse_power_table(BLEND_POWER)


@njit(cache=True, inline="always")
def inv_square(e):
    """About 2^50 (4 / e)^BLEND_POWER for 4 <= e < 2^31 (table, no division)."""
    if e < 64:
        return INV_SQ[e]
    if e >= 2147483648:
        e = 2147483647
    b = bitlen(e)
    return INV_SQ[64 + (b - 7) * 32 + ((e >> (b - 6)) & 31)]


@njit(cache=True, inline="always")
def qlog(v):
    """Quantise a non-negative magnitude on a half-octave scale into 0 .. N_Q - 1."""
    if v <= 0:
        return 0
    b = bitlen(v)
    q = 2 * b - 1
    if b >= 2 and (v >> (b - 2)) & 1:
        q += 1
    if q >= N_Q:
        q = N_Q - 1
    return q


# ---- decision ids of one residual's binarisation: magnitude class (walk up or down), sign, top mantissa bits
D_SIGN = 0
D_FIRST = 1  # class >= expected class c0? (per c0)
D_UP = D_FIRST + MAX_K + 1  # class > t, knowing class >= t
D_DOWN = D_UP + MAX_K + 1  # class < t, knowing class <= t
D_M1 = D_DOWN + MAX_K + 1  # first bit below the leading one, per class
D_M2 = D_M1 + MAX_K + 1  # second bit, per class and first bit
N_D = D_M2 + 2 * (MAX_K + 1)
N_SIGNPAT = 9  # signs (-, 0, +) of the final errors at N and W
N_WSEL = N_D * (N_Q // 4) * (N_Q // 4)
N_IN = 4  # context models mixed per decision
MIX_LR = 1  # mixer learning rate, in eighths of lpaq's
# context tables: (first context, count) per model, each context owning N_D counters
CTX_SIZES = ((N_Q // 4) * 256, N_Q, (N_Q // 2) * N_SIGNPAT, N_Q)
CTX_TOTAL = sum(CTX_SIZES) * N_D
LOW_TOTAL = (MAX_K + 1) * MAX_K * (N_Q // 4)  # low mantissa bits: one counter per (class, bit, activity)
# the coder's whole state is one int64 array, laid out as follows (offsets)
# AC = 0: the arithmetic coder: low, high, code, position, overrun (arith.py)
CX = 8  # the N_IN current context offsets (into the counters)
SX = 16  # the N_IN stretched probabilities of the current decision
CP = 24  # counters: context models, then LOWP
LOWP = CP + CTX_TOTAL
MW = CP + CTX_TOTAL + LOW_TOTAL  # mixer weights (N_IN + 1 per set)
SQT = MW + N_WSEL * (N_IN + 1)  # the squash table (4095: d = -2047..2047), then stretch (4096): arith.TABLES
STRETCH_AT = SQT + 4095
STATE_SIZE = STRETCH_AT + 4096
CBASE = tuple(sum(CTX_SIZES[:k]) * N_D for k in range(N_IN))  # first counter of each context model

# ---- the steps of run() that cost no speed as functions (A/B in fresh processes, byte-identical streams; issue
# 20): once per volume or slice (new_state, flush, next_slice_edges), once per row but inlined (row_error_sums: as
# a real call it cost 4 %), and per voxel those of scalars alone (med, texture). Per-voxel steps that take an
# array stay in run: numba reference-counts every array handed to a function, even an inlined one; the residual
# coder and the context setter as steps taking only st and buf cost 7-9 %, the 2026-12-05 split with the row
# arrays 60 %.


@njit(cache=True, nogil=True)
def new_state(decode, buf, tables):
    """The coder's state array: counters at 1/2, mixer weights at 1/3 each, the squash and stretch tables of the
    stream's version, the arithmetic coder reset (and, to decode, its first four bytes read)."""
    st = np.zeros(STATE_SIZE, np.int64)
    st[SQT:STATE_SIZE] = tables
    st[CP:MW] = 32768
    for i in range(N_WSEL):
        for k in range(N_IN):
            st[MW + (N_IN + 1) * i + k] = 65536 // 3
    st[AC + 1] = 0xFFFFFFFF
    if decode:
        for t in range(4):
            c = 0
            if t < buf.shape[0]:
                c = buf[t]
            else:
                st[AC + 4] += 1
            st[AC + 2] = (st[AC + 2] << 8) | c
        st[AC + 3] = 4
    return st


@njit(cache=True, nogil=True)
def flush(st, buf):
    """End an encode: the low end of the interval fixes it; the bytes used."""
    for t in range(4):
        buf[st[AC + 3]] = (st[AC] >> (24 - 8 * t)) & 255
        st[AC + 3] += 1
    return st[AC + 3]


@njit(cache=True, inline="always")
def row_error_sums(erow, perr, perr_p, i, C, NP, use3e):
    """Each predictor's recent error around each place of row i, the part known for the whole row: the rows
    above and, in 3-D, the previous slice around the same place (including below and right)."""
    for j in range(2, C + 2):
        for k in range(NP):
            erow[j, k] = (2 * perr[i - 1, j, k] + perr[i - 1, j - 1, k] + perr[i - 1, j + 1, k]
                          + perr[i - 1, j - 2, k] + perr[i - 1, j + 2, k] + perr[i - 2, j, k])
        if use3e:
            for k in range(NP):
                erow[j, k] += perr_p[i, j, k] + ((perr_p[i + 1, j, k] + perr_p[i, j + 1, k]
                                                  + perr_p[i - 1, j, k] + perr_p[i, j - 1, k]) >> 1)


@njit(cache=True, nogil=True)
def next_slice_edges(cur, prv, R, Wd):
    """prv (the slice just coded) gets its bottom pad; the next slice's top pad is prv's first row."""
    for j in range(Wd):
        prv[R + 2, j] = prv[R + 1, j]
    for j in range(Wd):
        cur[0, j] = prv[2, j]
        cur[1, j] = prv[2, j]


@njit(cache=True, inline="always")
def med(W, N, NW):
    """LOCO-I's median edge detector."""
    lo_ = min(W, N)
    hi_ = max(W, N)
    return lo_ if NW >= hi_ else (hi_ if NW <= lo_ else W + N - NW)


@njit(cache=True, inline="always")
def texture(W, N, NW, NE, WW, NN, P, use3p, fN, fW, pred8):
    """CALIC's texture pattern: which neighbours (and simple extrapolations) lie above the prediction, and the
    sign of the neighbours' final errors."""
    tex = 0
    if W * 8 > pred8:
        tex |= 1
    if N * 8 > pred8:
        tex |= 2
    if NW * 8 > pred8:
        tex |= 4
    if NE * 8 > pred8:
        tex |= 8
    if (2 * W - WW) * 8 > pred8:
        tex |= 16
    if (2 * N - NN) * 8 > pred8:
        tex |= 32
    if use3p and P * 8 > pred8:
        tex |= 64
    if fN + fW > 0:
        tex |= 128
    return tex


@njit(cache=True, nogil=True)  # nogil: slabs decode in parallel threads
def run(decode, vol, buf, maxval, flags, tables):
    """Encode vol (slices x rows x cols, int32 values in 0..maxval) into buf, or decode buf into vol, with the
    squash and stretch ``tables`` of the stream's version (arith.TABLES).

    Returns (code, bytes used): code OK or a negative ERR_*. Every loop is bounded by the volume's size and
    MAX_K, whatever the stream holds; every array index comes from bounded values (numba does not check)."""
    S, R, C = vol.shape
    H, Wd = R + 3, C + 4  # padding: 2 rows above, 1 below, 2 columns each side
    use3p = (flags & F_3D_PRED) != 0
    use3e = (flags & F_3D_ERR) != 0
    mix = (flags & F_MIX) != 0
    use_lms = (flags & F_LMS) != 0
    NP = N_PRED_2D + (N_PRED_3D if use3p else 0) + (1 if use_lms else 0)
    NT = N_TAPS_2D + (N_TAPS_3D if use3p else 0)
    kmax = bitlen(maxval)  # |e| <= maxval < 2^kmax

    cur = np.zeros((H, Wd), np.int64)  # this slice's values (padded)
    prv = np.zeros((H, Wd), np.int64)  # the previous slice's
    perr = np.zeros((H, Wd, NP), np.int32)  # |8x - prediction_k| at each place of this slice
    perr_p = np.zeros((H, Wd, NP), np.int32)  # ... of the previous slice
    erow = np.zeros((Wd, NP), np.int64)  # the part of each error sum known for the whole row
    ferr = np.zeros((H, Wd), np.int32)  # signed 8x - final prediction
    ferr_p = np.zeros((H, Wd), np.int32)
    berr = np.zeros((H, Wd), np.int32)  # signed 8x - blend (before the error feedback)
    berr_p = np.zeros((H, Wd), np.int32)
    pk = np.zeros(NP, np.int64)
    wk = np.zeros(NP, np.int64)
    lw = np.zeros(NT, np.int64)  # NLMS weights, 1/65536
    lu = np.zeros(NT, np.int64)  # NLMS inputs: neighbours minus MED
    n_ef = N_EF if (flags & F_EF) != 0 else 0
    eu = np.zeros(N_EF, np.int64)
    ew = np.zeros(N_EF, np.int64)
    cavg = np.full(N_Q * 8, 4 * 256, np.int64)  # mean magnitude class per activity level, x256
    st = new_state(decode, buf, tables)

    for s in range(S):
        for r in range(R):
            i = r + 2
            if not decode and st[AC + 3] + 64 * C + 64 > buf.shape[0]:
                return ERR_OVERFLOW, st[AC + 3]
            if decode and st[AC + 4] > 0:
                return ERR_OVERRUN, st[AC + 3]
            cur[i, 0] = cur[i - 1, 2]
            cur[i, 1] = cur[i - 1, 2]
            row_error_sums(erow, perr, perr_p, i, C, NP, use3e)
            for c in range(C):
                j = c + 2
                W = cur[i, j - 1]
                N = cur[i - 1, j]
                NW = cur[i - 1, j - 1]
                NE = cur[i - 1, j + 1]
                WW = cur[i, j - 2]
                NN = cur[i - 2, j]
                P = prv[i, j]
                # ---- predictors, in 1/8 units
                pk[0] = N * 8
                pk[1] = W * 8
                pk[2] = (W + NE - N) * 8
                pk[3] = (N + NE - cur[i - 2, j + 1]) * 8
                if use3p:
                    pk[4] = (P + W - prv[i, j - 1]) * 8
                    pk[5] = (P + N - prv[i - 1, j]) * 8
                lnorm = 64
                if use_lms:  # NLMS over the neighbours' offsets from MED
                    med8 = med(W, N, NW) * 8
                    lu[0] = N * 8 - med8
                    lu[1] = W * 8 - med8
                    lu[2] = NW * 8 - med8
                    lu[3] = NE * 8 - med8
                    lu[4] = WW * 8 - med8
                    lu[5] = NN * 8 - med8
                    if use3p:
                        lu[6] = P * 8 - med8
                        lu[7] = prv[i - 1, j] * 8 - med8
                        lu[8] = prv[i + 1, j] * 8 - med8
                        lu[9] = prv[i, j - 1] * 8 - med8
                        lu[10] = prv[i, j + 1] * 8 - med8
                    acc = 0
                    for t in range(NT):
                        acc += lw[t] * lu[t]
                        lnorm += lu[t] * lu[t]
                    pk[NP - 1] = med8 + ((acc + 32768) >> 16)
                # ---- blend: weights 1 / (recent error sum)^2, as TMW / GraLIC / JPEG XL's weighted predictor
                emin = 1 << 62
                wmax = 0
                for k in range(NP):
                    e = erow[j, k] + 2 * perr[i, j - 1, k] + perr[i, j - 2, k] + 4
                    if e < emin:
                        emin = e
                    wk[k] = inv_square(e)
                    if wk[k] > wmax:
                        wmax = wk[k]
                sh = bitlen(wmax) - 24
                if sh < 0:
                    sh = 0
                num = 0
                den = 0
                for k in range(NP):
                    w = wk[k] >> sh
                    num += w * pk[k]
                    den += w
                pred8 = (num + (den >> 1)) // max(den, 1)  # den > 0: error sums stay far below 2^31
                # ---- error feedback: an NLMS over the neighbours' final errors corrects the blend
                eu[0] = berr[i - 1, j]
                eu[1] = berr[i, j - 1]
                eu[2] = berr[i - 1, j - 1]
                eu[3] = berr[i - 1, j + 1]
                eu[4] = berr_p[i, j]
                eu[5] = berr_p[i + 1, j]
                eu[6] = berr_p[i, j + 1]
                eu[7] = berr[i, j - 2]
                eu[8] = berr[i - 2, j]
                eu[9] = berr[i - 1, j - 2]
                eu[10] = berr[i - 1, j + 2]
                eu[11] = berr_p[i - 1, j]
                eu[12] = berr_p[i, j - 1]
                eu[13] = berr_p[i + 1, j + 1]
                eu[14] = berr_p[i + 1, j - 1]
                eu[15] = berr[i - 2, j - 1]
                eu[16] = berr[i - 2, j + 1]
                eu[17] = berr_p[i - 1, j - 1]
                eu[18] = berr_p[i - 1, j + 1]
                eacc = 0
                enorm = 64
                for t in range(n_ef):
                    eacc += ew[t] * eu[t]
                    enorm += eu[t] * eu[t]
                blend8 = pred8
                pred8 += (eacc + 32768) >> 16
                pred = min(max((pred8 + 4) >> 3, 0), maxval)
                # ---- contexts: expected error (final errors around; in 3-D also the previous slice's), best
                # predictor's error, error signs, texture (CALIC), spread of the predictions
                fN = np.int64(ferr[i - 1, j])
                fW = np.int64(ferr[i, j - 1])
                E = abs(fN) + abs(fW) + ((abs(ferr[i - 1, j - 1]) + abs(ferr[i - 1, j + 1])) >> 1)
                if use3e:
                    E += abs(ferr_p[i, j]) + ((abs(ferr_p[i + 1, j]) + abs(ferr_p[i, j + 1])) >> 1)
                q = qlog(E >> 2)
                qe = qlog(emin >> 3)
                ca = q * 8 + (qe >> 2)
                wq = ((q >> 2) * (N_Q // 4) + (qe >> 2)) * N_D
                if mix:
                    tex = texture(W, N, NW, NE, WW, NN, P, use3p, fN, fW, pred8)
                    sp = (0 if fN < -4 else (1 if fN <= 4 else 2)) * 3 + (0 if fW < -4 else (1 if fW <= 4 else 2))
                    pmin = pk[0]
                    pmax = pk[0]
                    for k in range(1, NP):
                        pmin = min(pmin, pk[k])
                        pmax = max(pmax, pk[k])
                    st[CX] = CBASE[0] + ((q >> 2) * 256 + tex) * N_D
                    st[CX + 1] = CBASE[1] + qe * N_D
                    st[CX + 2] = CBASE[2] + ((q >> 1) * N_SIGNPAT + sp) * N_D
                    st[CX + 3] = CBASE[3] + qlog((pmax - pmin) >> 3) * N_D
                else:
                    st[CX] = CBASE[0] + q * N_D
                # ---- the residual: magnitude class cl = bit length of |e| by a unary walk up or down from the
                # class expected at this activity, then the sign, then the bits below the leading one
                x = 0
                m = 0
                neg = 0
                if not decode:
                    x = np.int64(vol[s, r, c])
                    m = abs(x - pred)
                    neg = 1 if x < pred else 0
                c0 = max(1, min((cavg[ca] + 128) >> 8, kmax))
                cl = bitlen(m)
                if model_bit(decode, st, buf, 1 if cl >= c0 else 0, mix, D_FIRST + c0, wq):
                    t = c0
                    while t < kmax:
                        if not model_bit(decode, st, buf, 1 if cl > t else 0, mix, D_UP + t, wq):
                            break
                        t += 1
                else:
                    t = c0 - 1
                    while t > 0:
                        if not model_bit(decode, st, buf, 1 if cl < t else 0, mix, D_DOWN + t, wq):
                            break
                        t -= 1
                cl = t
                if cl > 0:
                    neg = model_bit(decode, st, buf, neg, mix, D_SIGN, wq)
                    mm = 1
                    if cl >= 2:
                        mm = 2 + model_bit(decode, st, buf, (m >> (cl - 2)) & 1, mix, D_M1 + cl, wq)
                    if cl >= 3:
                        mm = 2 * mm + model_bit(decode, st, buf, (m >> (cl - 3)) & 1, mix, D_M2 + 2 * cl + (mm & 1),
                                                wq)
                    for b in range(cl - 4, -1, -1):
                        li = LOWP + (cl * MAX_K + b) * (N_Q // 4) + (q >> 2)
                        bit = code_bit(decode, st, buf, (m >> b) & 1, clamp16(st[li] & 0xFFFFFFFF))
                        counter_update(st, li, bit, 30)
                        mm = 2 * mm + bit
                    m = mm
                cavg[ca] += (cl * 256 - cavg[ca]) >> 5
                if decode:
                    x = pred - m if neg else pred + m
                    if x < 0 or x > maxval:
                        return ERR_RANGE, st[AC + 3]
                    vol[s, r, c] = x
                # ---- learn: each predictor's error, the final error, the NLMS steps
                cur[i, j] = x
                x8 = x * 8
                for k in range(NP):
                    perr[i, j, k] = abs(x8 - pk[k])
                ferr[i, j] = x8 - pred8
                berr[i, j] = x8 - blend8
                g = ((x8 - pred8) * (EF_MU << 16)) // enorm
                for t in range(n_ef):
                    ew[t] += (g * eu[t] + 32768) >> 16
                if use_lms:
                    g = ((x8 - pk[NP - 1]) * (LMS_MU << 16)) // lnorm
                    for t in range(NT):
                        lw[t] += (g * lu[t] + 32768) >> 16
            cur[i, C + 2] = cur[i, C + 1]
            cur[i, C + 3] = cur[i, C + 1]
        # this slice becomes the previous one
        cur, prv = prv, cur
        perr, perr_p = perr_p, perr
        ferr, ferr_p = ferr_p, ferr
        berr, berr_p = berr_p, berr
        next_slice_edges(cur, prv, R, Wd)
    if decode:
        return (ERR_OVERRUN if st[AC + 4] > 0 else OK), st[AC + 3]
    return OK, flush(st, buf)
