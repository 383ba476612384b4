"""The full model's fitted predictor (``model: hybrid``, issue 20): per slab the encoder fits a linear 3-D
predictor by least squares (static.py's fitter, one class) and stores its weights; the full model's blend gets its
prediction as one more predictor, weighed by its recent errors like the others.

The predictor is the static model's (:mod:`.static_kernel`): 15 causal taps (W N NW NE WW NN and the previous
slice's 3 x 3) and a bias, then a second stage over its own errors at W WW NW N NE NN and the previous slice's
same place and below; one weight set for the slab's first slice (in-plane taps), one for the others. Fitted per
texture class as the static model does, it was 0.3 % larger on the crops than one pooled fit: the blend chooses
by local errors already, and 8 sets cost 850 bytes a slab instead of 192.

Slab layout (little-endian, before the arithmetic code): WEIGHTS, 2 x N_W int32 (first slice, then the others;
per set the N_TAPS taps, the N_FB feedback taps, the bias; in 1 / 2^SHIFT). The decoder refuses a block whose
taps reach MAX_WEIGHT before the model runs; with that bound every sum stays far inside int64.
"""
from __future__ import annotations

import struct

import numpy as np
from numba import njit

from . import static
from . import static_kernel as K
from .stream import StreamError

F_FIT = 32  # with F_3D_PRED: the full model plus this predictor (32 alone is the static model: static.F_STATIC)
WEIGHTS = struct.Struct(f"<{2 * K.N_W}i")
FE_MAX = 1 << 19  # the first stage's errors (in 1/8) are clipped to this: bounded sums whatever the weights
NO_WEIGHTS = np.zeros((0, K.N_W), np.int64)  # run()'s weights when the model has no fitted predictor


def fit(vol: np.ndarray, maxval: int) -> np.ndarray:
    """(2, N_W) int64 weights of a slab (int32 vol, values 0..maxval): static's least-squares fit with one class,
    then its second stage fitted on the first stage's errors."""
    w = np.zeros((2, K.N_CLS, K.N_W), np.int64)
    w[:, :, :3] = (1 << K.SHIFT, 1 << K.SHIFT, -(1 << K.SHIFT))  # small planes: W + N - NW
    if vol.shape[1] < 5 or vol.shape[2] < 5:
        return w[:, 0].copy()
    first, rest = static.sample(vol)
    w[0] = static.fit_classes(first[0], first[1], np.zeros(len(first[1]), np.int64), 6)
    w[1] = w[0] if rest is None else static.fit_classes(rest[0], rest[1], np.zeros(len(rest[1]), np.int64), K.N_TAPS)
    # every texture in class 0: thresholds at the top of the table, textures shifted to 0
    static.fit_feedback(vol, maxval, w, np.full(K.N_CLS - 1, K.G_SIZE - 1, np.int64), 24)
    return w[:, 0].copy()


def pack_weights(w: np.ndarray) -> bytes:
    return WEIGHTS.pack(*w.reshape(-1).tolist())


def read_weights(payload, start: int, end: int) -> tuple[np.ndarray, int]:
    """(weights, where the arithmetic code starts) of the slab payload[start:end], or StreamError (one line) if
    they are missing or out of range."""
    if end - start < WEIGHTS.size:
        raise StreamError("lossless3d slab damaged: no fitted-predictor weights")
    w = np.array(WEIGHTS.unpack_from(payload, start), np.int64).reshape(2, K.N_W)
    if np.abs(w[:, :-1]).max() >= static.MAX_WEIGHT:
        raise StreamError("lossless3d slab damaged: fitted-predictor weights out of range")
    return w, start + WEIGHTS.size


@njit(cache=True, inline="always")
def fit_row(fs, fe, fe_p, cur, prv, wr, i, C):
    """The fitted prediction's parts known for the whole row i (everything but W, WW and their errors), in
    1/8 << SHIFT, rounding included: fs[0, j] the first stage, fs[1, j] the second; fs[2, 0..3] the weights of
    W, WW (x 8) and of the errors at W, WW, for the voxel loop."""
    for j in range(2, C + 2):
        cn, cnw, cne, cnn, pp = cur[i - 1, j], cur[i - 1, j - 1], cur[i - 1, j + 1], cur[i - 2, j], prv[i, j]
        fs[0, j] = ((wr[1] * cn + wr[2] * cnw + wr[3] * cne + wr[5] * cnn + wr[6] * pp + wr[7] * prv[i, j - 1]
                     + wr[8] * prv[i - 1, j] + wr[9] * prv[i, j + 1] + wr[10] * prv[i + 1, j]
                     + wr[11] * prv[i - 1, j - 1] + wr[12] * prv[i - 1, j + 1] + wr[13] * prv[i + 1, j - 1]
                     + wr[14] * prv[i + 1, j + 1] + wr[K.N_W - 1]) * 8 + (1 << (K.SHIFT - 1)))
        fs[1, j] = (wr[17] * fe[i - 1, j - 1] + wr[18] * fe[i - 1, j] + wr[19] * fe[i - 1, j + 1]
                    + wr[20] * fe[i - 2, j] + wr[21] * fe_p[i, j] + wr[22] * fe_p[i + 1, j] + (1 << (K.SHIFT - 1)))
    fs[2, 0] = 8 * wr[0]
    fs[2, 1] = 8 * wr[4]
    fs[2, 2] = wr[15]
    fs[2, 3] = wr[16]
