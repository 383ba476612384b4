"""lossless3d's static model (issue 20): exact on real CT and odd shapes, and hostile slabs refused in one line."""
from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

pytest.importorskip("numba", reason="lossless3d needs numba (pip install numba)")

from medpipe.codecs.lossless3d import StreamError, decode_volume, encode_volume, stream  # noqa: E402
from medpipe.codecs.lossless3d import static_kernel as K  # noqa: E402
from medpipe.codecs.lossless3d.coder import MODELS  # noqa: E402
from medpipe.codecs.lossless3d.static import F_STATIC, SLAB, read_slab  # noqa: E402

from conftest import ROOT, SAMPLE  # noqa: E402
from test_lossless3d import smooth  # noqa: E402

pytestmark = pytest.mark.slow  # numba: compiled once per machine (about 15 s), loaded from its cache after


def round_trip(volume: np.ndarray, **kw) -> bytes:
    data = encode_volume(volume, flags=F_STATIC, **kw)
    back = decode_volume(data, threads=kw.get("threads", 1))
    assert back.dtype == volume.dtype and back.shape == volume.shape
    np.testing.assert_array_equal(back, volume)
    return data


def test_the_setting_is_the_stream_flag():
    assert MODELS["static"] == F_STATIC and stream.unpack(round_trip(smooth((3, 20, 30), 0, 4095, np.uint16)))[
        "flags"] == F_STATIC


@pytest.mark.parametrize("shape", [(3, 65, 97), (1, 1, 1), (1, 64, 64), (2, 1, 7), (5, 3, 1), (4, 17, 2),
                                   (2, 9, 9), (1, 7, 300)])
def test_round_trip_odd_sizes(shape):
    round_trip(smooth(shape, 0, 4095, np.uint16))


@pytest.mark.parametrize("dtype,lo,hi", [(np.uint8, 0, 255), (np.uint16, 0, 65535), (np.int16, -32768, 32767),
                                         (np.int16, -1024, 3071), (np.int8, -128, 127)])
def test_round_trip_depths_and_the_ends_of_the_range(dtype, lo, hi):
    vol = smooth((3, 33, 41), lo, hi, dtype)
    vol[0, 0, 0], vol[-1, -1, -1], vol[1, 5, 5], vol[1, 5, 6] = lo, hi, lo, hi  # jumps across the whole range
    round_trip(vol)


@pytest.mark.parametrize("slabs,threads", [(1, 1), (2, 2), (3, 2)])
def test_slabs_on_threads(slabs, threads):
    round_trip(smooth((7, 30, 40), 0, 4095, np.uint16), slabs=slabs, threads=threads)


def test_real_ct_is_exact_and_smaller_than_jpeg_ls():
    pydicom = pytest.importorskip("pydicom")
    imagecodecs = pytest.importorskip("imagecodecs")
    files = sorted(SAMPLE.glob("*.dcm"))[:6]
    if not files:
        pytest.skip(f"sample not present: {SAMPLE}")
    vol = np.stack([pydicom.dcmread(f).pixel_array for f in files])
    vol = (vol.astype(np.int32) - int(vol.min())).astype(np.uint16)
    data = round_trip(vol)
    jls = sum(len(imagecodecs.jpegls_encode(s)) for s in vol)
    assert len(data) < jls, (len(data), jls)


def test_the_floor_on_coded_payloads_holds():
    """The most compressible volume (one voxel differs): the stream's floor (min_coded_bytes) still accepts it,
    because no frequency exceeds 4094 / 4096."""
    vol = np.zeros((8, 256, 256), np.uint16)
    vol[3, 100, 100] = 1
    data = round_trip(vol)
    assert stream.unpack(data)["mode"] == stream.MODE_CODED
    assert len(data) - stream.HEADER_SIZE >= stream.min_coded_bytes(vol.size) * 1.3


def test_mixed_flags_are_refused_both_ways():
    from medpipe.codecs.lossless3d import model

    vol = smooth((3, 30, 40), 0, 4095, np.uint16)
    with pytest.raises(ValueError, match="unknown lossless3d flags"):
        encode_volume(vol, flags=F_STATIC | model.F_MIX)
    data = bytearray(encode_volume(vol, flags=F_STATIC))
    assert stream.unpack(bytes(data))["mode"] == stream.MODE_CODED
    data[5] |= model.F_MIX
    with pytest.raises(StreamError, match="upgrade medpipe"):
        decode_volume(resealed(bytes(data)))


def resealed(data: bytes, payload: bytes | None = None) -> bytes:
    """The stream with its payload replaced (length and CRC made right): the decoder itself meets the lie."""
    payload = data[stream.HEADER_SIZE:] if payload is None else payload
    head = bytearray(data[:stream.HEADER_SIZE])
    struct.pack_into("<I", head, 28, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(bytes(head[:-4])))
    return bytes(head[:-4]) + struct.pack("<I", crc) + payload


def with_slab(data: bytes, change) -> bytes:
    """The one-slab stream with its slab replaced by change(slab)."""
    payload = stream.unpack(data)["payload"]
    head = stream.SLAB_HEAD.size + 4
    slab = change(payload[head:])
    return resealed(data, payload[:stream.SLAB_HEAD.size] + struct.pack("<I", len(slab)) + slab)


def test_hostile_slabs_are_refused_in_one_line():
    data = encode_volume(smooth((3, 30, 40), 0, 4095, np.uint16), flags=F_STATIC)
    slab = stream.unpack(data)["payload"][stream.SLAB_HEAD.size + 4:]
    read_slab(slab)  # the real one passes
    fields = list(SLAB.unpack_from(slab))
    table = slab[SLAB.size:SLAB.size + fields[-3]]
    freq = np.frombuffer(zlib.decompress(table), "<u2").copy()
    used = int(np.flatnonzero(freq)[0])

    def table_as(f):
        blob = zlib.compress(f.astype("<u2").tobytes())
        return lambda s: SLAB.pack(*fields[:-3], len(blob), *fields[-2:]) + blob + s[SLAB.size + fields[-3]:]

    def field(k, value):
        return lambda s: SLAB.pack(*fields[:k], value, *fields[k + 1:]) + s[SLAB.size:]

    over = freq.copy()
    over[used] += 1
    huge = freq.copy()
    huge[:K.N_TOK] = 0
    huge[0] = K.PROB_SCALE
    bomb = zlib.compress(bytes(10 ** 6))
    lies = [(table_as(over), "does not add up"), (table_as(huge), "does not add up"),
            (table_as(freq[:-1]), "frequency table"),
            (lambda s: SLAB.pack(*fields[:-3], len(bomb), *fields[-2:]) + bomb + s[SLAB.size + fields[-3]:],
             "frequency table"),
            (field(0, 1 << 22), "weights out of range"), (field(len(fields) - 4, 40), "out of range"),
            (field(len(fields) - 2, fields[-2] + 1), "lengths"), (lambda s: s[:SLAB.size - 1], "no slab head")]
    for change, why in lies:
        with pytest.raises(StreamError, match=why):
            decode_volume(with_slab(data, change))


def test_damaged_slabs_behind_a_valid_checksum_fail_cleanly():
    """Random damage and cuts inside the slab (CRC recomputed), in a child process with bounds checking on and
    a timeout: StreamError every time, never a crash, a hang or wrong values returned."""
    code = textwrap.dedent("""
        import struct, zlib, numpy as np
        from medpipe.codecs.lossless3d import StreamError, decode_volume, encode_volume, stream
        from medpipe.codecs.lossless3d.static import F_STATIC
        rng = np.random.default_rng(5)
        s, r, c = np.indices((3, 30, 40))
        vol = (2000 + 900 * np.sin(r / 6) * np.cos(c / 9) + 40 * s + rng.normal(0, 20, s.shape)).astype(np.uint16)
        data = encode_volume(vol, flags=F_STATIC)
        H = stream.HEADER_SIZE
        def resealed(bad):
            struct.pack_into("<I", bad, 28, len(bad) - H)
            crc = zlib.crc32(bytes(bad[H:]), zlib.crc32(bytes(bad[:H - 4])))
            return bytes(bad[:H - 4]) + struct.pack("<I", crc) + bytes(bad[H:])
        caught = 0
        for trial in range(300):
            bad = bytearray(data)
            if trial % 3 == 0:
                bad = bad[:H + int(rng.integers(0, len(data) - H))]
            else:
                for pos in rng.integers(H, len(data), 1 + trial % 4):
                    bad[pos] = int(rng.integers(0, 256))
            try:
                back = decode_volume(resealed(bad))
                assert np.array_equal(back, vol), "wrong values returned"
            except StreamError:
                caught += 1
        print("caught", caught)
    """)
    env = {**__import__("os").environ, "NUMBA_BOUNDSCHECK": "1"}
    env["NUMBA_CACHE_DIR"] = str(ROOT / ".pytest_cache" / "numba-boundscheck")  # the checked build, kept apart
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) >= 290, proc.stdout
