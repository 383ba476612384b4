"""encode_volume / decode_volume: the stream format around the numba coder of :mod:`.model`."""
from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import values
from .stream import (MODE_CODED, MODE_CONSTANT, MODE_STORED, VERSION, StreamError, auto_slabs, check_volume,
                     pack, read_slab_table, slab_bounds, slab_table, unpack, values_crc)


def _import_models():
    """The numba model, compiled functions cached on disk (``cache=True``). numba caches next to the source, else
    (read-only site-packages) in the user's cache folder, or where NUMBA_CACHE_DIR says; where none of these is
    writable it refuses to decorate at import, so fall back to a private temporary folder: the coder then
    compiles once per process instead of failing."""
    try:
        from . import model, static
    except RuntimeError as exc:
        if "cannot cache" not in str(exc):
            raise
        _private_cache()
        from . import model, static
    return model, static


def _private_cache() -> None:
    import numba

    numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="medpipe-numba-")  # private (0700): no shared pickles


_checked: list[bool] = []
_checking = threading.Lock()  # a second thread waits: it must not load a kernel the first is about to drop


def _drop_stale_kernels() -> None:
    """Once per process, before model.py's kernels are first loaded: if their cache was compiled with another
    arith.py than this one (numba would load it all the same: see model.ARITH_CRC), clear that file's cache
    entries, numba's own remedy, so they compile afresh; where the cache cannot be written, into a private one."""
    from numba.core.dispatcher import Dispatcher

    with _checking:
        if _checked:
            return
        _checked.append(True)
        if model.run.signatures or model.built_on() == model.ARITH_CRC:
            return
        kernels = [f for f in vars(model).values() if isinstance(f, Dispatcher)]
        try:
            for f in kernels:
                f._cache.flush()
        except OSError:
            _private_cache()
            for f in kernels:
                f.enable_caching()


model, static = _import_models()
from .arith import TABLES  # noqa: E402 - squash and stretch per stream version; imported (cached) by the models

# the codec's "model" parameter: feature sets (bench/measured/lossless3d-2026-12-05/models.txt)
# static: the encoder fits, the decoder follows (static.py; bench/measured/lossless3d-2026-12-05b)
MODELS = {"full": model.DEFAULT_FLAGS, "lean": model.DEFAULT_FLAGS & ~model.F_MIX, "fast": 0,
          "static": static.F_STATIC}
KNOWN_FLAGS = model.ALL_FLAGS | static.F_STATIC
ERRORS = {model.ERR_OVERRUN: "truncated or damaged (the coder ran past its end)",
          model.ERR_RANGE: "damaged (a decoded value is out of range)"}


def encode_volume(volume: np.ndarray, bits: int | None = None, flags: int = model.DEFAULT_FLAGS,
                  slabs: int | None = None, threads: int = 1) -> bytes:
    """Code a (slices, rows, cols) uint8/uint16/int8/int16 volume losslessly; ``bits`` declares the sample
    depth (default: the fewest that hold the values). ``slabs``: independent runs of slices (default
    :func:`.stream.auto_slabs`), which ``threads`` code, and a decoder may decode, in parallel. ``flags``
    selects model features (for measurements)."""
    volume, bits = check_volume(volume, bits)
    _drop_stale_kernels()
    if not known_flags(flags):
        raise ValueError(f"unknown lossless3d flags {flags:#x}")
    if volume.size == 0:
        return pack(volume, bits, flags, MODE_STORED, 0, 0, b"")
    lo, hi = int(volume.min()), int(volume.max())
    if lo == hi:
        return pack(volume, bits, flags, MODE_CONSTANT, lo, 0, b"")
    work = volume.astype(np.int32)
    work -= lo
    bounds = slab_bounds(volume.shape[0], auto_slabs(volume.shape[0]) if slabs is None else slabs)
    work, coded_max, table, whole = choose_values(work, hi - lo, flags)
    if whole is not None and len(bounds) == 2:
        parts = [whole]  # the trial coded the whole volume already
    else:
        parts = in_threads(lambda k: code_slab(work[bounds[k]:bounds[k + 1]], coded_max, flags), len(bounds) - 1,
                           threads)
    if all(p is not None for p in parts):
        payload = slab_table(parts, table) + b"".join(parts)
        if len(payload) < volume.nbytes:
            return pack(volume, bits, flags, MODE_CODED, lo, hi - lo, payload)
    raw = volume.astype(volume.dtype.newbyteorder("<"), copy=False).tobytes()
    return pack(volume, bits, flags, MODE_STORED, lo, hi - lo, raw)


def code_slab(part: np.ndarray, maxval: int, flags: int) -> bytes | None:
    """One slab's code, or None when it would not be smaller than raw 16-bit samples."""
    if flags & static.F_STATIC:
        return static.encode_slab(part, maxval)
    # room for the raw size and one row's worst case: a coding that would pass the raw size is stored instead
    buf = np.empty(part.size * 2 + 64 * part.shape[2] + 64, np.uint8)
    status, used = model.run(False, part, buf, maxval, flags, TABLES[VERSION])
    if status not in (model.OK, model.ERR_OVERFLOW):
        raise RuntimeError(f"lossless3d encoder failed with code {status}")  # a bug, not a user error
    return buf[:used].tobytes() if status == model.OK else None


def known_flags(flags: int) -> bool:
    """The adaptive model's feature bits, or the static model's flag alone."""
    return not flags & ~KNOWN_FLAGS and (not flags & static.F_STATIC or flags == static.F_STATIC)


def choose_values(work: np.ndarray, maxval: int, flags: int):
    """(what to code, its maximum, the value table or None, the chosen code when the trial covered the whole
    volume, else None): ranks into the used values when a trial on the middle slices finds them smaller, table
    included (values.py)."""
    used = values.used_values(work, maxval)
    if not values.worth_trying(used, maxval):
        return work, maxval, None, None
    table = values.pack_table(used)
    sample = np.ascontiguousarray(values.trial_slices(work))
    whole = len(sample) == len(work)
    plain = code_slab(sample, maxval, flags)
    ranked = code_slab(values.to_ranks(sample, used), len(used) - 1, flags)
    if ranked is None or (plain is not None and len(ranked) + len(table) >= len(plain)):
        return work, maxval, None, plain if whole else None
    return values.to_ranks(work, used), len(used) - 1, table, ranked if whole else None


def in_threads(fn, n: int, threads: int, seconds: list | None = None) -> list:
    """[fn(0), ..., fn(n - 1)], on up to ``threads`` threads (the numba coder releases the GIL). ``seconds``, if
    given, receives each call's CPU time on its own thread (a busy shared machine makes wall time meaningless)."""
    def timed(k):
        t0 = time.thread_time()
        out = fn(k)
        if seconds is not None:
            seconds.append(time.thread_time() - t0)
        return out

    if threads <= 1 or n <= 1:
        return [timed(k) for k in range(n)]
    with ThreadPoolExecutor(min(threads, n)) as pool:
        return list(pool.map(timed, range(n)))


def warm_up() -> float:
    """Compile the coder (or load it from numba's cache) now, so that no timed call pays for it; the seconds this
    took, 0.0 when it was already done in this process."""
    if model.run.signatures and static.ready():
        return 0.0
    t0 = time.perf_counter()
    ramp = (np.arange(2 * 6 * 7, dtype=np.uint16).reshape(2, 6, 7) * 37) % 1000
    for flags in (model.DEFAULT_FLAGS, static.F_STATIC):
        if not np.array_equal(decode_volume(encode_volume(ramp, flags=flags)), ramp):
            raise RuntimeError("lossless3d warm-up did not reproduce its input")  # a bug, not a user error
    return time.perf_counter() - t0


def decode_volume(data, expected_shape=None, expected_dtype=None, threads: int = 1,
                  slab_seconds: list | None = None) -> np.ndarray:
    """The volume a stream holds, same dtype, shape and values; StreamError if the stream is not whole, or its
    header disagrees with ``expected_shape`` / ``expected_dtype`` (checked before anything is allocated), or,
    with no expected shape, it would not fit in the memory available. ``threads`` decode slabs in parallel;
    ``slab_seconds`` (a list) receives each slab's decode CPU time (bench/lossless3d.py: the 2-core speed-up)."""
    head = unpack(data, expected_shape, expected_dtype)
    _drop_stale_kernels()
    dtype, shape, mode = head["dtype"], head["shape"], head["mode"]
    if mode == MODE_STORED:
        out = np.frombuffer(head["payload"], dtype).reshape(shape).astype(dtype.newbyteorder("="))
    elif mode == MODE_CONSTANT:
        out = np.full(shape, head["lo"], dtype.newbyteorder("="))
    elif not known_flags(head["flags"]):
        raise StreamError(f"lossless3d stream uses model features {head['flags']:#x} this decoder lacks; "
                          "upgrade medpipe")
    else:
        work = np.empty(shape, np.int32)
        bounds, spans, table = read_slab_table(head["payload"], shape, head["version"])
        used = None if table is None else values.unpack_table(table, head["maxval"])
        coded_max = head["maxval"] if used is None else len(used) - 1
        payload = bytearray(head["payload"])

        def decode(k):
            if head["flags"] & static.F_STATIC:
                return static.decode_slab(work[bounds[k]:bounds[k + 1]], payload[spans[k]:spans[k + 1]], coded_max)
            buf = np.frombuffer(payload, np.uint8, spans[k + 1] - spans[k], spans[k])
            status, _ = model.run(True, work[bounds[k]:bounds[k + 1]], buf, coded_max, head["flags"],
                                  TABLES[head["version"]])
            return status

        for status in in_threads(decode, len(bounds) - 1, threads, slab_seconds):
            if status != model.OK:
                raise StreamError(f"lossless3d stream {ERRORS.get(status, f'damaged (code {status})')}")
        if used is not None:  # one look-up straight into the output type (int64 ranks -> values cost 3 x more)
            out = (used + head["lo"]).astype(dtype.newbyteorder("="))[work]
        else:
            work += head["lo"]
            out = work.astype(dtype.newbyteorder("="))
    if values_crc(out) != head["crc_values"]:
        raise StreamError("lossless3d stream damaged: the decoded values do not match their checksum")
    return out
