"""The coder's inner loop (numba): blended prediction, contexts, binary arithmetic coding.

One function, :func:`run`, both encodes and decodes: every modelling step is written once and the two
directions differ only where a bit is either written or read, so they cannot drift apart. All arithmetic is
integer (no float, no libm), so a stream decodes to the same values on every CPU and operating system.

See the package docstring for the design and the measured effect of each idea.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# ---- stream feature flags (stored in the header; the decoder follows them)
F_3D_PRED = 1  # inter-slice predictors join the blend
F_3D_ERR = 2  # previous slice's errors (same place, below, right) weigh predictors and enter contexts
F_BIAS = 4  # per-context bias cancellation (CALIC / JPEG-LS)
F_MIX = 8  # logistic mixing of several context models per binary decision, then an APM
F_LMS = 16  # an NLMS filter over the 2-D / 3-D neighbourhood corrects the blended prediction (cascade)
F_LS = 32  # a least-squares 3-D predictor fitted per slice by the encoder (coefficients in the stream)
DEFAULT_FLAGS = F_3D_PRED | F_3D_ERR | F_MIX | F_LMS
ALL_FLAGS = F_3D_PRED | F_3D_ERR | F_BIAS | F_MIX | F_LMS | F_LS
# least-squares taps (row, column offsets): 12 causal in-plane, then the previous slice's 3 x 3
LS_IN = ((0, -1), (0, -2), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (-2, -2), (-2, -1), (-2, 0), (-2, 1),
         (-2, 2))
LS_PREV = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1), (1, -1), (1, 0), (1, 1))
N_LS = len(LS_IN) + len(LS_PREV)
LS_SHIFT = 12  # coefficients in 1/4096
LS_DI = np.array([d[0] for d in LS_IN + LS_PREV], np.int64)
LS_DJ = np.array([d[1] for d in LS_IN + LS_PREV], np.int64)
N_TAPS_2D, N_TAPS_3D = 6, 9
TUNE = np.array([2000, 0, 0, 0, 2, 250, 3, 0], np.int64)  # development knobs (become constants)

# ---- return codes of run()
OK, ERR_OVERRUN, ERR_RANGE, ERR_OVERFLOW = 0, -1, -2, -3

N_PRED_2D, N_PRED_3D = 5, 4
N_Q = 24  # quantised expected-error levels
MAX_K = 16  # magnitude classes: |e| <= maxval < 2^16


def _squash_table() -> np.ndarray:
    """lpaq's integer logistic 4096 / (1 + e^-d/256) for d in -2047..2047 (integer only: same everywhere)."""
    t = [1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348, 3607,
         3785, 3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094]
    out = np.empty(4095, np.int32)
    for d in range(-2047, 2048):
        w, k = d & 127, (d >> 7) + 16
        out[d + 2047] = (t[k] * (128 - w) + t[k + 1] * w + 64) >> 7
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


SQUASH = _squash_table()
STRETCH = _stretch_table(SQUASH)
# adaptation rate of a counter that has seen n bits: 1 / (n + 1.5), floored at 1 / LIMIT
RATE = np.array([65536 * 2 // (2 * n + 3) for n in range(1024)], np.int32)


@njit(cache=True, inline="always")
def squash(d):
    if d > 2047:
        d = 2047
    if d < -2047:
        d = -2047
    return SQUASH[d + 2047]


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
    """Counter at st[i] (P(1) in 1/65536) with its bit count at st[i + COUNT]: rate 1 / (n + 1.5), n <= limit."""
    n = st[i + COUNT]
    st[i] += (((bit << 16) - st[i]) * RATE[n]) >> 16
    if n < limit:
        st[i + COUNT] = n + 1


@njit(cache=True, inline="always")
def clamp16(p):
    if p < 32:
        return 32
    if p > 65504:
        return 65504
    return p


@njit(cache=True, inline="always")
def model_bit(decode, st, buf, bit, mix, d, wsel, ai):
    """Code one binary decision d. Without mixing the counter of the first context alone gives the
    probability; with mixing the counters of all N_IN contexts (st[CX + k] + d) are stretched, mixed by the
    weight set wsel + d (trained online), refined by an APM (adaptive probability map) entry ai + d, and all of
    them learn from the bit. All state lives in the one array st: numba passes arrays with reference counting,
    so one array instead of eight made this call 3x cheaper."""
    if not mix:
        i0 = CP + st[CX] + d
        bit = code_bit(decode, st, buf, bit, clamp16(st[i0]))
        counter_update(st, i0, bit, 60)
        return bit
    wb = MW + (wsel + d) * (N_IN + 1)
    dot = 256 * st[wb + N_IN]
    for k in range(N_IN):
        v = STRETCH[st[CP + st[CX + k] + d] >> 4]
        st[SX + k] = v
        dot += v * st[wb + k]
    dot >>= 16
    pm = squash(dot)
    # APM: interpolate between two of 33 buckets over the stretched mixer output
    sd = dot
    if sd > 2047:
        sd = 2047
    if sd < -2047:
        sd = -2047
    sd += 2048
    wt = sd & 127
    a0 = APM + (ai + d) * 33 + (sd >> 7)
    pa = (st[a0] * (128 - wt) + st[a0 + 1] * wt) >> 7
    p16 = clamp16((pm * 16 + pa * 3) >> 2)
    bit = code_bit(decode, st, buf, bit, p16)
    # train the mixer on its own output error (lpaq, slower rate), the APM bucket nearer the input, the counters
    err = (((bit << 12) - pm) * MIX_LR) >> 2
    for k in range(N_IN):
        st[wb + k] += (st[SX + k] * err + 512) >> 10
        counter_update(st, CP + st[CX + k] + d, bit, 250)
    st[wb + N_IN] += (256 * err + 512) >> 10
    target = bit << 16
    if wt < 64:
        st[a0] += (target - st[a0]) >> 6
    else:
        st[a0 + 1] += (target - st[a0 + 1]) >> 6
    return bit


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


# ---- decision ids of one residual's binarisation: zero?, sign, unary magnitude class, top mantissa bits
D_SIGN = 0
D_FIRST = 1  # class >= expected class c0? (per c0)
D_UP = D_FIRST + MAX_K + 1  # class > t, knowing class >= t
D_DOWN = D_UP + MAX_K + 1  # class < t, knowing class <= t
D_M1 = D_DOWN + MAX_K + 1  # first bit below the leading one, per class
D_M2 = D_M1 + MAX_K + 1  # second bit, per class and first bit
N_D = D_M2 + 2 * (MAX_K + 1)
N_SIGNPAT = 9  # signs (-, 0, +) of the final errors at N and W
N_WSEL = N_D * (N_Q // 4)
N_IN = 4  # context models mixed per decision
MIX_LR = 2  # mixer learning rate, in quarters of lpaq's unit
# context tables: (first context, count) per model, each context owning N_D counters
CTX_SIZES = ((N_Q // 4) * 256, N_Q, (N_Q // 2) * N_SIGNPAT, N_Q)
CTX_TOTAL = sum(CTX_SIZES) * N_D
LOW_TOTAL = (MAX_K + 1) * MAX_K  # low mantissa bits: one counter per (class, bit)
# the coder's whole state is one int64 array, laid out as follows (offsets)
AC = 0  # arithmetic coder: low, high, code, position, overrun
CX = 8  # the N_IN current context offsets (into the counters)
SX = 16  # the N_IN stretched probabilities of the current decision
CP = 24  # counters: context models, then LOWP
LOWP = CP + CTX_TOTAL
COUNT = CTX_TOTAL + LOW_TOTAL  # a counter's bit count sits COUNT after it
MW = CP + 2 * COUNT  # mixer weights (N_IN + 1 per set)
APM = MW + N_WSEL * (N_IN + 1)
STATE_SIZE = APM + N_Q * N_D * 33


@njit(cache=True)
def run(decode, vol, buf, maxval, flags, tune, coefs):
    """Encode vol (slices x rows x cols, int32 values in 0..maxval) into buf, or decode buf into vol.

    Returns (code, bytes used): code OK or a negative ERR_*. Every loop is bounded by the volume's size and
    MAX_K, whatever the stream holds, and every array index is computed from bounded values."""
    S, R, C = vol.shape
    H, Wd = R + 3, C + 4
    use3p = (flags & F_3D_PRED) != 0
    use3e = (flags & F_3D_ERR) != 0
    use_bias = (flags & F_BIAS) != 0
    mix = (flags & F_MIX) != 0
    NP = N_PRED_2D + (N_PRED_3D if use3p else 0) + (1 if (flags & F_LMS) != 0 else 0) + (1 if (flags & F_LS) else 0)
    kmax = bitlen(maxval)  # |e| <= maxval < 2^kmax, so the class k = bitlen(|e|) - 1 < kmax

    cur = np.zeros((H, Wd), np.int64)
    prv = np.zeros((H, Wd), np.int64)
    erow = np.zeros((Wd, NP), np.int64)  # row-known part of each predictor's error sum
    perr = np.zeros((H, Wd, NP), np.int64)  # |8x - prediction_k| at each place of this slice
    perr_p = np.zeros((H, Wd, NP), np.int64)  # ... of the previous slice
    ferr = np.zeros((H, Wd), np.int64)  # signed 8x - final prediction (before rounding)
    ferr_p = np.zeros((H, Wd), np.int64)
    pk = np.zeros(NP, np.int64)
    use_lms = (flags & F_LMS) != 0
    use_ls = (flags & F_LS) != 0
    n_ls = N_LS if use3p else len(LS_IN)
    NT = N_TAPS_2D + (N_TAPS_3D if use3p else 0)
    lw = np.zeros(NT, np.int64)
    lu = np.zeros(NT, np.int64)
    wk = np.zeros(NP, np.int64)

    cbase = np.zeros(N_IN, np.int64)
    total = 0
    for k in range(N_IN):
        cbase[k] = total
        total += CTX_SIZES[k] * N_D
    cavg = np.full(N_Q, 4 * 256, np.int64)  # mean magnitude class per activity level, x256
    st = np.zeros(STATE_SIZE, np.int64)
    st[CP:CP + COUNT] = 32768
    for i in range(N_WSEL):
        for k in range(N_IN):
            st[MW + (N_IN + 1) * i + k] = 65536 // 3
    for i in range(N_Q * N_D):
        for j in range(33):
            st[APM + i * 33 + j] = squash((j - 16) * 128) * 16
    bias_sum = np.zeros(8 * 256, np.int64)
    bias_cnt = np.zeros(8 * 256, np.int64)

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

    for s in range(S):
        for r in range(R):
            i = r + 2
            if not decode and st[AC + 3] + 64 * C + 64 > buf.shape[0]:
                return ERR_OVERFLOW, st[AC + 3]
            if decode and st[AC + 4] > 0:
                return ERR_OVERRUN, st[AC + 3]
            cur[i, 0] = cur[i - 1, 2]
            cur[i, 1] = cur[i - 1, 2]
            # the part of each predictor's error sum already known for the whole row: the rows above and,
            # in 3-D, the previous slice around the same place (vectorisable, once per row)
            for j in range(2, C + 2):
                for k in range(NP):
                    erow[j, k] = (perr[i - 1, j, k] * 2 + perr[i - 1, j - 1, k] + perr[i - 1, j + 1, k]
                                  + perr[i - 1, j - 2, k] + perr[i - 1, j + 2, k] + perr[i - 2, j, k])
                if use3e:
                    for k in range(NP):
                        erow[j, k] += perr_p[i, j, k] + ((perr_p[i + 1, j, k] + perr_p[i, j + 1, k]
                                                          + perr_p[i - 1, j, k] + perr_p[i, j - 1, k]) >> 1)
            for c in range(C):
                j = c + 2
                W = cur[i, j - 1]
                N = cur[i - 1, j]
                NW = cur[i - 1, j - 1]
                NE = cur[i - 1, j + 1]
                WW = cur[i, j - 2]
                NN = cur[i - 2, j]
                NNE = cur[i - 2, j + 1]
                # ---- predictors, in 1/8 units
                pk[0] = N * 8
                pk[1] = W * 8
                pk[2] = (W + NE - N) * 8
                pk[3] = (W + NE) * 4
                pk[4] = (N + NE - NNE) * 8
                mn = min(W, N)
                mx = max(W, N)
                if NW >= mx:
                    med8 = mn * 8
                elif NW <= mn:
                    med8 = mx * 8
                else:
                    med8 = (W + N - NW) * 8
                P = prv[i, j]
                if use3p:
                    pk[5] = P * 8
                    pk[6] = (P + W - prv[i, j - 1]) * 8
                    pk[7] = (P + N - prv[i - 1, j]) * 8
                    pk[8] = (P + NE - prv[i - 1, j + 1]) * 8
                # ---- least-squares predictor with this slice's coefficients
                ls8 = 0
                if use_ls:
                    acc = 0
                    for t in range(len(LS_IN)):
                        acc += coefs[s, t] * cur[i + LS_DI[t], j + LS_DJ[t]]
                    for t in range(len(LS_IN), n_ls):
                        acc += coefs[s, t] * prv[i + LS_DI[t], j + LS_DJ[t]]
                    ls8 = (acc + (1 << (LS_SHIFT - 4))) >> (LS_SHIFT - 3)
                    pk[NP - 1 - (1 if use_lms else 0)] = ls8
                # ---- NLMS predictor: the neighbours' offsets from MED, weighted
                lnorm = 0
                if use_lms:
                    lbase = ls8 if (use_ls and tune[3] == 0) else med8
                    lu[0] = N * 8 - lbase
                    lu[1] = W * 8 - lbase
                    lu[2] = NW * 8 - lbase
                    lu[3] = NE * 8 - lbase
                    lu[4] = WW * 8 - lbase
                    lu[5] = NN * 8 - lbase
                    if use3p:
                        lu[6] = P * 8 - lbase
                        lu[7] = prv[i, j - 1] * 8 - lbase
                        lu[8] = prv[i - 1, j] * 8 - lbase
                        lu[9] = prv[i, j + 1] * 8 - lbase
                        lu[10] = prv[i + 1, j] * 8 - lbase
                        lu[11] = prv[i - 1, j - 1] * 8 - lbase
                        lu[12] = prv[i - 1, j + 1] * 8 - lbase
                        lu[13] = prv[i + 1, j - 1] * 8 - lbase
                        lu[14] = prv[i + 1, j + 1] * 8 - lbase
                    acc = 0
                    lnorm = 64
                    for t in range(NT):
                        acc += lw[t] * lu[t]
                        lnorm += lu[t] * lu[t]
                    pk[NP - 1] = lbase + ((acc + 32768) >> 16)
                # ---- blend: weight = 1 / (recent error sum)^2
                emin = 1 << 62
                for k in range(NP):
                    e = erow[j, k] + perr[i, j - 1, k] * 2 + perr[i, j - 2, k]
                    e += 4
                    if e < emin:
                        emin = e
                    wk[k] = e
                wmax = 0
                for k in range(NP):
                    wk[k] = inv_square(wk[k])
                    if wk[k] > wmax:
                        wmax = wk[k]
                sh = bitlen(wmax) - 24
                if sh < 0:
                    sh = 0
                num = 0
                den = 0
                for k in range(NP):
                    w = wk[k] >> sh
                    if (tune[2] >> k) & 1:
                        w = 0
                    num += w * pk[k]
                    den += w
                if den == 0:  # every error sum huge: plain average
                    for k in range(NP):
                        num += pk[k]
                    den = NP
                pred8 = (num + (den >> 1)) // den
                # ---- contexts: expected error from the final errors around, local texture
                fN = ferr[i - 1, j]
                fW = ferr[i, j - 1]
                E = abs(fN) + abs(fW) + ((abs(ferr[i - 1, j - 1]) + abs(ferr[i - 1, j + 1])) >> 1)
                if use3e:
                    E += abs(ferr_p[i, j]) + ((abs(ferr_p[i + 1, j]) + abs(ferr_p[i, j + 1])) >> 1)
                q = qlog(E >> 2)
                q2 = qlog(emin >> 3)
                if q2 >= N_Q:
                    q2 = N_Q - 1
                sp = (0 if fN < -4 else (1 if fN <= 4 else 2)) * 3 + (0 if fW < -4 else (1 if fW <= 4 else 2))
                # ---- texture: where the neighbours lie against the prediction (CALIC)
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
                # ---- bias cancellation per (activity, texture) context: add the mean error seen there
                raw8 = pred8
                bctx = (q >> 2) * 256 + tex
                if use_bias and bias_cnt[bctx] > 0:
                    pred8 += bias_sum[bctx] // bias_cnt[bctx]
                pred = (pred8 + 4) >> 3
                if pred < 0:
                    pred = 0
                if pred > maxval:
                    pred = maxval
                # ---- code the residual: zero?, sign, magnitude class (unary), mantissa
                spread = 0
                if mix:
                    pmin = pk[0]
                    pmax = pk[0]
                    for k in range(1, NP):
                        if pk[k] < pmin:
                            pmin = pk[k]
                        if pk[k] > pmax:
                            pmax = pk[k]
                    spread = qlog((pmax - pmin) >> 3)
                    st[CX + 0] = cbase[0] + bctx * N_D
                    st[CX + 1] = cbase[1] + q2 * N_D
                    st[CX + 2] = cbase[2] + ((q >> 1) * N_SIGNPAT + sp) * N_D
                    st[CX + 3] = cbase[3] + spread * N_D
                else:
                    st[CX + 0] = cbase[0] + q * N_D
                wq = (q >> 2) * N_D
                aq = q * N_D
                x = 0
                m = 0
                neg = 0
                if not decode:
                    x = vol[s, r, c]
                    m = abs(x - pred)
                    neg = 1 if x < pred else 0
                # class cl = bit length of |e|, coded by a unary walk from the class expected here (up or down)
                cl = bitlen(m)
                c0 = (cavg[q] + 128) >> 8
                if c0 < 1:
                    c0 = 1
                if c0 > kmax:
                    c0 = kmax
                up = model_bit(decode, st, buf, 1 if cl >= c0 else 0, mix, D_FIRST + c0, wq, aq)
                if up:
                    t = c0
                    while t < kmax:
                        if not model_bit(decode, st, buf, 1 if cl > t else 0, mix, D_UP + t, wq, aq):
                            break
                        t += 1
                else:
                    t = c0 - 1
                    while t > 0:
                        if not model_bit(decode, st, buf, 1 if cl < t else 0, mix, D_DOWN + t, wq, aq):
                            break
                        t -= 1
                cl = t
                cavg[q] += (cl * 256 - cavg[q]) >> 5
                if cl > 0:
                    neg = model_bit(decode, st, buf, neg, mix, D_SIGN, wq, aq)
                    mm = 1
                    if cl >= 2:
                        d = D_M1 + cl
                        bit = model_bit(decode, st, buf, (m >> (cl - 2)) & 1, mix, d, wq, aq)
                        mm = 2 + bit
                    if cl >= 3:
                        d = D_M2 + 2 * cl + (mm & 1)
                        bit = model_bit(decode, st, buf, (m >> (cl - 3)) & 1, mix, d, wq, aq)
                        mm = mm * 2 + bit
                    for b in range(cl - 4, -1, -1):
                        li = cl * MAX_K + b
                        bit = code_bit(decode, st, buf, (m >> b) & 1, clamp16(st[LOWP + li]))
                        counter_update(st, LOWP + li, bit, 30)
                        mm = mm * 2 + bit
                    m = mm
                    if decode:
                        x = pred - m if neg else pred + m
                        if x < 0 or x > maxval:
                            return ERR_RANGE, st[AC + 3]
                elif decode:
                    x = pred
                if decode:
                    vol[s, r, c] = x
                cur[i, j] = x
                x8 = x * 8
                for k in range(NP):
                    perr[i, j, k] = abs(x8 - pk[k])
                fe = x8 - pred8
                ferr[i, j] = fe
                if use_lms:
                    g = ((x8 - pk[NP - 1]) * (tune[0] << 16)) // lnorm
                    for t in range(NT):
                        lw[t] += (g * lu[t] + 32768) >> 16
                if use_bias:
                    bias_sum[bctx] += x8 - raw8
                    bias_cnt[bctx] += 1
                    if bias_cnt[bctx] >= 64:
                        bias_sum[bctx] >>= 1
                        bias_cnt[bctx] >>= 1
            cur[i, C + 2] = cur[i, C + 1]
            cur[i, C + 3] = cur[i, C + 1]
        # bottom pad, then this slice becomes the previous one; the next slice's top pad is its first row
        for j in range(Wd):
            cur[R + 2, j] = cur[R + 1, j]
        cur, prv = prv, cur
        perr, perr_p = perr_p, perr
        ferr, ferr_p = ferr_p, ferr
        for j in range(Wd):
            cur[0, j] = prv[2, j]
            cur[1, j] = prv[2, j]
    if decode:
        if st[AC + 4] > 0:
            return ERR_OVERRUN, st[AC + 3]
        return OK, st[AC + 3]
    # flush: the low end fixes the final interval
    for t in range(4):
        buf[st[AC + 3]] = (st[AC] >> (24 - 8 * t)) & 255
        st[AC + 3] += 1
    return OK, st[AC + 3]
