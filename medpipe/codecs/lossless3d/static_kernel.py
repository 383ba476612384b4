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


def _token_info() -> np.ndarray:
    """Per token: (extra bits k, the top bits hi, the sign bit lo), packed as k << 32 | hi << 40 | lo << 48:
    v = ((hi << k | extra) << 1) | lo (the decoder's table entries carry them next to frequency and start)."""
    out = np.zeros(N_TOK, np.int64)
    for t in range(N_TOK):
        if t < SPLIT:
            k, hi = 0, t >> 1
        else:
            k, hi = ((t - SPLIT) >> (MSB + 1)) + 3 - MSB, (1 << MSB) | ((t >> 1) & ((1 << MSB) - 1))
        out[t] = (k << 32) | (hi << 40) | ((t & 1) << 48)
    return out


TOKEN_INFO = _token_info()


def _tokens() -> np.ndarray:
    """The token of every value v < 2^17 (the encoder's look-up)."""
    out = np.zeros(1 << 17, np.uint8)
    for v in range(1 << 17):
        if v < SPLIT:
            out[v] = v
        else:
            n = (v >> 1).bit_length() - 1
            out[v] = SPLIT + ((n - 3) << (MSB + 1)) + (((v >> 1 >> (n - MSB)) & ((1 << MSB) - 1)) << 1) + (v & 1)
    return out


TOKENS = _tokens()
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



# One function on purpose: numba reference-counts every array handed to a function, even an inlined one, and the
# per-voxel chain here is the decode-speed goal (model.py measured 7-9 % for steps split out that way).
@njit(cache=True, nogil=True)
def run(decode, vol, maxval, w, gtab, gshift, lut, fs, tok, ctx, hist, code, bits, eout):
    """Encode vol (slices x rows x cols int32 in 0..maxval) into tok / ctx / bits, or decode code + bits into
    vol. w: (2, N_CLS, N_W) int64 weights (first index 0 for the slab's first slice, 1 for the others; per
    class: N_TAPS taps, N_FB feedback taps, the bias), chosen by the class gtab[min(texture >> gshift,
    G_SIZE - 1)]. lut: (N_CTX * PROB_SCALE) uint8 decoding table (slot -> token); fs: (N_CTX * N_TOK) int64,
    freq << 16 | start | TOKEN_INFO. hist: (N_CTX * N_TOK) int64 token counts the encoder adds to. eout: the
    first-stage errors, when the encoder asks for them (its shape is vol's), else (1, 1, 1).
    Returns (status, bytes of extra bits written or read). Loops are bounded by the volume's size; reads past
    the ends of code / bits (which end in 4 zero bytes when decoding) see zeros, and stop the decode at the end
    of the row."""
    S, R, C = vol.shape
    cur = np.zeros((R + 3, C + 3), np.int32)
    prv = np.zeros((R + 3, C + 3), np.int32)
    mcur = np.zeros((R + 2, C + 3), np.int32)
    mprv = np.zeros((R + 2, C + 3), np.int32)
    ecur = np.zeros((R + 3, C + 3), np.int32)
    eprv = np.zeros((R + 3, C + 3), np.int32)
    rcls = np.zeros(C, np.int64)  # per row: class, the sums that do not depend on the left (stage 1,
    s1 = np.zeros(C, np.int64)  # feedback, activity)
    s2 = np.zeros(C, np.int64)
    sa = np.zeros(C, np.int64)
    keep = eout.size == vol.size  # the encoder asks for the first-stage errors (fit_feedback)
    ncode, nbits = code.shape[0], bits.shape[0]
    if decode:  # the decoder's code and bits end in 4 zero bytes of padding (static.read_slab)
        ncode -= 4
        nbits -= 4
    x = np.int64(0)  # rANS state
    cpos = 0
    if decode:
        if ncode < 4 or nbits < 0:
            return ERR_OVERRUN, 0
        x = np.int64(code[0]) | (np.int64(code[1]) << 8) | (np.int64(code[2]) << 16) | (np.int64(code[3]) << 24)
        cpos = 4
    acc = np.int64(0)  # bit buffer (extra bits), LSB first
    nacc = 0
    bpos = 0
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
            # first, for the whole row, everything that does not depend on the voxels to the left (no chain
            # from voxel to voxel: the CPU overlaps it); then the chain itself, with W and WW in registers
            for xc in range(C):
                c = xc + PAD
                cn, cnw, cne, cnn, pp = cur[r - 1, c], cur[r - 1, c - 1], cur[r - 1, c + 1], cur[r - 2, c], prv[r, c]
                g = (abs(cn - cnw) + abs(cn - cne) + abs(cn - cnn) + abs(pp - prv[r, c - 1])
                     + abs(pp - prv[r - 1, c])) >> gshift
                if g >= G_SIZE:
                    g = G_SIZE - 1
                cl = gtab[g]
                rcls[xc] = cl
                wr = w[ws, cl]
                s1[xc] = (wr[1] * cn + wr[2] * cnw + wr[3] * cne + wr[5] * cnn + wr[6] * pp + wr[7] * prv[r, c - 1]
                          + wr[8] * prv[r - 1, c] + wr[9] * prv[r, c + 1] + wr[10] * prv[r + 1, c]
                          + wr[11] * prv[r - 1, c - 1] + wr[12] * prv[r - 1, c + 1] + wr[13] * prv[r + 1, c - 1]
                          + wr[14] * prv[r + 1, c + 1] + wr[N_W - 1] + half)
                s2[xc] = (wr[17] * ecur[r - 1, c - 1] + wr[18] * ecur[r - 1, c] + wr[19] * ecur[r - 1, c + 1]
                          + wr[20] * ecur[r - 2, c] + wr[21] * eprv[r, c] + wr[22] * eprv[r + 1, c] + half)
                sa[xc] = (3 * mcur[rm - 1, c] + 2 * mprv[rm, c] + mcur[rm - 1, c - 1] + mcur[rm - 1, c + 1]
                          + mprv[rm, c + 1] + mprv[rm + 1, c] + mprv[rm, c - 1] + mprv[rm - 1, c])
            cw, cww = cur[r, 1], cur[r, 0]  # the left pads
            ew = eww = mw = mww = np.int64(0)
            for xc in range(C):
                wr = w[ws, rcls[xc]]
                p1 = (s1[xc] + wr[0] * cw + wr[4] * cww) >> SHIFT
                p = p1 + ((s2[xc] + wr[15] * ew + wr[16] * eww) >> SHIFT)
                if p < 0:
                    p = 0
                elif p > maxval:
                    p = maxval
                a = (sa[xc] + 3 * mw + mww) >> 1
                if a > 4095:
                    a = 4095
                q = QTAB[a]
                m = p if p < maxval - p else maxval - p  # residuals within +-m fold by sign, beyond by size
                if decode:  # branch-free where the data decides (sign, renormalisation, refill)
                    slot = x & (PROB_SCALE - 1)
                    t = np.int64(lut[q * PROB_SCALE + slot])
                    e = fs[q * N_TOK + t]
                    x = ((e >> 16) & 0xFFFF) * (x >> PROB_BITS) + slot - (e & 0xFFFF)
                    b = np.int64(x < RANS_L)
                    cc = min(cpos, ncode)  # reads past the end see the zero padding; counted at the row's end
                    x = (x << (16 * b)) | ((np.int64(code[cc]) | (np.int64(code[cc + 1]) << 8)) * b)
                    cpos += 2 * b
                    b = np.int64(nacc < 32)
                    cc = min(bpos, nbits)
                    acc |= ((np.int64(bits[cc]) | (np.int64(bits[cc + 1]) << 8) | (np.int64(bits[cc + 2]) << 16)
                             | (np.int64(bits[cc + 3]) << 24)) * b) << nacc
                    nacc += 32 * b
                    bpos += 4 * b
                    k = (e >> 32) & 31
                    v = ((((e >> 40) & 15) << k | (acc & ((1 << k) - 1))) << 1) | ((e >> 48) & 1)
                    acc >>= k
                    nacc -= k
                    if v > maxval:
                        return ERR_RANGE, bpos
                    neg = (v & 1) - 1  # 0 for odd v (d > 0), -1 for even
                    inside = np.int64(v <= 2 * m)  # (near 0 or maxval both cases are common: no branch)
                    low = np.int64(p <= maxval - p)
                    val = (inside * (p + ((((v + 1) >> 1) ^ neg) - neg))
                           + (1 - inside) * (low * v + (1 - low) * (maxval - v)))
                    vol[z, y, xc] = val
                else:  # branch-free where the data decides (sign, token size, bit output)
                    val = vol[z, y, xc]
                    d = val - p
                    ad = abs(d)
                    inside = np.int64(ad <= m)
                    v = inside * ((ad << 1) - np.int64(d > 0)) + (1 - inside) * (m + ad)
                    t = np.int64(TOKENS[v])
                    k = (TOKEN_INFO[t] >> 32) & 31
                    acc |= ((v >> 1) & ((1 << k) - 1)) << nacc
                    nacc += k
                    bits[bpos] = acc & 255  # (nacc < 8 + 13 bits: three bytes hold it all)
                    bits[bpos + 1] = (acc >> 8) & 255
                    bits[bpos + 2] = (acc >> 16) & 255
                    bpos += nacc >> 3
                    acc >>= nacc & ~7
                    nacc &= 7
                    tok[i] = t
                    ctx[i] = q
                    hist[q * N_TOK + t] += 1
                    i += 1
                e1 = val - p1
                if e1 > E_MAX:
                    e1 = E_MAX
                elif e1 < -E_MAX:
                    e1 = -E_MAX
                c = xc + PAD
                cur[r, c] = val
                mcur[rm, c] = v
                ecur[r, c] = e1
                if keep:
                    eout[z, y, xc] = e1
                cww, cw, eww, ew, mww, mw = cw, val, ew, e1, mw, v
            cur[r, C + PAD] = cur[r, C + PAD - 1]
            if not decode and bpos + 3 * C + 3 > nbits:
                return ERR_OVERFLOW, bpos
            if decode and (cpos > ncode or bpos > nbits + 8):  # (the bit reader reads up to 4 bytes ahead)
                return ERR_OVERRUN, bpos
        for xx in range(C + 3):
            cur[R + PAD, xx] = cur[R + PAD - 1, xx]
        cur, prv = prv, cur
        mcur, mprv = mprv, mcur
        ecur, eprv = eprv, ecur
    if not decode and nacc > 0:
        bpos += 1  # the last byte is written already
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
        d = np.uint32(x) // np.uint32(f)  # x < 2^32 here: a 32-bit division is the faster one
        x = (np.int64(d) << PROB_BITS) + x - np.int64(d) * f + start[ctx[i], tok[i]]
    if pos < 4:
        return -1
    pos -= 4
    for k in range(4):
        out[pos + k] = (x >> (8 * k)) & 255
    return pos
