"""The static model's inner loops (numba): linear 3-D prediction, an activity context, hybrid-uint tokens coded
with rANS over per-context tables the encoder computed, raw extra bits.

:func:`run` both encodes (fills the token and context arrays and writes the extra bits) and decodes (reads
tokens with rANS and the extra bits): the prediction and the context are written once. :func:`rans_encode`
codes the tokens backwards afterwards, so that the decoder reads them forwards. Integer arithmetic only.
"""
from __future__ import annotations

import numpy as np
from numba import njit

OK, ERR_OVERRUN, ERR_RANGE, ERR_OVERFLOW = 0, -1, -2, -3
N_TAPS = 15  # W N NW NE WW NN | P PW PN PE PS PNW PNE PSW PSE (P: the previous slice at the same place)
N_FB = 8  # feedback taps: first-stage errors at W WW NW N NE NN | P PS; then a bias
N_W = N_TAPS + N_FB + 1
E_MAX = 1 << 16  # first-stage errors are clipped to +-E_MAX (bounded sums whatever the weights)
SHIFT = 14  # weights are in 1/2^SHIFT
PROB_BITS = 12
PROB_SCALE = 1 << PROB_BITS
RANS_L = 1 << 16  # state kept in [2^16, 2^32); renormalised 16 bits at a time
SPLIT, MSB = 16, 2  # hybrid uint: values below SPLIT are tokens; above, v's sign bit (its lowest), the bit
N_TOK = SPLIT + (16 - 3) * (2 << MSB)  # length of v >> 1 and its MSB top bits: 120 tokens for v < 2^17
N_CLS = 8  # predictor classes (the texture around the voxel): each has its own weights
G_SIZE = 4096  # class look-up table size (index: texture >> the slab's shift)
N_Q = 20  # activity levels
N_CTX = N_Q  # contexts (x predictor class: 0.5-1 % smaller, but a 2.6 MB decoding table; slower)
PAD = 2  # planes are padded by 2 above and left, 1 right and (previous slice) 1 below


def _activity_table() -> np.ndarray:
    """Context of an activity sum a (index min(a, 4095)): half-octaves of a / 2, capped at N_CTX - 1."""
    out = np.zeros(4096, np.int64)
    for a in range(4096):
        v = a >> 1
        q = 0 if v == 0 else 2 * v.bit_length() - 1 + (1 if v >= 2 and (v >> (v.bit_length() - 2)) & 1 else 0)
        out[a] = min(q, N_Q - 1)
    return out


QTAB = _activity_table()


@njit(cache=True, inline="always")
def bitlen(v):
    n = 0
    while v:
        v >>= 1
        n += 1
    return n


@njit(cache=True, nogil=True)
def run(decode, vol, maxval, w, gtab, gshift, lut, fs, tok, ctx, code, bits, eout):
    """Encode vol (slices x rows x cols int32 in 0..maxval) into tok / ctx / bits, or decode code + bits into
    vol. w: (2, N_CLS, N_TAPS + 1) int64 weights (first index 0 for the slab's first slice, 1 for the
    others), chosen by the class gtab[min(texture >> gshift, G_SIZE - 1)]. lut:
    (N_CTX * PROB_SCALE) uint8 decoding table (slot -> token); fs: (N_CTX * N_TOK) int64, freq << 16 | start. Returns
    (status, bytes of extra bits written or read). Loops are bounded by the volume's size; reads past the
    ends of code / bits count as overruns and stop the decode at the end of the row."""
    S, R, C = vol.shape
    cur = np.zeros((R + 3, C + 3), np.int64)
    prv = np.zeros((R + 3, C + 3), np.int64)
    mcur = np.zeros((R + 2, C + 3), np.int64)
    mprv = np.zeros((R + 2, C + 3), np.int64)
    ecur = np.zeros((R + 3, C + 3), np.int64)
    eprv = np.zeros((R + 3, C + 3), np.int64)
    keep = eout.size == vol.size  # the encoder asks for the first-stage errors (fit_feedback)
    ncode, nbits = code.shape[0], bits.shape[0]
    x = np.int64(0)  # rANS state
    cpos = 0
    if decode:
        if ncode < 4:
            return ERR_OVERRUN, 0
        x = np.int64(code[0]) | (np.int64(code[1]) << 8) | (np.int64(code[2]) << 16) | (np.int64(code[3]) << 24)
        cpos = 4
    acc = np.int64(0)  # bit buffer (extra bits), LSB first
    nacc = 0
    bpos = 0
    over = 0
    half = 1 << (SHIFT - 1)
    i = 0
    for z in range(S):
        ws = 0 if z == 0 else 1
        for xx in range(C + 3):  # the rows above the slice: the previous slice's first row
            cur[0, xx] = prv[PAD, xx]
            cur[1, xx] = prv[PAD, xx]
        for y in range(R):
            r = y + PAD
            cur[r, 0] = cur[r - 1, PAD]
            cur[r, 1] = cur[r - 1, PAD]
            rm = y + 1
            for xc in range(C):
                c = xc + PAD
                cw, cn, cnw, cne = cur[r, c - 1], cur[r - 1, c], cur[r - 1, c - 1], cur[r - 1, c + 1]
                cww, cnn = cur[r, c - 2], cur[r - 2, c]
                g = abs(cw - cnw) + abs(cn - cnw) + abs(cn - cne) + abs(cw - cww) + abs(cn - cnn)
                g >>= gshift
                if g >= G_SIZE:
                    g = G_SIZE - 1
                cl = gtab[g]
                wr = w[ws, cl]
                p = (wr[0] * cw + wr[1] * cn + wr[2] * cnw + wr[3] * cne + wr[4] * cww + wr[5] * cnn
                     + wr[6] * prv[r, c] + wr[7] * prv[r, c - 1] + wr[8] * prv[r - 1, c] + wr[9] * prv[r, c + 1]
                     + wr[10] * prv[r + 1, c] + wr[11] * prv[r - 1, c - 1] + wr[12] * prv[r - 1, c + 1]
                     + wr[13] * prv[r + 1, c - 1] + wr[14] * prv[r + 1, c + 1] + wr[N_W - 1] + half) >> SHIFT
                p1 = p
                p += (wr[15] * ecur[r, c - 1] + wr[16] * ecur[r, c - 2] + wr[17] * ecur[r - 1, c - 1]
                      + wr[18] * ecur[r - 1, c] + wr[19] * ecur[r - 1, c + 1] + wr[20] * ecur[r - 2, c]
                      + wr[21] * eprv[r, c] + wr[22] * eprv[r + 1, c] + half) >> SHIFT
                if p < 0:
                    p = 0
                elif p > maxval:
                    p = maxval
                a = (2 * (mcur[rm, c - 1] + mcur[rm - 1, c] + mprv[rm, c]) + mcur[rm - 1, c - 1]
                     + mcur[rm - 1, c + 1] + mprv[rm, c + 1] + mprv[rm + 1, c])
                if a > 4095:
                    a = 4095
                q = QTAB[a]
                m = p if p < maxval - p else maxval - p  # residuals within +-m fold by sign, beyond by size
                if decode:
                    slot = x & (PROB_SCALE - 1)
                    t = np.int64(lut[q * PROB_SCALE + slot])
                    e = fs[q * N_TOK + t]
                    x = (e >> 16) * (x >> PROB_BITS) + slot - (e & 0xFFFF)
                    if x < RANS_L:
                        if cpos + 1 < ncode:
                            x = (x << 16) | np.int64(code[cpos]) | (np.int64(code[cpos + 1]) << 8)
                        else:
                            x = x << 16
                            over += 1
                        cpos += 2
                    if t < SPLIT:
                        v = t
                    else:
                        n = ((t - SPLIT) >> (MSB + 1)) + 3  # bit length of v >> 1, less one
                        k = n - MSB
                        while nacc < k:
                            if bpos < nbits:
                                acc |= np.int64(bits[bpos]) << nacc
                            else:
                                over += 1
                            bpos += 1
                            nacc += 8
                        u = ((((1 << MSB) | ((t >> 1) & ((1 << MSB) - 1)))) << k) | (acc & ((1 << k) - 1))
                        v = (u << 1) | (t & 1)
                        acc >>= k
                        nacc -= k
                    if v > maxval:
                        return ERR_RANGE, bpos
                    if v <= 2 * m:
                        val = p + ((v + 1) >> 1) if v & 1 else p - (v >> 1)
                    elif p <= maxval - p:
                        val = v
                    else:
                        val = maxval - v
                    vol[z, y, xc] = val
                else:
                    val = vol[z, y, xc]
                    d = val - p
                    if d > m or d < -m:
                        v = m + (d if d > 0 else -d)
                    else:
                        v = 2 * d - 1 if d > 0 else -2 * d
                    if v < SPLIT:
                        t = v
                    else:
                        u = v >> 1
                        n = bitlen(u) - 1
                        k = n - MSB
                        t = SPLIT + ((n - 3) << (MSB + 1)) + (((u >> k) & ((1 << MSB) - 1)) << 1) + (v & 1)
                        acc |= (u & ((1 << k) - 1)) << nacc
                        nacc += k
                        while nacc >= 8:
                            if bpos >= nbits:
                                return ERR_OVERFLOW, bpos
                            bits[bpos] = acc & 255
                            bpos += 1
                            acc >>= 8
                            nacc -= 8
                    tok[i] = t
                    ctx[i] = q
                    i += 1
                cur[r, c] = val
                mcur[rm, c] = v
                e1 = val - p1
                if e1 > E_MAX:
                    e1 = E_MAX
                elif e1 < -E_MAX:
                    e1 = -E_MAX
                ecur[r, c] = e1
                if keep:
                    eout[z, y, xc] = e1
            cur[r, C + PAD] = cur[r, C + PAD - 1]
            if over:
                return ERR_OVERRUN, bpos
        for xx in range(C + 3):
            cur[R + PAD, xx] = cur[R + PAD - 1, xx]
        cur, prv = prv, cur
        mcur, mprv = mprv, mcur
        ecur, eprv = eprv, ecur
    if not decode and nacc > 0:
        if bpos >= nbits:
            return ERR_OVERFLOW, bpos
        bits[bpos] = acc & 255
        bpos += 1
    return OK, bpos


@njit(cache=True, nogil=True)
def rans_encode(tok, ctx, freq, start, out):
    """rANS-code tokens (backwards) with per-context frequencies summing to PROB_SCALE; the code is written at
    the end of out. Returns its first index in out (-1 when out is too small)."""
    x = np.int64(RANS_L)
    pos = out.shape[0]
    for i in range(tok.shape[0] - 1, -1, -1):
        f = np.int64(freq[ctx[i], tok[i]])
        if x >= (f << (32 - PROB_BITS)):
            if pos < 2:
                return -1
            pos -= 2
            out[pos] = x & 255
            out[pos + 1] = (x >> 8) & 255
            x >>= 16
        x = ((x // f) << PROB_BITS) + (x % f) + start[ctx[i], tok[i]]
    if pos < 4:
        return -1
    pos -= 4
    for k in range(4):
        out[pos + k] = (x >> (8 * k)) & 255
    return pos
