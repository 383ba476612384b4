"""lossless3d: exact round trips at odd sizes and depths, real CT, and damaged streams that must fail cleanly."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba", reason="lossless3d needs numba (pip install numba)")

from medpipe.codecs.lossless3d import StreamError, decode_volume, encode_volume  # noqa: E402
from medpipe.codecs.lossless3d import model, stream  # noqa: E402

from conftest import ROOT, SAMPLE  # noqa: E402

# the coder is numba: the first use on a machine compiles it (~40 s), so these stay out of the fast subset
pytestmark = pytest.mark.slow


def round_trip(volume: np.ndarray, **kw) -> bytes:
    data = encode_volume(volume, **kw)
    back = decode_volume(data)
    assert back.dtype == volume.dtype and back.shape == volume.shape
    np.testing.assert_array_equal(back, volume)
    return data


def smooth(shape, lo, hi, dtype, seed=0):
    """A smooth ramp plus noise: data a predictor can work on, spanning lo..hi."""
    rng = np.random.default_rng(seed)
    s, r, c = np.indices(shape)
    base = (np.sin(r / 7.0) + np.cos(c / 5.0) + s / 3.0) / 4.0 + 0.5
    vals = lo + (hi - lo) * np.clip(base + rng.normal(0, 0.02, shape), 0, 1)
    return np.round(vals).astype(dtype)


@pytest.mark.parametrize("shape", [(3, 65, 97), (1, 1, 1), (1, 64, 64), (2, 1, 7), (5, 3, 1), (4, 17, 2)])
def test_round_trip_odd_sizes(shape):
    round_trip(smooth(shape, 0, 4095, np.uint16))


@pytest.mark.parametrize("dtype,lo,hi", [(np.uint8, 0, 255), (np.uint16, 0, 4095), (np.uint16, 0, 65535),
                                         (np.int16, -32768, 32767), (np.int16, -1024, 3071), (np.int8, -128, 127)])
def test_round_trip_depths_and_signed(dtype, lo, hi):
    vol = smooth((3, 33, 41), lo, hi, dtype)
    vol[0, 0, 0], vol[-1, -1, -1] = lo, hi  # both ends of the range occur
    data = round_trip(vol)
    head = stream.unpack(data)
    assert head["dtype"] == np.dtype(dtype).newbyteorder("<") and head["bits"] == stream.natural_bits(vol)


def test_declared_bits_are_kept_and_checked():
    vol = smooth((2, 9, 11), 0, 1000, np.uint16)
    assert stream.unpack(round_trip(vol, bits=12))["bits"] == 12
    with pytest.raises(ValueError, match="bits=8"):
        encode_volume(vol, bits=8)
    with pytest.raises(ValueError, match="int32"):
        encode_volume(vol.astype(np.int32))


@pytest.mark.parametrize("value,dtype", [(0, np.uint16), (-1000, np.int16), (255, np.uint8)])
def test_constant_volumes(value, dtype):
    vol = np.full((3, 10, 13), value, dtype)
    assert len(round_trip(vol)) == stream.HEADER_SIZE


def test_empty_volume():
    round_trip(np.zeros((0, 4, 4), np.uint16))


def test_noise_is_exact_and_never_larger_than_raw_plus_header():
    rng = np.random.default_rng(1)
    for dtype, hi in [(np.uint16, 65535), (np.uint16, 4095), (np.uint8, 255)]:
        vol = rng.integers(0, hi + 1, (2, 40, 50)).astype(dtype)
        assert len(round_trip(vol)) <= vol.nbytes + stream.HEADER_SIZE


@pytest.mark.parametrize("flags", [0, model.F_3D_PRED, model.F_MIX, model.F_EF, model.F_3D_ERR | model.F_LMS, model.ALL_FLAGS])
def test_every_model_feature_decodes(flags):
    """The decoder follows the flags stored in the stream, so every combination must round-trip."""
    data = round_trip(smooth((3, 21, 19), -500, 1500, np.int16), flags=flags)
    assert stream.unpack(data)["flags"] == flags


@pytest.mark.parametrize("slabs,threads", [(1, 1), (2, 2), (3, 2), (7, 3)])
def test_slabs_decode_alike_on_one_or_more_threads(slabs, threads):
    vol = smooth((7, 30, 41), 0, 4095, np.uint16)
    data = encode_volume(vol, slabs=slabs, threads=threads)
    assert stream.read_slab_table(stream.unpack(data)["payload"], vol.shape)[0] == stream.slab_bounds(7, slabs)
    seconds = []
    np.testing.assert_array_equal(decode_volume(data, threads=threads, slab_seconds=seconds), vol)
    assert len(seconds) == slabs and all(t >= 0 for t in seconds)
    for t in (1, 2):
        np.testing.assert_array_equal(decode_volume(data, threads=t), vol)
    with pytest.raises(ValueError, match="slabs=8"):
        encode_volume(vol, slabs=8)


def test_slab_table_lies_are_refused():
    vol = smooth((4, 20, 30), 0, 4095, np.uint16)
    payload = stream.unpack(encode_volume(vol, slabs=2))["payload"]
    for bad, why in [(b"\x05\x00" + payload[2:], "does not fit 4 slices"),
                     (payload[:2] + b"\x02" + payload[3:], "options 2"),
                     (payload[:2] + b"\x01" + payload[3:], "damaged"),
                     (payload[:4] + (int.from_bytes(payload[4:8], "little") + 1).to_bytes(4, "little") + payload[8:],
                      "do not add up")]:
        with pytest.raises(StreamError, match=why):
            stream.read_slab_table(bad, vol.shape)


def comb(shape=(3, 40, 50), seed=4) -> np.ndarray:
    """A smooth image through a sparse look-up table: 300 used values spread over 0..30000 (like the dev set's
    mammogram crop), where coding ranks into a value table wins."""
    lut = np.cumsum(np.random.default_rng(seed).integers(1, 200, 300))
    lut -= lut[0]
    return lut[smooth(shape, 0, 299, np.int32)].astype(np.uint16)


def test_a_sparse_histogram_is_coded_as_ranks_with_its_value_table():
    from medpipe.codecs.lossless3d import values

    vol = comb()
    data = round_trip(vol)
    head = stream.unpack(data)
    assert stream.read_slab_table(head["payload"], vol.shape)[2] is not None
    used = values.unpack_table(stream.read_slab_table(head["payload"], vol.shape)[2], head["maxval"])
    np.testing.assert_array_equal(used, np.unique(vol) - vol.min())
    dense = smooth((3, 40, 50), 0, 4095, np.uint16)  # every value in the range used: no table tried
    assert stream.read_slab_table(stream.unpack(round_trip(dense))["payload"], dense.shape)[2] is None


@pytest.mark.parametrize("slabs", [1, 2])
def test_value_table_with_slabs_and_threads(slabs):
    vol = comb((6, 30, 20), seed=5)
    np.testing.assert_array_equal(decode_volume(encode_volume(vol, slabs=slabs), threads=2), vol)


def test_value_table_lies_are_refused():
    from medpipe.codecs.lossless3d import values

    good = values.pack_table(np.array([0, 3, 7, 100]))
    np.testing.assert_array_equal(values.unpack_table(good, 100), [0, 3, 7, 100])
    for bad, maxval in [(good, 99), (good[:-3], 100), (b"junk", 100),
                        (zlib.compress(np.zeros(3, "<u2").tobytes()), 0),  # steps of 0: not rising
                        (zlib.compress(bytes(1 << 20)), 100)]:  # a bomb: inflates far past the range
        with pytest.raises(StreamError, match="value table"):
            values.unpack_table(bad, maxval)


def test_real_ct_crop_is_exact_and_compresses():
    pydicom = pytest.importorskip("pydicom")
    files = sorted(SAMPLE.glob("*.dcm"))[:4]
    if not files:
        pytest.skip(f"sample not present: {SAMPLE}")
    vol = np.stack([pydicom.dcmread(f).pixel_array[128:320, 100:297] for f in files])  # 4 x 192 x 197
    data = round_trip(vol)
    assert len(data) < vol.nbytes / 2.5, len(data)


def small_stream() -> bytes:
    return encode_volume(smooth((2, 12, 15), 0, 4095, np.uint16))


def test_every_truncation_raises_stream_error():
    data = small_stream()
    for n in range(len(data)):
        with pytest.raises(StreamError):
            decode_volume(data[:n])


def test_byte_flips_wrong_magic_version_and_trailing_bytes():
    data = small_stream()
    rng = np.random.default_rng(2)
    for pos in rng.integers(0, len(data), 300):
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(StreamError):
            decode_volume(bytes(bad))
    with pytest.raises(StreamError, match="not a lossless3d stream"):
        decode_volume(b"XXXX" + data[4:])
    with pytest.raises(StreamError, match="version 9 is not supported"):
        decode_volume(data[:4] + bytes([9]) + data[5:])
    with pytest.raises(StreamError, match="after its end"):
        decode_volume(data + b"\0")


@pytest.mark.slow  # a child process (numba cache load) and 300 decodes: 2-3 s; the checked build compiles in 20 s
@pytest.mark.parametrize("boundscheck", [False, True], ids=["shipped", "boundscheck"])
def test_damaged_payload_behind_a_valid_checksum_fails_cleanly(boundscheck):
    """Damage the payload and recompute the stream CRC, so the numba decoder itself meets garbage: it must
    raise StreamError, never hang or crash. Run in a child process with a timeout to catch either; once as
    shipped, once with numba's bounds checking on, where an index outside any array raises IndexError instead of
    reading or writing past it unseen (the child then fails)."""
    code = textwrap.dedent("""
        import struct, zlib, numpy as np
        from medpipe.codecs.lossless3d import StreamError, decode_volume, encode_volume
        from medpipe.codecs.lossless3d.stream import HEADER_SIZE
        rng = np.random.default_rng(3)
        s, r, c = np.indices((3, 30, 40))
        vol = (2000 + 900 * np.sin(r / 6) * np.cos(c / 9) + 40 * s + rng.normal(0, 20, s.shape)).astype(np.uint16)
        data = encode_volume(vol)
        def resealed(bad):
            crc = zlib.crc32(bytes(bad[HEADER_SIZE:]), zlib.crc32(bytes(bad[:HEADER_SIZE - 4])))
            return bytes(bad[:HEADER_SIZE - 4]) + struct.pack("<I", crc) + bytes(bad[HEADER_SIZE:])
        caught = 0
        for trial in range(300):
            bad = bytearray(data)
            if trial % 3 == 0:  # cut the payload short and fix the length field
                n = int(rng.integers(0, len(data) - HEADER_SIZE))
                bad = bad[:HEADER_SIZE + n]
                struct.pack_into("<I", bad, 28, n)
            else:
                for pos in rng.integers(HEADER_SIZE, len(data), 1 + trial % 4):
                    bad[pos] = int(rng.integers(0, 256))
            try:
                decode_volume(resealed(bad))
            except StreamError:
                caught += 1
        print("caught", caught)
    """)
    env = dict(os.environ)
    if boundscheck:  # the checked build is kept apart from the shipped one's cache
        env.update(NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(ROOT / ".pytest_cache" / "numba-boundscheck"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    caught = int(proc.stdout.split()[-1])
    assert caught >= 295, proc.stdout  # a random change that leaves the values intact is possible, rarely


def forged(shape, mode=stream.MODE_CODED, n=0, tcode=1) -> bytes:
    """A header whose CRCs are right, claiming ``shape``, followed by ``n`` payload bytes."""
    head = stream.HEADER.pack(stream.MAGIC, stream.VERSION, model.DEFAULT_FLAGS | (mode << stream.MODE_SHIFT), 12,
                              tcode, *shape, 0, 4095, n, 0, 0)
    payload = bytes(n)
    crc = zlib.crc32(payload, zlib.crc32(head[:-4]))
    return head[:-4] + crc.to_bytes(4, "little") + payload


def test_header_lies_are_refused_before_allocation():
    data = bytearray(small_stream())
    struct_fields = stream.HEADER.unpack_from(data)
    huge = stream.HEADER.pack(*struct_fields[:5], 1 << 20, 1 << 20, 1 << 20, *struct_fields[8:12], 0)
    bad = huge[:-4] + zlib.crc32(bytes(data[stream.HEADER_SIZE:]), zlib.crc32(huge[:-4])).to_bytes(4, "little")
    with pytest.raises(StreamError, match="beyond the format's limits"):
        decode_volume(bad + bytes(data[stream.HEADER_SIZE:]))


@pytest.mark.parametrize("shape", [(4096, 1024, 1024), (1, 65536, 65536), (4095, 1024, 1024)])
def test_forty_bytes_claiming_billions_of_voxels_are_refused_at_once(shape):
    """2^32 voxels (or just under) from a 40-byte stream: refused by the header checks, one line, no allocation."""
    import tracemalloc

    data = forged(shape)
    assert len(data) == 40
    tracemalloc.start()
    with pytest.raises(StreamError) as info:
        decode_volume(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "\n" not in str(info.value) and peak < 1 << 20, (str(info.value), peak)


def test_a_coded_payload_too_short_for_its_shape_is_refused():
    with pytest.raises(StreamError, match="cannot hold"):
        decode_volume(forged((64, 512, 512), n=100))
    with pytest.raises(StreamError, match="cannot hold"):  # a coded payload is always smaller than raw
        decode_volume(forged((2, 4, 4), n=64))


def test_the_floor_on_coded_payloads_holds_for_the_most_compressible_volume():
    """One voxel differs from the rest: the smallest coded stream per voxel the coder can make; the header check
    (min_coded_bytes) must still accept it."""
    vol = np.zeros((8, 256, 256), np.uint16)
    vol[3, 100, 100] = 1
    data = round_trip(vol)
    n = len(data) - stream.HEADER_SIZE
    assert stream.unpack(data)["mode"] == stream.MODE_CODED
    assert n >= stream.min_coded_bytes(vol.size) * 1.3, (n, stream.min_coded_bytes(vol.size))


def test_expected_shape_and_dtype_are_checked_before_decoding():
    vol = smooth((3, 20, 30), 0, 3000, np.uint16)
    data = encode_volume(vol)
    np.testing.assert_array_equal(decode_volume(data, expected_shape=(3, 20, 30), expected_dtype=np.uint16), vol)
    with pytest.raises(StreamError, match="expected 3 x 30 x 20"):
        decode_volume(data, expected_shape=(3, 30, 20))
    with pytest.raises(StreamError, match="expected int16"):
        decode_volume(data, expected_shape=(3, 20, 30), expected_dtype=np.int16)


def test_without_an_expectation_a_volume_beyond_free_memory_is_refused(monkeypatch):
    data = forged((1024, 1024, 1024), mode=stream.MODE_CONSTANT)  # a valid constant volume of 2 GiB
    monkeypatch.setattr(stream, "available_memory", lambda: 1 << 30)
    with pytest.raises(StreamError, match="GiB is available"):
        decode_volume(data)
    monkeypatch.setattr(stream, "available_memory", lambda: 1 << 40)
    head = stream.unpack(data)  # with room, the same header passes
    assert head["shape"] == (1024, 1024, 1024)


def test_codec_is_registered_for_the_matrix():
    from medpipe.codecs import codec_class

    cls = codec_class("lossless3d")
    assert cls.per_slice is False and cls.max_bits == 16 and cls.missing() is None
    vol = smooth((3, 20, 30), 0, 3000, np.uint16)
    codec = cls()
    enc = codec.encode(vol, None)
    assert len(enc.chunks) == 1 and enc.nbytes < vol.nbytes
    np.testing.assert_array_equal(codec.decode(enc, None), vol)


@pytest.mark.parametrize("name", ["full", "lean", "fast", "static"])
def test_model_settings_round_trip_and_are_recorded_in_the_stream(name):
    from medpipe.codecs import CodecContext, codec_class
    from medpipe.codecs.lossless3d.coder import MODELS

    vol = smooth((4, 24, 31), 0, 3000, np.uint16)
    codec = codec_class("lossless3d")(model=name, slabs=2)
    enc = codec.encode(vol, CodecContext(threads=2))
    assert stream.unpack(enc.chunks[0])["flags"] == MODELS[name]
    np.testing.assert_array_equal(codec.decode(enc, CodecContext(threads=2)), vol)


def test_module_docstring_records_the_design():
    import medpipe.codecs.lossless3d as pkg

    doc = pkg.__doc__
    for word in ("Predictors", "Contexts", "Entropy coder", "Stream format", "Credit", "PAQ"):
        assert word in doc, word
    assert Path(pkg.__file__).parent.name == "lossless3d"
    assert "x1." not in doc  # measurements live in bench/measured/, not here
    assert list((ROOT / "bench" / "measured").glob("lossless3d-*/README.md"))


def test_squash_is_the_logistic_function_and_stretch_its_inverse():
    import math

    from medpipe.codecs.lossless3d import arith

    squash, stretch = arith.TABLES[2][:4095], arith.TABLES[2][4095:]  # what stream version 2 codes with
    assert len(stretch) == 4096
    for d in range(-2047, 2048, 7):
        assert abs(squash[d + 2047] - 4096 / (1 + math.exp(-d / 256))) <= 0.5 + 1e-9
    for p in range(1, 4095, 5):  # stretch(p) is the smallest d whose squash reaches p
        d = stretch[p]
        assert squash[d + 2047] >= p and (d == -2047 or squash[d + 2046] < p)


def run_child(code: str, env: dict | None = None, timeout: int = 600, cwd: Path = ROOT) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_a_fresh_process_has_the_coder_compiled_before_the_timed_call():
    """The round trip prepares the codec (numba compile or cache load) before it starts the clock: the encode it
    times finds the coder compiled, and the preparation is reported apart."""
    out = run_child("""
        import numpy as np
        from medpipe.codecs import CodecContext, codec_class
        from medpipe.codecs.lossless3d import model
        from medpipe.depth import plan_depth
        from medpipe.roundtrip import round_trip

        class Watched(codec_class("lossless3d")):
            def encode(self, frames, ctx):
                print("compiled at encode:", bool(model.run.signatures))
                return super().encode(frames, ctx)

        assert not model.run.signatures  # fresh process: nothing compiled or loaded yet
        vol = (np.arange(3 * 40 * 50).reshape(3, 40, 50) % 997).astype(np.uint16)
        rt = round_trip(vol, Watched(), plan_depth((0, 996), vol.dtype, 16), CodecContext())
        assert rt.codec_mismatches == 0
        print("prepare_ms", rt.prepare_ms)
        print("again", Watched().prepare(None))
    """)
    assert "compiled at encode: True" in out, out
    assert float(out.split("prepare_ms")[1].split()[0]) > 0 and "again 0.0" in out, out


@pytest.mark.slow  # compiles the model twice in children: about 40 s of CPU
def test_a_changed_arith_module_is_not_served_from_a_stale_cache(tmp_path):
    """numba keys model.py's cached kernels on model.py alone; they inline arith.py. Change arith.py's counter
    rates and nothing else: the next process must code with the new rates (another stream that still decodes),
    not load the kernels compiled with the old ones."""
    import shutil

    pkg = tmp_path / "site" / "medpipe"
    shutil.copytree(ROOT / "medpipe", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    code = """
        import hashlib, numpy as np
        from medpipe.codecs.lossless3d import decode_volume, encode_volume
        rng = np.random.default_rng(1)
        vol = (np.arange(3 * 24 * 32).reshape(3, 24, 32) % 700 + rng.integers(0, 40, (3, 24, 32))).astype(np.uint16)
        data = encode_volume(vol)
        assert np.array_equal(decode_volume(data), vol)
        print("stream", hashlib.sha256(data).hexdigest())
    """
    env = {"PYTHONPATH": str(tmp_path / "site"), "NUMBA_CACHE_DIR": ""}
    first = run_child(code, env=env, cwd=tmp_path)
    arith = pkg / "codecs" / "lossless3d" / "arith.py"
    text = arith.read_text(encoding="utf-8")
    assert "65536 * 2 // (2 * n + 3)" in text
    arith.write_text(text.replace("65536 * 2 // (2 * n + 3)", "65536 * 2 // (2 * n + 4)"), encoding="utf-8")
    second = run_child(code, env=env, cwd=tmp_path)
    assert first.split("stream")[1] != second.split("stream")[1], (first, second)
    assert second == run_child(code, env=env, cwd=tmp_path)  # and the new kernels are what the cache now holds


def test_cache_falls_back_when_no_cache_folder_is_writable(tmp_path):
    """An installed package in a read-only site-packages with no writable home: numba would refuse cache=True at
    import; the coder falls back to a private temporary folder. Simulated as root-proof: the in-tree __pycache__
    is a file and the home is /dev/null, so neither can be created. Compiles once in the child (slow)."""
    import shutil

    pkg = tmp_path / "site" / "medpipe"
    shutil.copytree(ROOT / "medpipe", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "codecs" / "lossless3d" / "__pycache__").write_text("not a folder")
    out = run_child("""
        import numpy as np, numba, medpipe
        from medpipe.codecs.lossless3d import decode_volume, encode_volume
        vol = (np.arange(2 * 20 * 30).reshape(2, 20, 30) % 500).astype(np.uint16)
        assert np.array_equal(decode_volume(encode_volume(vol)), vol)
        print("cache", numba.config.CACHE_DIR, medpipe.__file__)
    """, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site"), "HOME": "/dev/null", "XDG_CACHE_HOME": "/dev/null/cache",
              "NUMBA_CACHE_DIR": ""}, timeout=900)
    assert "medpipe-numba-" in out and str(tmp_path / "site") in out, out
