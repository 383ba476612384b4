"""What earlier medpipe versions wrote is still read, bit-exact (tests/data/README.md says how each was made).

An archive keeps scans for years: a newer medpipe that cannot restore an older archive has lost them. Each
fixture was written by medpipe at commit 832192e (2026-12-05, before lossless3d stream version 2 and before the
header store kept file names)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medpipe.archive import ArchiveError, extract_archive, verify_archive
from medpipe.archive.headers import NAME, pack_store, unpack_store
from medpipe.archive.index import INDEX, sha256
from medpipe.codecs.lossless3d import decode_volume, encode_volume
from medpipe.codecs.lossless3d.stream import VERSION

from test_archive import _ctx
from test_archive_seal import reseal

DATA = Path(__file__).parent / "data"
SAMPLE = Path(__file__).parents[1] / "samples" / "ct_head_ge_dcmqa"
# SHA-256 of the values (little-endian bytes), dtype and shape each version-1 stream must decode to
STREAMS = {
    "const_uint16": ("e7a6ce1f17b55c4f10fb4ba3836f9254214d9a25a6dea2db0ea0f52fe1565430", "<u2", (2, 8, 8)),
    "ct_int16": ("b03c4d49c08fccc0c07fc1364a0126c3d262dadc906c8145de14ee68d4f6fa5f", "<i2", (3, 64, 96)),
    "slice_int16": ("bab0073d3fcb67adc53f2a17f17beffc3290bae0c2d813d0e3bb8cf5b413fa6b", "<i2", (1, 64, 96)),
    "smooth_uint8": ("27509bae81feeb09d56f38072a6f25cdb353a17014239b83accda22951a6b9c6", "|u1", (4, 40, 48)),
    "sparse_int16": ("1e9b1a7eaa32760a2b761d128e038a93ca01e5267b4123b5a974924f8f6a8bf9", "<i2", (3, 32, 32)),
}
# SHA-256 of the three DICOM files the old archive was built from
FILES = {"01.dcm": "96fe9f720407a6b9531014822031dbd633e21115aa0ee8f02cd03163e5004102",
         "02.dcm": "af155e642eb0651da1764b62a19b0489b955dd0f35545bda6607ff1ad27f9ec7",
         "03.dcm": "c693cb660eea0e7922bfca82b4660e76aa7ed9653f1bd78f3cf7dc777952b20d"}


def sample_crop() -> np.ndarray:
    files = sorted(SAMPLE.glob("*.dcm"))[12:15]
    return np.stack([pydicom.dcmread(f).pixel_array for f in files])[:, 200:264, 180:276].astype(np.int16)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_version_1_lossless3d_stream_still_decodes(name):
    data = (DATA / "lossless3d_v1" / f"{name}.l3d").read_bytes()
    assert data[4] == 1 and VERSION > 1  # else this would test nothing old
    values = decode_volume(data)
    digest, dtype, shape = STREAMS[name]
    assert (values.dtype.str, values.shape) == (dtype, shape)
    assert hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest() == digest
    if name == "ct_int16":
        assert np.array_equal(values, sample_crop())


def test_a_version_1_stream_with_one_bit_changed_is_refused():
    data = bytearray((DATA / "lossless3d_v1" / "ct_int16.l3d").read_bytes())
    data[len(data) // 2] ^= 4
    with pytest.raises(Exception, match="damaged"):
        decode_volume(bytes(data))


def test_the_encoder_writes_only_the_current_version():
    assert encode_volume(sample_crop())[4] == VERSION


@pytest.fixture
def old_archive(tmp_path):
    arc = tmp_path / "arc"
    shutil.copytree(DATA / "archive_2026-12-05_v1", arc)
    return arc


def test_an_archive_from_before_stream_v2_and_header_names_verifies_and_restores_byte_for_byte(old_archive,
                                                                                               tmp_path):
    verify_archive(old_archive, _ctx())
    out = tmp_path / "out"
    extract_archive(old_archive, out, _ctx())
    restored = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.dcm")}
    assert restored == FILES


def test_an_old_archive_whose_header_store_names_only_some_files_is_refused(old_archive):
    """Old archives keep no names at all; one header named and the others not is an edit, not an old build
    (here a careful one: the store's checksum listed anew and the index resealed)."""
    store = old_archive / "headers" / "s01.hdr"
    records = unpack_store(store.read_bytes())
    assert len(records) == 3 and not any(kind == NAME for r in records for kind, _ in r)
    records[1] = list(records[1]) + [(NAME, b"02.dcm")]
    blob = pack_store(records)
    store.write_bytes(blob)
    index = json.loads((old_archive / INDEX).read_text())
    entry = next(f for f in index["files"] if f["path"] == "headers/s01.hdr")
    entry.update(bytes=len(blob), sha256=sha256(blob))
    reseal(old_archive, index)
    with pytest.raises(ArchiveError, match="the header stored for 01.dcm"):
        verify_archive(old_archive, _ctx())
