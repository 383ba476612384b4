"""Codestreams from stored values, checked by independent decoders (DCMTK, GDCM, OpenJPEG, libjxl, zlib) and by
dciodvfy, on the shipped real CT and real sources derived from it (13-bit signed, 12-bit, 8-bit, RGB)."""
from __future__ import annotations

import copy
import struct
import zlib

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGLSLossless, RLELossless, UID

import interop
from conftest import SAMPLE, shared
from medpipe.depth import values_from_pattern
from medpipe.codecs import frames as fc
from medpipe.dicom import codestreams as cs
from medpipe.dicom import streaminfo as si
from medpipe.dicom import syntaxes as sx
from medpipe.errors import CodecSkip, DamagedInput

SLICE = SAMPLE / "10.dcm"
KINDS = ("s16", "s13", "u12", "u8", "rgb8")
J2K = (sx.JPEG_2000_LOSSLESS, sx.HTJ2K_LOSSLESS, sx.HTJ2K_LOSSLESS_RPCL)
DECODERS = interop.DECODERS


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    made = {"s16": SLICE}
    for kind in KINDS[1:]:
        made[kind] = interop.derived_source(SLICE, kind, folder / f"{kind}.dcm")
    return made


decoded = interop.decoded


def check_codestream(uid: str, data: bytes, ds: pydicom.Dataset) -> None:
    """The codestream's own header agrees with the DICOM header (PS3.5 8.2.x consistency rules)."""
    info = si.codestream_info(uid, data)
    signed = ds.PixelRepresentation == 1
    if uid in J2K:  # precision and sign in SIZ (PS3.5 8.2.4), no colour transform (RGB stays RGB)
        assert (info["precision"], info["signed"], info["components"]) == (ds.BitsStored, signed,
                                                                          ds.SamplesPerPixel)
        assert info["reversible"] and info["mct"] == 0 and info["layers"] == 1
        assert info["ht"] == (uid != sx.JPEG_2000_LOSSLESS)
    elif uid in (sx.JPEG_LOSSLESS_SV1, sx.JPEG_LS_LOSSLESS, sx.JPEG_XL_LOSSLESS):
        assert info["precision"] == sx.pattern_precision(ds.BitsStored, ds.BitsAllocated, signed)
    if uid == sx.JPEG_LOSSLESS_SV1:  # process 14, selection value 1, no point transform (A.4.1)
        assert (info["process"], info["predictor"], info["point_transform"]) == ("lossless", 1, 0)
        assert 0 not in info["app"], "JFIF APP0 should be absent (PS3.5 8.2.1 Note 3)"
    if uid == sx.JPEG_LS_LOSSLESS:
        assert info["near"] == 0 and info["components"] == ds.SamplesPerPixel
    if uid == sx.HTJ2K_LOSSLESS_RPCL:  # PS3.5 10.18
        assert info["progression"] == "RPCL" and info["tlm"]
        assert max(ds.Rows, ds.Columns) <= 64 << info["levels"]
    if uid == sx.JPEG_XL_LOSSLESS:
        assert not info["xyb"] and info["colour"] == ("grey" if ds.SamplesPerPixel == 1 else "RGB")
        assert (info["rows"], info["columns"]) == (ds.Rows, ds.Columns)
        assert info["container"] == (info["precision"] > 12)  # level 10 needs the jxll box
    if uid == sx.RLE_LOSSLESS:  # PS3.5 G.2: one segment per byte of each sample
        assert info["segments"] == ds.SamplesPerPixel * ds.BitsAllocated // 8
    if uid == sx.DEFLATED_IMAGE_FRAME:
        assert info["length"] == ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8


def encoded_copy(sources, kind: str, uid: str, tmp_path):
    out = interop.write_in_syntax(sources[kind], uid, tmp_path / f"{kind}.dcm")
    interop.assert_same_instance(sources[kind], out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("uid", list(sx.SYNTAXES))
def test_every_depth_decodes_to_the_stored_values(uid, sources, tmp_path):
    for kind in KINDS:
        source = pydicom.dcmread(sources[kind])
        out = encoded_copy(sources, kind, uid, tmp_path)
        check_codestream(uid, interop.first_frame(out), source)
        for decoder in DECODERS[uid]:
            values = decoded(decoder, out, source)
            assert np.array_equal(values, source.pixel_array), f"{kind}: {decoder} decodes other values"


# The syntaxes dicom3tools 1.00~20220618 can parse (it predates HTJ2K, JPEG XL and deflated frames).
DCIODVFY_READS = (sx.JPEG_LOSSLESS_SV1, sx.JPEG_LS_LOSSLESS, sx.JPEG_2000_LOSSLESS, sx.RLE_LOSSLESS)
# Real dev data (../shared/data): the signed chest CT (stored as JPEG-LS), 12-bit MR, a 10-bit MONOCHROME1
# radiograph, and two multi-frame objects (8-bit ultrasound cine, Enhanced MR).
REAL = {"signed chest CT": "ct_chest/acrin_flt_breast_001/series_2_805941", "12-bit MR": "mr/siemens_t1_sag_brain",
        "10-bit CR MONOCHROME1": "xray/RG3_tibia_cr.dcm", "8-bit US cine": "us/philips_greyscale_cine.dcm",
        "Enhanced MR multi-frame": "mr/siemens_enhanced_epi_phantom"}


@pytest.mark.slow
@pytest.mark.parametrize("entry", list(REAL))
def test_real_data_in_every_syntax_keeps_the_instance(entry, tmp_path):
    path = shared(REAL[entry])
    for src in (sorted(path.glob("*.dcm"))[:2] if path.is_dir() else [path]):
        source = pydicom.dcmread(src)
        for uid in sx.SYNTAXES:
            out = interop.write_in_syntax(src, uid, tmp_path / f"{uid}.dcm")
            interop.assert_same_instance(src, out)
            check_codestream(uid, interop.first_frame(out), source)
            for decoder in DECODERS[uid]:
                whole = decoder in interop.WHOLE_FILE
                expected = source.pixel_array if whole else interop.frames_of(source)[0]
                assert np.array_equal(decoded(decoder, out, source), expected), f"{src.name} {uid} {decoder}"
            if uid in DCIODVFY_READS:
                assert not interop.dciodvfy_errors(out) - interop.dciodvfy_errors(src), f"{src.name} {uid}"


def test_signed_13_bit_survives_jpeg_ls_and_htj2k(sources, tmp_path):
    """The issue's case: signed data with Bits Stored < 16. PixelRepresentation, BitsStored and every UID stay."""
    source = pydicom.dcmread(sources["s13"])
    for uid, decoder in ((sx.JPEG_LS_LOSSLESS, "dcmtk"), (sx.HTJ2K_LOSSLESS_RPCL, "opj")):
        out = encoded_copy(sources, "s13", uid, tmp_path)
        assert np.array_equal(decoded(decoder, out, source), source.pixel_array)
        assert source.pixel_array.min() < 0


@pytest.mark.slow
@pytest.mark.parametrize("uid", list(sx.SYNTAXES))
def test_dciodvfy_adds_no_error(uid, sources, tmp_path):
    for kind in KINDS:
        out = encoded_copy(sources, kind, uid, tmp_path)
        added = interop.dciodvfy_errors(out) - interop.dciodvfy_errors(sources[kind])
        assert not added, f"{kind}: {sorted(added)}"


# -- the helpers themselves ---------------------------------------------------------------------------------------

def test_dcmtk_decode_reads_what_pydicom_compressed(tmp_path):
    ds = pydicom.dcmread(SLICE)
    for uid in (JPEGLSLossless, RLELossless):
        compressed = copy.deepcopy(ds)
        compressed.compress(uid)
        compressed.save_as(tmp_path / "c.dcm", enforce_file_format=True)
        assert np.array_equal(interop.dcmtk_decode(tmp_path / "c.dcm"), ds.pixel_array)


def test_opj_decode_reads_signed_htj2k_and_checks_the_sign():
    values = pydicom.dcmread(SLICE).pixel_array
    data = fc.encode_frame(sx.HTJ2K_LOSSLESS, values, 16, True)
    assert np.array_equal(interop.opj_decode(data, signed=True), values)
    with pytest.raises(interop.ToolFailed, match="signed samples, expected unsigned"):
        interop.opj_decode(data, signed=False)


def test_djxl_decode_reads_bare_and_contained_codestreams():
    values = pydicom.dcmread(SLICE).pixel_array
    u12 = np.clip(values.astype(np.int32) + 1024, 0, 4095).astype(np.uint16)
    bare = fc.encode_frame(sx.JPEG_XL_LOSSLESS, u12, 12, False, effort=1)
    assert bare[:2] == b"\xff\x0a" and np.array_equal(interop.djxl_decode(bare), u12)
    contained = fc.encode_frame(sx.JPEG_XL_LOSSLESS, values, 16, True, effort=1)
    assert si.jxl_info(contained)["level"] == 10
    assert np.array_equal(values_from_pattern(interop.djxl_decode(contained), 16, True), values)


def test_dciodvfy_errors_see_a_real_defect(tmp_path):
    before = interop.dciodvfy_errors(SLICE)
    assert any("PatientBirthDate" in line for line in before)  # the anonymised sample lacks it
    ds = pydicom.dcmread(SLICE)
    del ds.Modality  # Type 1 in the General Series module
    ds.save_as(tmp_path / "broken.dcm")
    added = interop.dciodvfy_errors(tmp_path / "broken.dcm") - before
    assert any("Modality" in line for line in added)


def test_gdcm_decode_reads_signed_jpeg_2000(sources, tmp_path):
    source = pydicom.dcmread(sources["s13"])
    out = encoded_copy(sources, "s13", sx.JPEG_2000_LOSSLESS, tmp_path)
    assert np.array_equal(interop.gdcm_decode(out), source.pixel_array)


# -- codestream rules ---------------------------------------------------------------------------------------------

def test_rpcl_resolution_levels_reach_a_64_pixel_thumbnail():
    """PS3.5 10.18 on a large real image (the slice tiled 8 x 2: 4096 x 1024): base resolution <= 64 both ways,
    one tile-part per resolution listed in TLM."""
    big = np.tile(pydicom.dcmread(SLICE).pixel_array, (8, 2))
    info = si.codestream_info(sx.HTJ2K_LOSSLESS_RPCL, fc.encode_frame(sx.HTJ2K_LOSSLESS_RPCL, big, 16, True))
    assert info["progression"] == "RPCL" and info["tlm"]
    assert -(-4096 >> info["levels"]) <= 64 and info["tile_parts"] == info["levels"] + 1


def test_values_that_contradict_bits_stored_are_refused():
    values = pydicom.dcmread(SLICE).pixel_array  # -1500..1712 needs 12 bits signed
    with pytest.raises(DamagedInput, match="do not fit Bits Stored 11"):
        fc.encode_frame(sx.JPEG_LS_LOSSLESS, values, 11, True)
    with pytest.raises(DamagedInput):
        fc.encode_frame(sx.RLE_LOSSLESS, values, 16, False)


def test_pixel_module_rules_per_syntax():
    assert sx.pixel_module_problems(sx.JPEG_LS_LOSSLESS, 1, "MONOCHROME2", 1, 16, 13, 12) == []
    assert sx.pixel_module_problems(sx.JPEG_LS_LOSSLESS, 1, "MONOCHROME2", 0, 16, 1, 0)  # BitsStored 2-16
    assert sx.pixel_module_problems(sx.JPEG_2000_LOSSLESS, 3, "RGB", 1, 8, 8, 7)  # colour is unsigned only
    assert sx.pixel_module_problems(sx.RLE_LOSSLESS, 1, "MONOCHROME2", 0, 16, 12, 15)  # High Bit
    assert sx.pixel_module_problems(sx.DEFLATED_IMAGE_FRAME, 3, "RGB", 1, 16, 16, 15, 1) == []
    assert sx.pixel_module_problems(sx.JPEG_2000_LOSSLESS, 3, "RGB", 0, 8, 8, 7, 1)  # "shall be set to 0"
    with pytest.raises(CodecSkip, match="not one medpipe writes"):
        sx.pixel_module_problems("1.2.840.10008.1.2.4.91", 1, "MONOCHROME2", 0, 16, 12, 11)


def test_deflated_frames_are_the_native_bytes_in_the_planar_configuration_kept(sources):
    """PS3.5 A.4.13: the frame's pixel data byte stream; 8.2.16 leaves Planar Configuration free."""
    rgb = pydicom.dcmread(sources["rgb8"]).pixel_array
    for planar, native in ((0, rgb), (1, np.moveaxis(rgb, 2, 0))):
        data = fc.encode_frame(sx.DEFLATED_IMAGE_FRAME, rgb, 8, False, planar_configuration=planar)
        assert zlib.decompress(data, -zlib.MAX_WBITS) == np.ascontiguousarray(native).tobytes()


def test_encapsulation_one_even_fragment_per_frame_with_offsets():
    """PS3.5 A.4: BOT item with one offset per frame, one fragment per frame, every item even (NULL pad)."""
    frames = [b"\x01\x02\x03", b"\x04\x05\x06\x07\x08"]
    data = cs.encapsulate_frames(frames)[0]
    tag, length = struct.unpack("<4sI", data[:8])
    assert tag == b"\xfe\xff\x00\xe0" and length == 8
    assert struct.unpack("<2I", data[8:16]) == (0, 8 + 4)
    assert data[16:32] == b"\xfe\xff\x00\xe0\x04\x00\x00\x00\x01\x02\x03\x00\xfe\xff\x00\xe0"
    assert data[32:42] == b"\x06\x00\x00\x00\x04\x05\x06\x07\x08\x00"


def test_jxl_header_reader_agrees_with_libjxl():
    values = pydicom.dcmread(SLICE).pixel_array[:300, :200]
    for precision, signed in ((16, True), (12, False), (8, False)):
        data = values.astype(np.int32)
        if not signed:
            data = np.clip(data + 1024, 0, (1 << precision) - 1)
        stream = fc.encode_frame(sx.JPEG_XL_LOSSLESS, data, precision, signed, effort=1)
        info = si.jxl_info(stream)
        assert (info["rows"], info["columns"], info["precision"]) == (300, 200, precision)
        assert imagecodecs.jpegxl_decode(stream).shape == (300, 200)
