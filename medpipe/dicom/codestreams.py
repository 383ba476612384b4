"""Codestreams that decode to the source's STORED values, coded the way PS3.5 specifies for each transfer syntax.

Input is one frame as pydicom's ``pixel_array`` gives it (rows x columns, or rows x columns x 3), with the source's
Bits Stored and Pixel Representation. The output decodes, with any conformant decoder, to exactly those values, and
every Image Pixel attribute of the source stays as it was (Pixel Representation, Bits Allocated, Bits Stored,
High Bit = Bits Stored - 1). Lossless syntaxes only: a lossy syntax changes the values, hence the instance.

How signed data (PixelRepresentation 1) is coded, per PS3.5 (README, "DICOM output", has the table):

- JPEG lossless (.70), JPEG-LS (.80): both codings are unsigned only. PS3.5 8.2.1 Note 4 (8.2.3 refers to it):
  the Pixel Representation element "describes what has been compressed (the pixel data really is to be
  interpreted as signed if Pixel Representation so specifies)". So the codestream holds the two's complement bit
  pattern as unsigned samples. PS3.5 does not say how wide: 8.1.1 only says the bits above High Bit are unused
  and receivers may assume nothing about them. medpipe codes the whole pixel cell, sign-extended, at precision
  P = BitsAllocated, as DCMTK 3.6.7 (dcmcjpeg/dcmcjpls default "true lossless") and dcm4che (bitsCompressed=-16
  for signed data) do: every decoder then yields the stored values, including PACS that ignore Bits Stored
  (Orthanc 1.10.1 decodes a P = BitsStored signed stream as 0..2^P-1: measured, README "DICOM output").
  Unsigned data is coded at P = BitsStored. When BitsStored = BitsAllocated the two rules agree.
- JPEG 2000 (.90) and HTJ2K (.201/.202): the codestream carries signedness (SIZ Ssiz, ISO 15444-1 A.5.1);
  PS3.5 8.2.4: "Pixel Representation may be either 0 or 1 depending on what has been encoded (as specified in the
  SIZ marker segment in the precision and sign of component parameter)". Signed components, precision BitsStored.
- JPEG XL (.110): no signed samples in ISO 18181-1; coded like JPEG/JPEG-LS (the sign-extended cell at
  bits_per_sample = BitsAllocated; unsigned at BitsStored) by analogy with 8.2.1 Note 4. PS3.5 8.2.15 (2024d)
  states the consistency rule only ("in terms of consistency with what is encapsulated"); no text on signed data
  was found, so this is medpipe's choice, labelled as such.
- RLE (.5): PS3.5 Annex G.2 codes byte segments of the Padded Composite Pixel Code: the whole BitsAllocated-wide
  pixel cell, most significant byte first, so the two's complement cell is coded as it is stored.
- Deflated Image Frame (.8.1): PS3.5 8.2.16 / A.4.13: the frame's native little-endian byte stream, deflated
  (RFC 1951, raw), one fragment per frame, padded with one NULL byte to even length.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from ..depth import stored_pattern
from ..errors import CodecSkip, DamagedInput
from .streaminfo import j2k_info
from .syntaxes import (HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, JPEG_2000_LOSSLESS,
                       JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS, JPEG_XL_LOSSLESS, RLE_LOSSLESS, pattern_precision,
                       pixel_module_problems, strip_jpeg_wrappers, syntax)


def _check_frame(frame: np.ndarray, bits_stored: int, signed: bool) -> int:
    """The number of samples per pixel; raises when the values do not fit the header."""
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3) or frame.dtype.kind not in "iu":
        raise CodecSkip(f"a frame must be rows x columns (x 3) integers, not {frame.dtype} {frame.shape}")
    if not 1 <= bits_stored <= 16:
        raise CodecSkip(f"Bits Stored {bits_stored} is outside 1-16, which medpipe's lossless syntaxes code")
    low, high = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
    if frame.size and (int(frame.min()) < low or int(frame.max()) > high):
        raise DamagedInput(f"stored values {int(frame.min())}..{int(frame.max())} do not fit Bits Stored "
                           f"{bits_stored} ({'signed' if signed else 'unsigned'}); the header contradicts the data")
    return 1 if frame.ndim == 2 else 3


def encode_frame(uid: str, frame: np.ndarray, bits_stored: int, signed: bool, *, bits_allocated: int | None = None,
                 photometric: str | None = None, planar_configuration: int = 0, effort: int | None = None) -> bytes:
    """One frame's codestream in transfer syntax `uid`, decoding to exactly `frame` (see the module docstring)."""
    import imagecodecs

    samples = _check_frame(frame, bits_stored, signed)
    allocated = bits_allocated or (8 if bits_stored <= 8 else 16)
    photometric = photometric or ("MONOCHROME2" if samples == 1 else "RGB")
    problems = pixel_module_problems(uid, samples, photometric, int(signed), allocated, bits_stored, bits_stored - 1,
                                     planar_configuration)
    if problems:
        raise CodecSkip(f"{syntax(uid).name}: " + "; ".join(problems))
    frame = np.ascontiguousarray(frame)
    precision = pattern_precision(bits_stored, allocated, signed)
    if uid == JPEG_LOSSLESS_SV1:
        # PS3.5 8.2.1 Note 4 / A.4.1: process 14, selection value 1 (predictor 1), point transform 0, the bit
        # pattern as unsigned samples of `precision` bits. RGB without colour conversion.
        colour = {"colorspace": "RGB", "outcolorspace": "RGB"} if samples == 3 else {}
        data = imagecodecs.jpeg8_encode(stored_pattern(frame, precision), lossless=True, predictor=1,
                                        bitspersample=precision, **colour)
        return strip_jpeg_wrappers(bytes(data))  # no JFIF APP0: PS3.5 8.2.1 Note 3
    if uid == JPEG_LS_LOSSLESS:
        return _jpegls(frame, precision, samples, photometric)
    if uid == JPEG_2000_LOSSLESS:
        # PS3.5 8.2.4: signed components when Pixel Representation is 1; no multi-component transform, so that
        # RGB stays RGB (YBR_RCT would change Photometric Interpretation). Reversible 5-3 wavelet, raw codestream
        # (no JP2 header, A.4.4).
        data = frame.astype(np.int16 if signed else np.uint16) if frame.dtype.itemsize > 2 else frame
        return bytes(imagecodecs.jpeg2k_encode(data, level=0, codecformat="J2K", reversible=True,
                                               bitspersample=bits_stored, mct=False))
    if uid in (HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL):
        return _htj2k(frame, bits_stored, signed, rpcl=uid == HTJ2K_LOSSLESS_RPCL)
    if uid == JPEG_XL_LOSSLESS:
        # ISO 18181-1 has no signed samples: the bit pattern, bits_per_sample = `precision` (module docstring).
        # Modular lossless (no XYB). libjxl writes a bare codestream up to 12 bits; above, the codestream needs
        # Level 10, which ISO 18181-2 signals only in a container's jxll box, so the container is kept then.
        data = imagecodecs.jpegxl_encode(stored_pattern(frame, precision), lossless=True, effort=effort,
                                         bitspersample=precision, usecontainer=False)
        return bytes(data)
    cells = _native_cells(frame, allocated, signed)
    if uid == RLE_LOSSLESS:
        from pydicom.pixels.encoders import RLELosslessEncoder

        # PS3.5 Annex G.2: byte segments of the whole pixel cell, most significant byte first, one frame each.
        return bytes(RLELosslessEncoder.encode(cells, rows=frame.shape[0], columns=frame.shape[1],
                                               samples_per_pixel=samples, number_of_frames=1, bits_allocated=allocated,
                                               bits_stored=bits_stored, pixel_representation=int(signed),
                                               photometric_interpretation=photometric, planar_configuration=0))
    # DEFLATED_IMAGE_FRAME -- PS3.5 A.4.13: the frame's pixel data byte stream, deflated per RFC 1951 (no zlib
    # header). Planar Configuration is kept as the source has it (8.2.16: no restriction).
    if samples == 3 and planar_configuration == 1:
        cells = np.moveaxis(cells, 2, 0)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(np.ascontiguousarray(cells).tobytes()) + packer.flush()


def _native_cells(frame: np.ndarray, bits_allocated: int, signed: bool) -> np.ndarray:
    """The frame as native little-endian pixel cells (PS3.5 8.1.1), sign-extended when signed."""
    kind = ("<i" if signed else "<u") + str(bits_allocated // 8)
    return frame.astype(kind)


def _jpegls(frame: np.ndarray, precision: int, samples: int, photometric: str) -> bytes:
    """JPEG-LS lossless (NEAR 0, 8.2.3) of the bit pattern at `precision` (8.2.1 Note 4). imagecodecs' CharLS
    always codes 16 bits for uint16 data, so pydicom's pyjpegls encoder, which takes the precision, is used."""
    from pydicom.pixels.encoders import JPEGLSLosslessEncoder

    pattern = stored_pattern(frame, precision)
    return bytes(JPEGLSLosslessEncoder.encode(
        pattern, rows=frame.shape[0], columns=frame.shape[1], samples_per_pixel=samples, number_of_frames=1,
        bits_allocated=pattern.dtype.itemsize * 8, bits_stored=precision, pixel_representation=0,
        photometric_interpretation=photometric if samples == 3 else "MONOCHROME2", planar_configuration=0))


def _htj2k(frame: np.ndarray, bits_stored: int, signed: bool, rpcl: bool) -> bytes:
    """HTJ2K (ISO 15444-15) reversible, SIZ precision = BitsStored, signed when the data is.

    imagecodecs' OpenJPH takes the precision from the dtype (8 or 16). A P-bit codestream is produced exactly as
    ISO 15444-1 specifies: the encoder level-shifts unsigned samples by 2^(P-1) (Annex G.1.2), so the samples are
    given already shifted, as signed, and SIZ is then written with the true precision and sign (A.5.1). The
    coefficients are those a P-bit encoder codes; QCD keeps the wider (16-bit) exponents, which only adds headroom.

    .202 (PS3.5 10.18): RPCL progression, base resolution <= 64 pixels, and TLM marker segments. Tile-parts are
    split at each resolution so that TLM gives the resolution breakpoints 10.18 asks for.
    """
    import imagecodecs

    values = frame.astype(np.int32)
    if not signed:
        values = values - (1 << (bits_stored - 1))
    levels = 5
    while max(frame.shape[:2]) > 64 << levels:
        levels += 1
    options = {"tlm": True, "tilepart": 1, "resolutions": levels} if rpcl else {}  # imagecodecs: decompositions
    # rgb=False: no multi-component transform, so RGB stays RGB (with RCT it would be YBR_RCT, PS3.5 8.2.4).
    data = bytearray(imagecodecs.htj2k_encode(values.astype(np.int16), level=0, reversible=True, planar=False,
                                              rgb=False, **options))
    _set_siz_precision(data, bits_stored, signed)
    if rpcl and j2k_info(bytes(data))["progression"] != "RPCL":
        raise CodecSkip("this OpenJPH did not write the RPCL progression PS3.5 10.18 requires for .202")
    return bytes(data)


def _set_siz_precision(data: bytearray, bits_stored: int, signed: bool) -> None:
    """Rewrite every component's Ssiz (ISO 15444-1 Table A.11: bit 7 sign, bits 0-6 precision - 1)."""
    if data[:4] != b"\xff\x4f\xff\x51":
        raise DamagedInput("not a JPEG 2000 codestream (SOC, SIZ expected)")
    components = struct.unpack(">H", data[40:42])[0]
    for c in range(components):
        data[42 + 3 * c] = (0x80 if signed else 0) | (bits_stored - 1)


def encapsulate_frames(codestreams: list[bytes], offset_table: str = "basic"
                       ) -> tuple[bytes, bytes | None, bytes | None]:
    """Pixel Data value for `codestreams` (one per frame), per PS3.5 A.4: one fragment per frame (required for
    RLE, A.4.2, and Deflated Image Frame, A.4.13; chosen for the others, where a frame may span fragments), every
    item of even length (one NULL pad byte, after EOI/EOC or the deflate stream), and either a Basic Offset Table
    with one offset per frame ("basic") or an empty one with the Extended Offset Table and its lengths
    ("extended": returned as the values of (7FE0,0001) and (7FE0,0002); A.4: the Basic Offset Table shall then
    be empty), or ("empty") an empty Basic Offset Table, as the video syntaxes require (8.2.5-8.2.8: the whole
    stream is one frame). Returns (value, extended table or None, lengths or None)."""
    from pydicom.encaps import encapsulate, encapsulate_extended

    frames = [bytes(c) for c in codestreams]
    if offset_table == "extended":
        return encapsulate_extended(frames)
    return encapsulate(frames, fragments_per_frame=1, has_bot=offset_table != "empty"), None, None
