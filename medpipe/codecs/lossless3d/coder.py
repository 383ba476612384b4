"""encode_volume / decode_volume: the stream format around the numba coder of :mod:`.model`."""
from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .stream import (MODE_CODED, MODE_CONSTANT, MODE_STORED, StreamError, auto_slabs, check_volume, pack,
                     read_slab_table, slab_bounds, slab_table, unpack, values_crc)


def _import_model():
    """The numba model, compiled functions cached on disk (``cache=True``). numba caches next to the source, else
    (read-only site-packages) in the user's cache folder, or where NUMBA_CACHE_DIR says; where none of these is
    writable it refuses to decorate at import, so fall back to a private temporary folder: the coder then
    compiles once per process instead of failing."""
    try:
        from . import model
    except RuntimeError as exc:
        if "cannot cache" not in str(exc):
            raise
        import numba

        numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="medpipe-numba-")  # private (0700): no shared pickles
        from . import model
    return model


model = _import_model()

ERRORS = {model.ERR_OVERRUN: "truncated or damaged (the coder ran past its end)",
          model.ERR_RANGE: "damaged (a decoded value is out of range)"}


def encode_volume(volume: np.ndarray, bits: int | None = None, flags: int = model.DEFAULT_FLAGS,
                  slabs: int | None = None, threads: int = 1) -> bytes:
    """Code a (slices, rows, cols) uint8/uint16/int8/int16 volume losslessly; ``bits`` declares the sample
    depth (default: the fewest that hold the values). ``slabs``: independent runs of slices (default
    :func:`.stream.auto_slabs`), which ``threads`` code, and a decoder may decode, in parallel. ``flags``
    selects model features (for measurements)."""
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
    bounds = slab_bounds(volume.shape[0], auto_slabs(volume.shape[0]) if slabs is None else slabs)

    def code(k):
        part = work[bounds[k]:bounds[k + 1]]
        # room for the raw size and one row's worst case: a coding that would pass the raw size is stored instead
        buf = np.empty(part.size * volume.itemsize + 64 * volume.shape[2] + 64, np.uint8)
        status, used = model.run(False, part, buf, hi - lo, flags)
        if status not in (model.OK, model.ERR_OVERFLOW):
            raise RuntimeError(f"lossless3d encoder failed with code {status}")  # a bug, not a user error
        return buf[:used].tobytes() if status == model.OK else None

    parts = in_threads(code, len(bounds) - 1, threads)
    if all(p is not None for p in parts):
        payload = slab_table(parts) + b"".join(parts)
        if len(payload) < len(raw):
            return pack(volume, bits, flags, MODE_CODED, lo, hi - lo, payload)
    return pack(volume, bits, flags, MODE_STORED, lo, hi - lo, raw)


def in_threads(fn, n: int, threads: int) -> list:
    """[fn(0), ..., fn(n - 1)], on up to ``threads`` threads (the numba coder releases the GIL)."""
    if threads <= 1 or n <= 1:
        return [fn(k) for k in range(n)]
    with ThreadPoolExecutor(min(threads, n)) as pool:
        return list(pool.map(fn, range(n)))


def warm_up() -> float:
    """Compile the coder (or load it from numba's cache) now, so that no timed call pays for it; the seconds this
    took, 0.0 when it was already done in this process."""
    if model.run.signatures:
        return 0.0
    t0 = time.perf_counter()
    ramp = (np.arange(2 * 6 * 7, dtype=np.uint16).reshape(2, 6, 7) * 37) % 1000
    data = encode_volume(ramp)
    if not np.array_equal(decode_volume(data), ramp):
        raise RuntimeError("lossless3d warm-up did not reproduce its input")  # a bug, not a user error
    return time.perf_counter() - t0


def decode_volume(data, expected_shape=None, expected_dtype=None, threads: int = 1) -> np.ndarray:
    """The volume a stream holds, same dtype, shape and values; StreamError if the stream is not whole, or its
    header disagrees with ``expected_shape`` / ``expected_dtype`` (checked before anything is allocated), or,
    with no expected shape, it would not fit in the memory available. ``threads`` decode slabs in parallel."""
    head = unpack(data, expected_shape, expected_dtype)
    dtype, shape, mode = head["dtype"], head["shape"], head["mode"]
    if mode == MODE_STORED:
        out = np.frombuffer(head["payload"], dtype).reshape(shape).astype(dtype.newbyteorder("="))
    elif mode == MODE_CONSTANT:
        out = np.full(shape, head["lo"], dtype.newbyteorder("="))
    elif head["flags"] & ~model.ALL_FLAGS:
        raise StreamError(f"lossless3d stream uses model features {head['flags']:#x} this decoder lacks; upgrade medpipe")
    else:
        work = np.empty(shape, np.int32)
        bounds, spans = read_slab_table(head["payload"], shape)
        payload = bytearray(head["payload"])

        def decode(k):
            buf = np.frombuffer(payload, np.uint8, spans[k + 1] - spans[k], spans[k])
            status, _ = model.run(True, work[bounds[k]:bounds[k + 1]], buf, head["maxval"], head["flags"])
            return status

        for status in in_threads(decode, len(bounds) - 1, threads):
            if status != model.OK:
                raise StreamError(f"lossless3d stream {ERRORS.get(status, f'damaged (code {status})')}")
        work += head["lo"]
        out = work.astype(dtype.newbyteorder("="))
    if values_crc(out) != head["crc_values"]:
        raise StreamError("lossless3d stream damaged: the decoded values do not match their checksum")
    return out
