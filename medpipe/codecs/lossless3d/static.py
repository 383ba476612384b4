"""The static model (``model: static``): the encoder searches, the decoder follows.

Per slab the encoder fits integer linear predictors over the causal 3-D neighbourhood, one set per texture class
(least squares on a subsample; a set of in-plane taps for the slab's first slice), and a second stage over the
first stage's errors around the voxel; codes every voxel's folded residual as a hybrid-uint token (values below
16 whole; above: the sign, bit length and 2 top bits, the rest as raw bits) under an activity context (the
residuals around it, this slice and the previous one), counts the tokens per context and codes them with rANS
over those counts, which it stores. The decoder does one prediction, one table look-up and one rANS step per
voxel: no adaptation, no binary decisions. Design in the package docstring; trials in bench/measured/.

Slab layout (little-endian): weights (2 x N_CLS x N_W int32), class thresholds (N_CLS - 1 uint16), texture
shift (uint8), table length, rANS code length, extra-bit length (uint32 each), then the frequency table (the
N_CTX x N_TOK uint16 frequencies, deflated; each used context's row sums to 4096, an unused context's is all
zero), the rANS code (two bytes at a time, read forwards), the extra bits (LSB first).
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from . import static_kernel as K
from .stream import StreamError

F_STATIC = 32  # the stream flag (model feature bits 1-16 belong to model.py)
N_W = 2 * K.N_CLS * K.N_W
SLAB = struct.Struct(f"<{N_W}i{K.N_CLS - 1}HB3I")  # weights, class thresholds, texture shift, 3 lengths
MAX_WEIGHT = 1 << 20  # |weight| limit (bias: 2^31): the prediction's sum stays far inside int64
FIT_SAMPLES = 64_000  # voxels the least-squares fit looks at, rows spread over the slab
FEEDBACK_VOXELS = 600_000  # the feedback fit codes at most about this many voxels first (2 slices of 512 x 512)
NO_ERRORS = np.zeros((1, 1, 1), np.int32)  # the kernel's eout when the first-stage errors are not wanted
TABLE_BYTES = K.N_CTX * K.N_TOK * 2
MAX_FREQ = K.PROB_SCALE - 2  # every token costs >= 0.0007 bits: the stream floor (stream.min_coded_bytes) holds


def sh(a: np.ndarray, dy: int, dx: int, step: int, end: int) -> np.ndarray:
    """a around every step-th interior place (2 from the top and left, end from the bottom and right), moved
    by (dy, dx)."""
    return a[2 + dy:a.shape[0] - end + dy:step, 2 + dx:a.shape[1] - end + dx]


def texture(cur: np.ndarray, prv, step: int, end: int) -> np.ndarray:
    """The kernel's texture (its predictor class before the thresholds) at the same places as :func:`sh`: the
    row above's gradients and the previous slice's (zero for a slab's first slice)."""
    cur = cur.astype(np.int64)
    n = sh(cur, -1, 0, step, end)
    g = np.abs(n - sh(cur, -1, -1, step, end)) + np.abs(n - sh(cur, -1, 1, step, end))
    g += np.abs(n - sh(cur, -2, 0, step, end))
    if prv is not None:
        prv = prv.astype(np.int64)
        p = sh(prv, 0, 0, step, end)
        g += np.abs(p - sh(prv, 0, -1, step, end)) + np.abs(p - sh(prv, -1, 0, step, end))
    return g.reshape(-1)


def plane_taps(cur: np.ndarray, prv, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(taps, targets, textures) on every step-th interior row of a slice: float64 columns in the kernel's tap
    order, the previous slice's nine when prv is given."""
    offsets = [(0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0)]
    cols = [sh(cur, dy, dx, step, 1) for dy, dx in offsets]
    if prv is not None:
        offsets = [(0, 0), (0, -1), (-1, 0), (0, 1), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)]
        cols += [sh(prv, dy, dx, step, 1) for dy, dx in offsets]
    x = np.stack([col.reshape(-1) for col in cols], 1).astype(np.float64)
    return x, sh(cur, 0, 0, step, 1).reshape(-1), texture(cur, prv, step, 1)


def fit(x: np.ndarray, y: np.ndarray, bias: bool = True) -> np.ndarray:
    """Least-squares weights and bias in 1/2^SHIFT (bias last, 0 unless asked for), integers; MED-like
    W + N - NW if degenerate."""
    a = np.concatenate([x, np.ones((len(x), 1)) if bias else np.zeros((len(x), 1))], 1)
    try:  # normal equations: 10 x faster than lstsq's SVD on 10^5 rows, and the fit needs no more precision
        sol = np.linalg.solve(a.T @ a + 1e-6 * np.eye(a.shape[1]), a.T @ y.astype(np.float64))
    except np.linalg.LinAlgError:
        sol = np.zeros(a.shape[1])
    if not np.all(np.isfinite(sol)) or not sol[:-1].any():
        sol = np.zeros(a.shape[1])
        sol[:3] = (1, 1, -1)
    out = np.round(sol * (1 << K.SHIFT)).astype(np.int64)
    out[:-1] = np.clip(out[:-1], -MAX_WEIGHT + 1, MAX_WEIGHT - 1)
    out[-1] = np.clip(out[-1], -(1 << 31) + 1, (1 << 31) - 1)
    return out


def fit_classes(x: np.ndarray, y: np.ndarray, cls: np.ndarray, width: int) -> np.ndarray:
    """(N_CLS, N_TAPS + 1) weights: one least-squares fit per class (the pooled fit where a class is rare),
    width taps used, the rest zero."""
    out = np.zeros((K.N_CLS, K.N_W), np.int64)
    pooled = fit(x, y)
    for k in range(K.N_CLS):
        sel = cls == k
        f = fit(x[sel], y[sel]) if np.count_nonzero(sel) >= 50 * x.shape[1] else pooled
        out[k, :width], out[k, -1] = f[:width], f[-1]
    return out


def sample(vol: np.ndarray) -> tuple:
    """(taps, targets, textures) of the first slice (in-plane) and of up to 8 others (3-D; None for one
    slice), rows subsampled to about FIT_SAMPLES voxels each."""
    s, r, c = vol.shape
    per_slice = (r - 3) * (c - 3)
    first = plane_taps(vol[0], None, max(1, per_slice // FIT_SAMPLES))
    if s == 1:
        return first, None
    zs = np.unique(np.linspace(1, s - 1, min(s - 1, 8)).astype(int))
    step = max(1, per_slice * len(zs) // FIT_SAMPLES)
    parts = [plane_taps(vol[z], vol[z - 1], step) for z in zs]
    return first, tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def fit_weights(vol: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(weights (2, N_CLS, N_W) int64: [0] for a slab's first slice, in-plane taps, [1] for the others;
    class thresholds on texture >> shift (N_CLS - 1, equal-population classes); shift)."""
    s, r, c = vol.shape
    w = np.zeros((2, K.N_CLS, K.N_W), np.int64)
    w[:, :, :3] = (1 << K.SHIFT, 1 << K.SHIFT, -(1 << K.SHIFT))  # small planes: W + N - NW
    thr = np.zeros(K.N_CLS - 1, np.int64)
    if r < 5 or c < 5:
        return w, thr, 0
    first, rest = sample(vol)
    g = (rest or first)[2]
    shift = max(0, int(np.percentile(g, 99.9)).bit_length() - 12)
    thr = np.percentile(g >> shift, np.arange(1, K.N_CLS) * 100 / K.N_CLS).astype(np.int64)
    thr = np.clip(thr, 0, K.G_SIZE - 1)
    w[0] = fit_classes(first[0], first[1], np.searchsorted(thr, first[2] >> shift, "right"), 6)
    if rest is not None:
        w[1] = fit_classes(rest[0], rest[1], np.searchsorted(thr, rest[2] >> shift, "right"), K.N_TAPS)
    else:
        w[1] = w[0]
    return w, thr, shift


def fit_feedback(vol: np.ndarray, maxval: int, w: np.ndarray, thr: np.ndarray, shift: int) -> None:
    """Fill w's feedback weights (the first-stage errors around the voxel, class by class): the kernel codes
    two middle slices (or the one; of big slices a band of rows) with the feedback off, which gives those errors
    exactly as the decoder will see them, then least squares."""
    s, r, c = vol.shape
    if r < 7 or c < 7:
        return
    z0 = max(0, s // 2 - 1)
    rows = max(16, min(r, FEEDBACK_VOXELS // (min(s, 2) * c)))  # a band of rows from the middle of big slices
    sub = np.ascontiguousarray(vol[z0:z0 + 2, (r - rows) // 2:(r - rows) // 2 + rows])
    r = rows
    err = np.zeros(sub.shape, np.int32)
    n = sub.size
    K.run(False, sub, maxval, w, class_table(thr), shift, np.zeros(1, np.uint8), np.zeros(1, np.int64),
          np.empty(n, np.uint8), np.empty(n, np.uint8), np.zeros(K.N_CTX * K.N_TOK, np.int64), np.zeros(1, np.uint8),
          np.empty(2 * n + 16, np.uint8), err)
    step = max(1, (r - 4) * (c - 4) // FIT_SAMPLES)
    for z in range(len(sub)):
        e, ep = err[z], err[z - 1] if z else np.zeros_like(err[z])
        offsets = [(e, 0, -1), (e, 0, -2), (e, -1, -1), (e, -1, 0), (e, -1, 1), (e, -2, 0), (ep, 0, 0), (ep, 1, 0)]
        x = np.stack([sh(a, dy, dx, step, 2).reshape(-1) for a, dy, dx in offsets], 1).astype(np.float64)
        cls = np.searchsorted(thr, texture(sub[z], sub[z - 1] if z else None, step, 2) >> shift, "right")
        target = sh(e, 0, 0, step, 2).reshape(-1)
        for k in range(K.N_CLS):
            sel = cls == k
            if np.count_nonzero(sel) >= 50 * K.N_FB:
                w[0 if z == 0 else 1, k, K.N_TAPS:K.N_TAPS + K.N_FB] = fit(x[sel], target[sel], bias=False)[:-1]


def class_table(thr: np.ndarray) -> np.ndarray:
    """texture >> shift -> class (uint8, G_SIZE entries)."""
    return np.searchsorted(thr, np.arange(K.G_SIZE), "right").astype(np.uint8)


def normalise(counts: np.ndarray) -> np.ndarray:
    """Per-context frequencies summing to PROB_SCALE (each seen token 1 .. MAX_FREQ); unused contexts all zero.
    Only the encoder runs this; the decoder checks the result (:func:`read_table`)."""
    freq = np.zeros(counts.shape, np.int64)
    for q in range(len(counts)):
        row = counts[q].astype(np.int64)
        total = int(row.sum())
        if total == 0:
            continue
        f = np.where(row > 0, np.clip((row * K.PROB_SCALE + total // 2) // total, 1, MAX_FREQ), 0)
        if np.count_nonzero(f) == 1:  # one token only: 2 slots for a neighbour (the stream floor)
            t = int(np.flatnonzero(f)[0])
            f[t + 1 if t + 1 < K.N_TOK else t - 1] = 2
        while (diff := K.PROB_SCALE - int(f.sum())) != 0:  # largest first, within 1 .. MAX_FREQ
            room = np.where(f > 0, MAX_FREQ - f if diff > 0 else f - 1, 0)
            i = int(np.argmax(np.where(room > 0, f, -1)))
            f[i] += min(diff, room[i]) if diff > 0 else -min(-diff, room[i])
        freq[q] = f
    return freq


def encode_slab(part: np.ndarray, maxval: int) -> bytes | None:
    """One slab's static code, or None when it would not be smaller than raw 16-bit samples."""
    n = part.size
    w, thr, shift = fit_weights(part)
    fit_feedback(part, maxval, w, thr, shift)
    tok = np.empty(n, np.uint8)
    ctx = np.empty(n, np.uint8)
    bits = np.empty(2 * n + 16, np.uint8)
    counts = np.zeros(K.N_CTX * K.N_TOK, np.int64)
    status, nbits = K.run(False, part, maxval, w, class_table(thr), shift, np.zeros(1, np.uint8),
                          np.zeros(1, np.int64), tok, ctx, counts, np.zeros(1, np.uint8), bits, NO_ERRORS)
    if status != K.OK:
        raise RuntimeError(f"lossless3d static encoder failed with code {status}")  # a bug, not a user error
    freq = normalise(counts.reshape(K.N_CTX, K.N_TOK))
    start = np.zeros_like(freq)
    start[:, 1:] = np.cumsum(freq, 1)[:, :-1]
    out = np.empty(2 * n + 16, np.uint8)
    pos = K.rans_encode(tok, ctx, freq, start, out)
    if pos < 0 or len(out) - pos + nbits >= 2 * n:
        return None
    table = zlib.compress(freq.astype("<u2").tobytes(), 9)
    head = SLAB.pack(*w.reshape(-1).tolist(), *thr.tolist(), shift, len(table), len(out) - pos, nbits)
    return head + table + out[pos:].tobytes() + bits[:nbits].tobytes()


def read_slab(buf: bytes):
    """(weights, decoding table, rANS code, extra bits) of one slab, or StreamError: every length, weight and
    frequency is checked here, so the kernel only ever meets a consistent table."""
    if len(buf) < SLAB.size:
        raise StreamError("lossless3d static slab damaged: no slab head")
    fields = SLAB.unpack_from(buf)
    w = np.array(fields[:N_W], np.int64).reshape(2, K.N_CLS, K.N_W)
    thr = np.array(fields[N_W:N_W + K.N_CLS - 1], np.int64)
    shift, nt, nc, nb = fields[-4:]
    if (SLAB.size + nt + nc + nb != len(buf) or np.abs(w[:, :, :-1]).max() >= MAX_WEIGHT or shift > 20
            or np.any(np.diff(thr) < 0)):
        raise StreamError("lossless3d static slab damaged: lengths or weights out of range")
    at = SLAB.size
    lut, fs = read_table(buf[at:at + nt])
    code = np.zeros(nc + 4, np.uint8)  # 4 zero bytes after each: the kernel's reads ahead stay inside
    code[:nc] = np.frombuffer(buf, np.uint8, nc, at + nt)
    bits = np.zeros(nb + 4, np.uint8)
    bits[:nb] = np.frombuffer(buf, np.uint8, nb, at + nt + nc)
    return w, class_table(thr), shift, lut, fs, code, bits


def read_table(blob: bytes) -> np.ndarray:
    """The rANS decoding table from the stored frequencies; StreamError unless every row is empty or sums to
    PROB_SCALE with no frequency above MAX_FREQ (inflation bounded to the table's size)."""
    d = zlib.decompressobj()
    try:
        raw = d.decompress(blob, TABLE_BYTES + 1)
    except zlib.error:
        raw = b""
    if len(raw) != TABLE_BYTES or not d.eof or d.unused_data:
        raise StreamError("lossless3d static slab damaged: frequency table")
    freq = np.frombuffer(raw, "<u2").astype(np.int64).reshape(K.N_CTX, K.N_TOK)
    sums = freq.sum(1)
    if np.any((sums != 0) & (sums != K.PROB_SCALE)) or freq.max() > MAX_FREQ:
        raise StreamError("lossless3d static slab damaged: frequency table does not add up")
    lut = np.zeros(K.N_CTX * K.PROB_SCALE, np.uint8)  # an unused context decodes token 0 at frequency 0:
    for q in np.flatnonzero(sums):  # harmless, and a stream that reaches it fails its values CRC
        lut[q * K.PROB_SCALE:(q + 1) * K.PROB_SCALE] = np.repeat(np.arange(K.N_TOK), freq[q])
    start = np.zeros_like(freq)
    start[:, 1:] = np.cumsum(freq, 1)[:, :-1]
    return lut, ((freq << 16) | start | K.TOKEN_INFO).reshape(-1)


def ready() -> bool:
    """Whether this process has the kernels compiled or loaded already."""
    return bool(K.run.signatures and K.rans_encode.signatures)


def decode_slab(part: np.ndarray, buf: bytes, maxval: int) -> int:
    """Decode one slab into part (int32, its shape); the kernel's status (OK or a negative error)."""
    w, gtab, shift, lut, fs, code, bits = read_slab(buf)
    status, _ = K.run(True, part, maxval, w, gtab, shift, lut, fs, np.zeros(1, np.uint8), np.zeros(1, np.uint8),
                      np.zeros(1, np.int64), code, bits, NO_ERRORS)
    return status
