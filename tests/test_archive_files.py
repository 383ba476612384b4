"""The compact header store and the restored files: every element byte-identical, on real files in many encodings
(explicit/implicit VR, big endian, encapsulated, undefined-length sequences, multi-frame), and much smaller than the
headers it stores."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medpipe.archive.dicomfile import encapsulated_file, meta_with_syntax, native_file
from medpipe.archive.headers import (HeaderError, header_bytes, pack_store, record_syntax, split_file,
                                     unpack_store)

from conftest import shared

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
ODD_FILES = ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small.dcm", "JPEG2000.dcm",
             "emri_small_jpeg_2k_lossless.dcm", "SC_rgb_rle_2frame.dcm", "liver.dcm", "MR_small_RLE.dcm",
             "image_dfl.dcm"]


def _rejoin(data: bytes) -> bytes:
    record, pixel = split_file(data)
    head = header_bytes(record)
    tail = sum(len(c) for k, c in record if k == "T")
    return head[:len(head) - tail] + pixel + head[len(head) - tail:]


@pytest.mark.parametrize("name", ODD_FILES)
def test_files_are_cut_at_element_boundaries_and_rejoin_exactly(name):
    path = PYDICOM_FILES / name
    if not path.exists():
        pytest.skip(f"{name} not in this pydicom")
    data = path.read_bytes()
    if name == "image_dfl.dcm":
        with pytest.raises(HeaderError, match="deflated"):
            split_file(data)
        return
    assert _rejoin(data) == data
    record, _ = split_file(data)
    assert unpack_store(pack_store([record, record])) == [record, record]


def test_series_headers_are_stored_once_plus_differences(tmp_path):
    """A real MR series whose headers are 134 kB each (Siemens CSA): stored in a few per cent of the bytes."""
    files = sorted(shared("mr/siemens_t1_sag_brain").iterdir())[:12]
    records = [split_file(p.read_bytes())[0] for p in files]
    raw = sum(len(header_bytes(r)) for r in records)
    blob = pack_store(records)
    assert unpack_store(blob) == records
    assert len(blob) < raw / 40, (len(blob), raw)
    for record, p in zip(records, files):  # an uncompressed original: restored file == original file
        ds = pydicom.dcmread(p)
        scan = {"bits_allocated": ds.BitsAllocated, "signed": bool(ds.PixelRepresentation)}
        assert native_file(record, ds.pixel_array[None], scan) == p.read_bytes()


def test_damaged_stores_are_refused():
    records = [split_file((PYDICOM_FILES / "MR_small.dcm").read_bytes())[0]]
    blob = pack_store(records)
    for bad in (blob[:-9], blob[:20] + bytes([blob[20] ^ 1]) + blob[21:], b"", b"not xz"):
        with pytest.raises(HeaderError):
            unpack_store(bad)


def test_new_transfer_syntax_rewrites_only_the_file_meta(tmp_path):
    src = sorted(shared("ct_head/cq500_ct5").iterdir())[5]  # JPEG-LS, unsigned 12-bit
    data = src.read_bytes()
    record, _ = split_file(data)
    assert record_syntax(record) == "1.2.840.10008.1.2.4.80"
    meta = meta_with_syntax(record, "1.2.840.10008.1.2.1")
    assert struct.unpack("<I", meta[0][8:12])[0] == sum(len(c) for c in meta[1:])  # group length
    orig = pydicom.dcmread(src)
    back = pydicom.dcmread(io.BytesIO(native_file(record, orig.pixel_array[None], {"bits_allocated": 16,
                                                                                    "signed": False})))
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(back.pixel_array, orig.pixel_array)
    for el in orig.file_meta:
        if el.keyword not in ("TransferSyntaxUID", "FileMetaInformationGroupLength"):
            assert back.file_meta[el.tag].value == el.value


def test_implicit_vr_original_is_reencoded_for_an_encapsulated_output():
    from medpipe.archive.candidates import decode_codestream, dicom_codestream

    src = PYDICOM_FILES / "MR_small_implicit.dcm"
    orig = pydicom.dcmread(src)
    record, _ = split_file(src.read_bytes())
    scan = {"bits_stored": orig.BitsStored, "bits_allocated": orig.BitsAllocated,
            "signed": bool(orig.PixelRepresentation), "shape": (1, orig.Rows, orig.Columns)}
    uid = "1.2.840.10008.1.2.4.80"
    out = pydicom.dcmread(io.BytesIO(encapsulated_file(record, uid, [dicom_codestream(uid, orig.pixel_array,
                                                                                      scan)])))
    assert out.file_meta.TransferSyntaxUID == uid and not out.is_implicit_VR
    for el in orig:
        if el.keyword != "PixelData":
            assert out[el.tag].value == el.value, el.keyword
    from pydicom.encaps import generate_frames

    frame = next(generate_frames(out.PixelData, number_of_frames=1))
    assert np.array_equal(decode_codestream(uid, frame, scan), orig.pixel_array)


def test_multiframe_original_keeps_its_stored_frame_order(tmp_path):
    """Enhanced MR: medpipe sorts the frames along the normal; the restored file stores them as the original."""
    from medpipe.archive import build_archive, extract_archive
    from medpipe.volumes import load_volume

    from test_archive import _ctx, settings

    src = next(shared("mr/siemens_enhanced_epi_phantom").iterdir())
    vol = load_volume(src)
    arc = tmp_path / "arc"
    index = build_archive([vol], arc, settings(candidates=["jpegxl-dicom"]), _ctx())
    assert index["scans"][0]["files"][0]["exact_copy"]
    (out,) = extract_archive(arc, tmp_path / "out", _ctx())
    assert (out / src.name).read_bytes() == src.read_bytes()
