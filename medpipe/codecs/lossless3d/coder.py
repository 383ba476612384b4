"""encode_volume / decode_volume: the stream format around the numba coder of :mod:`.model`."""
from __future__ import annotations

import numpy as np

from . import model
from .stream import (MODE_CODED, MODE_CONSTANT, MODE_STORED, StreamError, check_volume, pack, unpack,
                     values_crc)

ERRORS = {model.ERR_OVERRUN: "truncated or damaged (the coder ran past its end)",
          model.ERR_RANGE: "damaged (a decoded value is out of range)"}


def fit_least_squares(work: np.ndarray, flags: int) -> np.ndarray:
    """Per slice, the least-squares weights of the LS taps (in-plane, and the previous slice's 3 x 3 when the
    3-D predictors are on), fitted on every other row of the slice itself, rounded to 1/4096: the encoder's
    first pass. Edge residuals (beyond 4x the median absolute MED-like error) are left out, so air/bone edges
    do not steer a predictor meant for tissue. Float here is harmless: only the rounded integers are used."""
    S, R, C = work.shape
    use3d = bool(flags & model.F_3D_PRED)
    n_in = len(model.LS_IN)
    coefs = np.zeros((S, model.N_LS), np.int64)
    prev = None
    for s in range(S):
        cur = np.pad(work[s].astype(np.float64), 2, mode="edge")
        y = cur[2:R + 2:2, 2:C + 2].ravel()
        feats = [cur[2 + di:R + 2 + di:2, 2 + dj:C + 2 + dj].ravel() for di, dj in model.LS_IN]
        if use3d and prev is not None:
            feats += [prev[2 + di:R + 2 + di:2, 2 + dj:C + 2 + dj].ravel() for di, dj in model.LS_PREV]
        A = np.stack(feats, 1)
        resid = np.abs(y - 0.5 * (A[:, 0] + A[:, 4]))
        active = resid > 0
        if active.sum() >= 4 * A.shape[1]:
            limit = 4 * np.median(resid[active])
            keep = active & (resid <= limit)
            A, y = A[keep], y[keep]
            G = A.T @ A + np.eye(A.shape[1]) * (1e-3 * np.trace(A.T @ A) / A.shape[1] + 1e-9)
            w = np.linalg.solve(G, A.T @ y)
            coefs[s, :A.shape[1]] = np.clip(np.round(w * (1 << model.LS_SHIFT)), -32768, 32767)
        else:  # (nearly) flat slice: predict from W
            coefs[s, 0] = 1 << model.LS_SHIFT
        prev = cur
    return coefs


def encode_volume(volume: np.ndarray, bits: int | None = None, flags: int = model.DEFAULT_FLAGS) -> bytes:
    """Code a (slices, rows, cols) uint8/uint16/int8/int16 volume losslessly; ``bits`` declares the sample
    depth (default: the fewest that hold the values). ``flags`` selects model features (for measurements)."""
    volume, bits = check_volume(volume, bits)
    if flags & ~model.ALL_FLAGS:
        raise ValueError(f"unknown lossless3d flags {flags:#x}")
    if volume.size == 0:
        return pack(volume, bits, flags, MODE_STORED, 0, 0, b"")
    lo, hi = int(volume.min()), int(volume.max())
    if lo == hi:
        return pack(volume, bits, flags, MODE_CONSTANT, lo, 0, b"")
    work = volume.astype(np.int32)
    work -= lo
    raw = volume.astype(volume.dtype.newbyteorder("<"), copy=False).tobytes()
    # room for the raw size and one row's worst case: a coding that would pass the raw size is stored instead
    buf = np.empty(len(raw) + 64 * volume.shape[2] + 64, np.uint8)
    coefs = fit_least_squares(work, flags) if flags & model.F_LS else np.zeros((len(work), model.N_LS), np.int64)
    code, used = model.run(False, work, buf, hi - lo, flags, model.TUNE, coefs)
    side = coefs.astype("<i2").tobytes() if flags & model.F_LS else b""
    used += len(side)
    if code == model.OK and used < len(raw):
        return pack(volume, bits, flags, MODE_CODED, lo, hi - lo, side + buf[:used - len(side)].tobytes())
    if code not in (model.OK, model.ERR_OVERFLOW):
        raise RuntimeError(f"lossless3d encoder failed with code {code}")  # a bug, not a user error
    return pack(volume, bits, flags, MODE_STORED, lo, hi - lo, raw)


def decode_volume(data) -> np.ndarray:
    """The volume a stream holds, same dtype, shape and values; StreamError if the stream is not whole."""
    head = unpack(data)
    dtype, shape, mode = head["dtype"], head["shape"], head["mode"]
    if mode == MODE_STORED:
        out = np.frombuffer(head["payload"], dtype).reshape(shape).astype(dtype.newbyteorder("="))
    elif mode == MODE_CONSTANT:
        out = np.full(shape, head["lo"], dtype.newbyteorder("="))
    else:
        work = np.empty(shape, np.int32)
        payload, flags = head["payload"], head["flags"]
        n_side = shape[0] * model.N_LS * 2 if flags & model.F_LS else 0
        if len(payload) < n_side:
            raise StreamError("lossless3d stream truncated: its predictor coefficients are incomplete")
        coefs = np.frombuffer(payload[:n_side], "<i2").astype(np.int64).reshape(shape[0], -1)
        if not n_side:
            coefs = np.zeros((shape[0], model.N_LS), np.int64)
        buf = np.frombuffer(bytearray(payload[n_side:]), np.uint8)
        code, _ = model.run(True, work, buf, head["maxval"], flags, model.TUNE, coefs)
        if code != model.OK:
            raise StreamError(f"lossless3d stream {ERRORS.get(code, f'damaged (code {code})')}")
        work += head["lo"]
        out = work.astype(dtype.newbyteorder("="))
    if values_crc(out) != head["crc_values"]:
        raise StreamError("lossless3d stream damaged: the decoded values do not match their checksum")
    return out
