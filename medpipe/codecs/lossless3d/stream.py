"""The stream format: a fixed 40-byte header, then the payload (layout in the package docstring).

This module owns every check a decoder makes before it trusts a stream: length, magic, stream CRC, version,
sample type, shape limits, payload length. :func:`encode_volume` / :func:`decode_volume` are the public API.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from ...errors import MedpipeError

MAGIC = b"MP3D"
VERSION = 2  # 2: squash table from its formula, slab table (2026-12-05); 1 is still read (READS)
READS = (1, 2)  # version 1: lpaq's squash table (arith.TABLES), no slab table: one slab, no value table
HEADER = struct.Struct("<4sBBBBIIIiIIII")  # magic version flags bits type S R C lo maxval len crc_values crc_stream
HEADER_SIZE = HEADER.size  # 40
MODE_CODED, MODE_STORED, MODE_CONSTANT = 0, 1, 2  # high bits of the flags byte (model flags use the low 6)
MODE_SHIFT = 6
SAMPLE_TYPES = {0: np.dtype("u1"), 1: np.dtype("<u2"), 2: np.dtype("i1"), 3: np.dtype("<i2")}
TYPE_CODES = {dt.str.lstrip("<|"): code for code, dt in SAMPLE_TYPES.items()}
MAX_VOXELS = 1 << 32  # a larger header is refused before anything is allocated
MAX_SIDE = 1 << 20


class StreamError(MedpipeError):
    """A lossless3d stream is truncated, damaged, of an unknown version, or not such a stream at all."""


def natural_bits(volume: np.ndarray) -> int:
    """The fewest bits that hold every value (two's complement when the dtype is signed)."""
    if volume.size == 0:
        return 1
    lo, hi = int(volume.min()), int(volume.max())
    if volume.dtype.kind == "u":
        return max(1, hi.bit_length())
    return max(1, max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1)


def check_volume(volume: np.ndarray, bits: int | None) -> tuple[np.ndarray, int]:
    """The volume as a C-contiguous 3-D array of a supported type and its declared bits (ValueError if not)."""
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"lossless3d codes (slices, rows, cols) volumes; got {volume.ndim} dimensions")
    key = volume.dtype.str.lstrip("<>|=")
    if key not in TYPE_CODES or volume.dtype.byteorder == ">":
        raise ValueError(f"lossless3d codes uint8, uint16, int8 or int16 samples; got {volume.dtype}")
    if any(n > MAX_SIDE for n in volume.shape) or volume.size > MAX_VOXELS:
        raise ValueError(f"volume {volume.shape} exceeds lossless3d's limits ({MAX_SIDE} a side, 2^32 voxels)")
    need = natural_bits(volume)
    if bits is None:
        bits = need
    if not need <= bits <= volume.dtype.itemsize * 8:
        raise ValueError(f"bits={bits} cannot hold these {volume.dtype} values (they need {need})")
    return np.ascontiguousarray(volume), bits


SLAB_HEAD = struct.Struct("<HBB")  # slab count, options (bit 0: value table), reserved (0); a uint32 length per
# slab follows, then with a value table its uint32 length and the table (values.py), then the slabs' codes
OPT_TABLE = 1
MIN_SLAB = 64  # slices per slab at least, when the encoder chooses
AUTO_SLABS = 2  # slabs the encoder makes when the volume is deep enough: two cores decode it in parallel


def auto_slabs(slices: int) -> int:
    """The encoder's default: two independent slabs (one per core of a 2-core machine) once each holds MIN_SLAB
    slices, one below that. A boundary restarts the model's learning and codes the slab's first slice without a
    previous one: about a third of a compressed slice (bench/measured/lossless3d-2026-12-05), so at most about
    0.3 % from 128 slices up."""
    return max(1, min(AUTO_SLABS, slices // MIN_SLAB))


def slab_bounds(slices: int, slabs: int) -> list[int]:
    """First slice of each slab, then the end: slabs as equal as the slice count allows."""
    if not 1 <= slabs <= max(1, slices) or slabs > 0xFFFF:
        raise ValueError(f"slabs={slabs}: give 1 .. {max(1, slices)} for {slices} slices")
    return [k * slices // slabs for k in range(slabs + 1)]


def slab_table(parts: list[bytes], table: bytes | None = None) -> bytes:
    """The payload's head: slab count and options, each slab's length, the value table if any."""
    head = SLAB_HEAD.pack(len(parts), OPT_TABLE if table is not None else 0, 0)
    head += struct.pack(f"<{len(parts)}I", *map(len, parts))
    return head if table is None else head + struct.pack("<I", len(table)) + table


def read_slab_table(payload: bytes, shape: tuple, version: int = VERSION
                    ) -> tuple[list[int], list[int], bytes | None]:
    """(first slice of each slab + end, payload offset of each slab + end, the value table or None) from a coded
    payload; StreamError unless the table fits the shape and the payload exactly. A version-1 payload has no
    table: it is one slab's code."""
    if version == 1:
        return [0, shape[0]], [0, len(payload)], None
    if len(payload) < SLAB_HEAD.size:
        raise StreamError("lossless3d stream damaged: no slab table")
    slabs, options, reserved = SLAB_HEAD.unpack_from(payload)
    start = SLAB_HEAD.size + 4 * slabs
    if not 1 <= slabs <= shape[0] or options & ~OPT_TABLE or reserved or len(payload) < start:
        raise StreamError(f"lossless3d stream damaged: slab table ({slabs} slabs, options {options}) does not "
                          f"fit {shape[0]} slices")
    table = None
    if options & OPT_TABLE:
        if len(payload) < start + 4:
            raise StreamError("lossless3d stream damaged: no value table")
        n = struct.unpack_from("<I", payload, start)[0]
        table = payload[start + 4:start + 4 + n]
        start += 4 + n
    spans = [start]
    for n in struct.unpack_from(f"<{slabs}I", payload, SLAB_HEAD.size):
        spans.append(spans[-1] + n)
    if spans[-1] != len(payload):
        raise StreamError("lossless3d stream damaged: slab lengths do not add up to the payload")
    return slab_bounds(shape[0], slabs), spans, table


def values_crc(volume: np.ndarray) -> int:
    """CRC32 of the samples as little-endian bytes of their own type: what the decoder must give back."""
    little = np.ascontiguousarray(volume.astype(volume.dtype.newbyteorder("<"), copy=False))
    return zlib.crc32(little.reshape(-1).view(np.uint8))


def pack(volume: np.ndarray, bits: int, flags: int, mode: int, lo: int, maxval: int, payload: bytes) -> bytes:
    s, r, c = volume.shape
    head = HEADER.pack(MAGIC, VERSION, flags | (mode << MODE_SHIFT), bits, TYPE_CODES[volume.dtype.str.lstrip("<|")],
                       s, r, c, lo, maxval, len(payload), values_crc(volume), 0)
    crc = zlib.crc32(payload, zlib.crc32(head[:-4]))
    return head[:-4] + struct.pack("<I", crc) + payload


def unpack(data, expected_shape=None, expected_dtype=None) -> dict:
    """Validate a stream's header, then its length and stream CRC; the fields and the payload, or StreamError.

    The header is checked first, against itself, the caller's expectation (``expected_shape`` / ``expected_dtype``)
    and, without an expected shape, the memory available: a hostile header is refused before anything is read
    or allocated beyond the 40 header bytes."""
    data = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    if len(data) < HEADER_SIZE:
        raise StreamError(f"lossless3d stream truncated: {len(data)} bytes, the header alone is {HEADER_SIZE}")
    magic, version, flags, bits, tcode, s, r, c, lo, maxval, n, crc_values, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise StreamError(f"not a lossless3d stream (magic {bytes(magic)!r}, expected {MAGIC!r})")
    if version not in READS:
        raise StreamError(f"lossless3d stream version {version} is not supported (this decoder reads "
                          f"{', '.join(map(str, READS))}); upgrade medpipe")
    mode = flags >> MODE_SHIFT
    dtype = SAMPLE_TYPES.get(tcode)
    check_header(dtype, mode, bits, (s, r, c), lo, maxval, n)
    check_expected(dtype, (s, r, c), expected_shape, expected_dtype)
    if len(data) < HEADER_SIZE + n:
        raise StreamError(f"lossless3d stream truncated: {len(data)} bytes of {HEADER_SIZE + n}")
    if len(data) > HEADER_SIZE + n:
        raise StreamError(f"lossless3d stream has {len(data) - HEADER_SIZE - n} bytes after its end")
    payload = bytes(data[HEADER_SIZE:])
    if zlib.crc32(payload, zlib.crc32(bytes(data[:HEADER_SIZE - 4]))) != crc:
        raise StreamError("lossless3d stream damaged: its checksum does not match")
    return dict(version=version, flags=flags & 0x3F, mode=mode, bits=bits, dtype=dtype, shape=(s, r, c), lo=lo,
                maxval=maxval, crc_values=crc_values, payload=payload)


def min_coded_bytes(voxels: int) -> int:
    """A floor on a coded payload: every voxel costs at least one binary decision, and the coder's probabilities
    are clamped to [32, 65504] / 65536, so each decision costs at least 0.0007 bits (1 / 11363 byte per voxel;
    the floor uses 1 / 16384 to leave margin)."""
    return voxels // 16384


def check_header(dtype, mode: int, bits: int, shape: tuple, lo: int, maxval: int, n: int) -> None:
    """The header's fields against each other and the payload length it declares (StreamError if not)."""
    s, r, c = shape
    voxels = s * r * c
    if max(s, r, c) > MAX_SIDE or voxels > MAX_VOXELS:
        raise StreamError(f"lossless3d stream claims a {s} x {r} x {c} volume ({voxels:,} voxels): beyond the "
                          f"format's limits ({MAX_SIDE} a side, 2^32 voxels); refused before decoding")
    if (dtype is None or mode not in (MODE_CODED, MODE_STORED, MODE_CONSTANT) or not 1 <= bits <= dtype.itemsize * 8
            or maxval >= 1 << 16 or (mode == MODE_STORED and n != voxels * dtype.itemsize)
            or (mode == MODE_CONSTANT and n != 0)
            or not np.iinfo(dtype).min <= lo <= lo + maxval <= np.iinfo(dtype).max):
        raise StreamError("lossless3d stream header is inconsistent (sample type, bits, shape or payload length)")
    if mode == MODE_CODED and not min_coded_bytes(voxels) <= n < voxels * dtype.itemsize:
        raise StreamError(f"lossless3d stream header is inconsistent: a coded payload of {n:,} bytes cannot hold "
                          f"{s} x {r} x {c} voxels")


def check_expected(dtype, shape: tuple, expected_shape, expected_dtype) -> None:
    """The header against what the caller expects; without an expected shape, against the memory available."""
    if expected_shape is not None and tuple(int(v) for v in expected_shape) != tuple(shape):
        raise StreamError(f"lossless3d stream holds a {' x '.join(map(str, shape))} volume, expected "
                          f"{' x '.join(map(str, expected_shape))}")
    if expected_dtype is not None and np.dtype(expected_dtype).newbyteorder("<") != dtype:
        raise StreamError(f"lossless3d stream holds {dtype.name} samples, expected {np.dtype(expected_dtype).name}")
    if expected_shape is None:
        need = decode_bytes(dtype, shape)
        free = available_memory()
        if free is not None and need > free:
            raise StreamError(f"lossless3d stream claims a {' x '.join(map(str, shape))} volume: decoding needs "
                              f"{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB is available; refused")


def decode_bytes(dtype, shape: tuple) -> int:
    """Peak memory of a decode: the output plus two int32 volumes (the coder's working copy and, with a value
    table, the values looked up from it); the coder's row state is small."""
    s, r, c = shape
    return s * r * c * (dtype.itemsize + 8)


def available_memory() -> int | None:
    """What the run may use: the machine's free memory, or less under a cgroup limit (medpipe.memory)."""
    from ...memory import free_memory

    return free_memory()
