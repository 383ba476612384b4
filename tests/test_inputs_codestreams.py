"""A codestream's own header against the data set, before any decoder allocates (fuzz findings 1-3, 5): real
DICOM from pydicom's test files and the shipped sample, damaged in tmp_path the way the fuzz campaign did, read
through load_inputs; each asserts the one line naming the file."""
from __future__ import annotations

import struct
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from rich.console import Console

from medpipe.volumes import load_inputs


def _with_frame(name: str, dst: Path, change) -> Path:
    """pydicom's test file ``name`` written to ``dst`` with its one frame's codestream passed through ``change``."""
    ds = pydicom.dcmread(get_testdata_file(name))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([change(bytearray(frame))])
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)
    return dst


def _errors(folder: Path) -> list[str]:
    vols, errors = load_inputs([folder], Console(file=None, quiet=True))
    assert vols == [], [v.shape for v in vols]
    return errors


def _sof_size(frame: bytearray, rows: int, cols: int) -> bytearray:
    at = frame.find(b"\xff\xc0")  # SOF0, ISO 10918-1 B.2.2: Lf, P, Y, X
    frame[at + 5:at + 9] = struct.pack(">HH", rows, cols)
    return frame


def test_baseline_jpeg_whose_sof_says_65000_x_65000_is_refused_before_decoding(tmp_path):
    """The fuzz case made the decoder allocate 6 GB for a 100 x 100 RGB image."""
    f = _with_frame("SC_rgb_jpeg_dcmtk.dcm", tmp_path / "in" / "big.dcm", lambda fr: _sof_size(fr, 65000, 65000))
    errors = _errors(tmp_path / "in")
    assert errors == [f"{f}: damaged: the codestream says 65000 x 65000, Rows x Columns say 100 x 100"]


def test_baseline_jpeg_whose_sof_says_0_rows_is_refused(tmp_path):
    f = _with_frame("SC_rgb_jpeg_dcmtk.dcm", tmp_path / "in" / "zero.dcm", lambda fr: _sof_size(fr, 0, 100))
    assert _errors(tmp_path / "in") == [f"{f}: damaged: the codestream says 0 x 100, Rows x Columns say 100 x 100"]


def test_extended_jpeg_cut_short_is_damaged_not_ok(tmp_path):
    """A .51 frame cut to 208 bytes (no EOI) decoded to garbage and was reported ok."""
    f = _with_frame("JPGExtended.dcm", tmp_path / "in" / "cut.dcm", lambda fr: fr[:208])
    assert _errors(tmp_path / "in") == [f"{f}: damaged: no EOI marker at its end: truncated"]


def test_extended_jpeg_precision_outside_bits_stored_is_refused(tmp_path):
    """SOF1 precision 8 while Bits Stored is 12 (PS3.5 8.2.1)."""
    def precision_8(fr: bytearray) -> bytearray:
        fr[fr.find(b"\xff\xc1") + 4] = 8
        return fr

    f = _with_frame("JPGExtended.dcm", tmp_path / "in" / "p8.dcm", precision_8)
    assert _errors(tmp_path / "in") == [f"{f}: damaged: the codestream's sample precision is 8 bits, outside Bits "
                                        "Stored 12 .. Bits Allocated 16 (PS3.5 8.2.1, 8.2.4)"]


def test_extended_jpeg_with_components_other_than_samples_per_pixel_is_refused(tmp_path):
    def three(fr: bytearray) -> bytearray:  # Nf 1 -> 3 with Lf unchanged: also a frame header too short
        fr[fr.find(b"\xff\xc1") + 9] = 3
        return fr

    f = _with_frame("JPGExtended.dcm", tmp_path / "in" / "nf.dcm", three)
    assert _errors(tmp_path / "in") == [f"{f}: damaged: JPEG frame header (SOF1) damaged: 9 bytes for 3 "
                                        "component(s)"]


def test_extended_jpeg_whose_sof_and_header_agree_on_a_size_its_data_cannot_hold_is_refused(tmp_path):
    """Rows, Columns and SOF1 all enlarged from 1024 x 256 to 4096 x 4096: every 8 x 8 block needs 2 bits at least
    (ISO 10918-1 F.1.2), 65536 bytes; the fuzz case (16000 x 16000) decoded to an 'ok' padded volume."""
    def sof_4096(fr: bytearray) -> bytearray:
        at = fr.find(b"\xff\xc1")
        fr[at + 5:at + 9] = struct.pack(">HH", 4096, 4096)
        return fr

    f = _with_frame("JPGExtended.dcm", tmp_path / "in" / "big.dcm", sof_4096)
    ds = pydicom.dcmread(f)
    ds.Rows = ds.Columns = 4096
    ds.save_as(f)
    [line] = _errors(tmp_path / "in")
    assert line.startswith(f"{f}: damaged: ") and line.endswith(
        "bytes of coded data after its scan header, fewer than the 65536 that a 4096 x 4096 SOF1 frame needs at the "
        "least (ISO 10918-1 F.1.2, H.1.2): its frame header or the stream is damaged")


def test_whole_extended_jpeg_with_a_trailing_ff_still_reads(tmp_path):
    """pydicom's JPGExtended.dcm ends EOI, FF (a fill byte): not damage."""
    f = _with_frame("JPGExtended.dcm", tmp_path / "in" / "whole.dcm", lambda fr: fr)
    vols, errors = load_inputs([f.parent], Console(file=None, quiet=True))
    assert errors == [] and [v.shape for v in vols] == [(1, 1024, 256)]


def test_a_short_scan_header_is_one_damage_line_not_a_medpipe_bug(tmp_path):
    """SOS Ns 1 -> 4 with Ls unchanged: ValueError in the header reader before ("this is a medpipe bug")."""
    def ns_4(fr: bytearray) -> bytearray:
        fr[fr.find(b"\xff\xda") + 4] = 4
        return fr

    f = _with_frame("JPGExtended.dcm", tmp_path / "in" / "sos.dcm", ns_4)
    assert _errors(tmp_path / "in") == [f"{f}: damaged: JPEG scan header (SOS) damaged: 6 bytes for 4 "
                                        "component(s)"]


def test_a_segment_running_past_the_codestream_is_one_damage_line(tmp_path):
    f = _with_frame("JPGExtended.dcm", tmp_path / "in" / "cut.dcm", lambda fr: fr[:fr.find(b"\xff\xda") + 6])
    [line] = _errors(tmp_path / "in")
    assert line.startswith(f"{f}: damaged: JPEG header damaged: marker segment FFDA at byte ") and \
        "runs past the" in line


# ---------------------------------------------------------------- a damaged data set header (fuzz finding 4)

def _sample_copies(dst: Path, n: int) -> list[Path]:
    """n slices of the shipped sample, written Explicit VR Little Endian (the VR is in the file, PS3.5 7.1.2)."""
    from pydicom.uid import ExplicitVRLittleEndian

    from conftest import SAMPLE

    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for f in sorted(SAMPLE.glob("*.dcm"))[10:10 + n]:
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(dst / f.name, enforce_file_format=True)
        out.append(dst / f.name)
    return out


def test_an_unknown_vr_in_the_header_is_one_damaged_header_line(tmp_path):
    """A flipped byte making Bits Stored's VR 'U\\x0e': NotImplementedError ("this is a medpipe bug") before."""
    files = _sample_copies(tmp_path / "ct", 3)
    raw = files[1].read_bytes()
    at = raw.index(b"\x28\x00\x01\x01US")
    files[1].write_bytes(raw[:at + 4] + b"U\x0e" + raw[at + 6:])
    vols, errors = load_inputs([tmp_path / "ct"], Console(file=None, quiet=True))
    assert [v.shape[0] for v in vols] == [2]
    assert errors[0].startswith(f"{files[1]}: damaged DICOM header: element (0028,0101) cannot be read "
                                "(NotImplementedError: Unknown Value Representation '0x55 0x0e' in tag (0028,0101))")


# ---------------------------------------------------------------- RLE: memory and exactness (fuzz finding 6)

def _rle_copy(dst: Path, signed12: bool = False) -> Path:
    """A slice of the shipped sample in RLE Lossless; ``signed12``: its values made signed 12-bit first."""
    import numpy as np
    from pydicom.uid import RLELossless

    from conftest import SAMPLE

    ds = pydicom.dcmread(sorted(SAMPLE.glob("*.dcm"))[10])
    if signed12:
        values = np.clip(ds.pixel_array.astype(np.int32) - 1024, -2048, 2047).astype(np.int16)
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 12, 11
        ds.PixelData = values.tobytes()
    ds.compress(RLELossless)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)
    return dst


def test_rle_decoding_needs_at_most_twice_the_decoded_size():
    """The decoder built uint64 temporaries (8-16 bytes a sample: a 20000 x 20000 frame asked for 3 GiB more)."""
    import tracemalloc

    import numpy as np

    from medpipe.rle import decode_frame

    rows = cols = 1024
    values = (np.arange(rows * cols, dtype=np.uint32) * 2654435761 % 65536).astype(np.uint16).reshape(rows, cols)
    from pydicom.pixels.encoders.base import RLELosslessEncoder

    frame = RLELosslessEncoder.encode(values, rows=rows, columns=cols, samples_per_pixel=1, number_of_frames=1,
                                      bits_allocated=16, bits_stored=16, pixel_representation=0,
                                      photometric_interpretation="MONOCHROME2")
    tracemalloc.start()
    try:
        out = decode_frame(frame, rows, cols, 1, 16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(out, values)
    assert peak <= 2 * values.nbytes, f"peak {peak} bytes for {values.nbytes} decoded"


def test_rle_signed_12_bit_decodes_exactly_as_pydicom(tmp_path):
    import numpy as np

    from medpipe.volumes.damage import decode_checked

    f = _rle_copy(tmp_path / "s.dcm", signed12=True)
    ds = pydicom.dcmread(f)
    decoded = decode_checked(ds, f, cross_check=False)
    assert decoded.decoder.startswith("medpipe.rle") and not decoded.problems
    assert np.array_equal(decoded.array, ds.pixel_array) and decoded.array.dtype == ds.pixel_array.dtype
    assert decoded.array.min() < 0


def test_rle_header_saying_30000_rows_is_refused_before_allocating(tmp_path):
    """Rows 30000 for a 512-row frame: its segments are too short to be that frame, known before any array."""
    f = _rle_copy(tmp_path / "in" / "big.dcm")
    ds = pydicom.dcmread(f)
    ds.Rows = ds.Columns = 30000
    ds.save_as(f)
    [line] = _errors(tmp_path / "in")
    assert line.startswith(f"{f}: damaged: RLE frame damaged: segment 1: ") and line.endswith(
        "bytes cannot decode to the 900000000 bytes of a frame (a replicate run gives at most 128 bytes for 2, G.3.1)")


# ---------------------------------------------------------------- JPEG 2000 main header (fuzz finding 5)

def _siz(fr: bytearray) -> int:
    return fr.find(b"\xff\x51") + 4  # ISO 15444-1 A.5.1: Lsiz, then Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, ...


def test_j2k_siz_precision_1_for_bits_stored_16_is_refused_before_decoding(tmp_path):
    """SIZ precision 12 -> 1 decoded to a flat slice and was reported ok / exact."""
    def precision_1(fr: bytearray) -> bytearray:
        at = _siz(fr) + 36  # Csiz at 34, then the first component's Ssiz (sign bit, precision - 1)
        fr[at] = fr[at] & 0x80
        return fr

    f = _with_frame("MR_small_jp2klossless.dcm", tmp_path / "in" / "p1.dcm", precision_1)
    assert _errors(tmp_path / "in") == [f"{f}: damaged: the codestream's sample precision is 1 bits, outside Bits "
                                        "Stored 16 .. Bits Allocated 16 (PS3.5 8.2.1, 8.2.4)"]


def test_j2k_image_offset_is_part_of_its_size(tmp_path):
    """XOsiz 0 -> 32: the image area is Xsiz - XOsiz = 32 columns, not the 64 Columns says (A.5.1)."""
    def xosiz_32(fr: bytearray) -> bytearray:
        at = _siz(fr) + 10
        fr[at:at + 4] = struct.pack(">I", 32)
        return fr

    f = _with_frame("MR_small_jp2klossless.dcm", tmp_path / "in" / "xo.dcm", xosiz_32)
    assert _errors(tmp_path / "in") == [f"{f}: damaged: the codestream says 64 x 32, Rows x Columns say 64 x 64"]


def test_j2k_siz_with_fewer_components_than_samples_per_pixel_is_refused(tmp_path):
    def csiz_3(fr: bytearray) -> bytearray:  # Csiz 1 -> 3 with Lsiz unchanged: the header is too short for it
        at = _siz(fr) + 34
        fr[at:at + 2] = struct.pack(">H", 3)
        return fr

    f = _with_frame("MR_small_jp2klossless.dcm", tmp_path / "in" / "c3.dcm", csiz_3)
    assert _errors(tmp_path / "in") == [f"{f}: damaged: JPEG 2000 SIZ damaged: 39 bytes for 3 component(s)"]


# ---------------------------------------------------------------- a deflated data set (fuzz finding 7)

def _deflated(dst: Path, padding: int = 0) -> Path:
    """A sample slice in Deflated Explicit VR Little Endian (PS3.5 A.5); ``padding``: that many zero bytes of Data
    Set Trailing Padding after Pixel Data, which deflate to almost nothing (a deflate bomb)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from conftest import SAMPLE

    ds = pydicom.dcmread(sorted(SAMPLE.glob("*.dcm"))[10])
    if padding:
        ds.DataSetTrailingPadding = bytes(padding)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def test_a_deflated_data_set_reads_with_its_pixels(tmp_path):
    import numpy as np

    from conftest import SAMPLE

    _deflated(tmp_path / "in" / "d.dcm")
    vols, errors = load_inputs([tmp_path / "in"], Console(file=None, quiet=True))
    assert errors == [] and len(vols) == 1
    assert np.array_equal(vols[0].pixels[0], pydicom.dcmread(sorted(SAMPLE.glob("*.dcm"))[10]).pixel_array)


def test_a_deflated_data_set_that_inflates_past_its_pixels_is_refused_before_inflating(tmp_path):
    """The fuzz case: 2.4 MB inflated past 4.7 GB in pydicom (42 s, then MemoryError); bounded here by the header's
    own pixel size: 64 MiB of padding is never inflated."""
    f = _deflated(tmp_path / "in" / "bomb.dcm", padding=64 << 20)
    assert f.stat().st_size < 1 << 20
    line = _errors(tmp_path / "in")[0]  # then the folder's summary line
    assert line.startswith(f"{f}: the deflated data set inflates to more than ")
    assert "its header declares 524288 bytes of pixel data; refused (a deflate bomb)" in line
