"""Codestreams that decode to the source's STORED values, coded the way PS3.5 specifies for each transfer syntax.

Input is one frame as pydicom's ``pixel_array`` gives it (rows x columns, or rows x columns x 3), with the source's
Bits Stored and Pixel Representation. The output decodes, with any conformant decoder, to exactly those values, and
every Image Pixel attribute of the source stays as it was (Pixel Representation, Bits Allocated, Bits Stored,
High Bit = Bits Stored - 1). Lossless syntaxes only: a lossy syntax changes the values, hence the instance.

How signed data (PixelRepresentation 1) is coded, per PS3.5 (research notes: /work/notes/dicom-syntaxes.md):

- JPEG lossless (.70), JPEG-LS (.80): both codings are unsigned only. PS3.5 8.2.1 Note 4 (8.2.3 refers to it):
  the Pixel Representation element "describes what has been compressed (the pixel data really is to be
  interpreted as signed if Pixel Representation so specifies)". So the codestream holds the two's complement bit
  pattern as unsigned samples. PS3.5 does not say how wide: 8.1.1 only says the bits above High Bit are unused
  and receivers may assume nothing about them. medpipe codes the whole pixel cell, sign-extended, at precision
  P = BitsAllocated, as DCMTK 3.6.7 (dcmcjpeg/dcmcjpls default "true lossless") and dcm4che (bitsCompressed=-16
  for signed data) do: every decoder then yields the stored values, including PACS that ignore Bits Stored
  (Orthanc 1.10.1 decodes a P = BitsStored signed stream as 0..2^P-1: measured, see the notes). Unsigned data is
  coded at P = BitsStored. When BitsStored = BitsAllocated the two rules agree.
- JPEG 2000 (.90) and HTJ2K (.201/.202): the codestream carries signedness (SIZ Ssiz, ISO 15444-1 A.5.1);
  PS3.5 8.2.4: "Pixel Representation may be either 0 or 1 depending on what has been encoded (as specified in the
  SIZ marker segment in the precision and sign of component parameter)". Signed components, precision BitsStored.
- JPEG XL (.110): no signed samples in ISO 18181-1; coded like JPEG/JPEG-LS (the sign-extended cell at
  bits_per_sample = BitsAllocated; unsigned at BitsStored) by analogy with 8.2.1 Note 4 -- the 8.2.15 text on
  signed data was not found (see the notes).
- RLE (.5): PS3.5 Annex G.2 codes byte segments of the Padded Composite Pixel Code: the whole BitsAllocated-wide
  pixel cell, most significant byte first, so the two's complement cell is coded as it is stored.
- Deflated Image Frame (.8.1): PS3.5 8.2.16 / A.4.13: the frame's native little-endian byte stream, deflated
  (RFC 1951, raw), one fragment per frame, padded with one NULL byte to even length.
"""
from __future__ import annotations

import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from medpipe.errors import CodecSkip, DamagedInput

JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
JPEG_XL_LOSSLESS = "1.2.840.10008.1.2.4.110"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
DEFLATED_IMAGE_FRAME = "1.2.840.10008.1.2.8.1"

MONO = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL")


@dataclass(frozen=True)
class Profile:
    """One row of a PS3.5 "Valid Values of Pixel Data Related Attributes" table, as medpipe writes it."""
    photometric: tuple[str, ...]
    samples: int
    signed_allowed: bool
    bits_allocated: tuple[int, ...]
    bits_stored: range


@dataclass(frozen=True)
class Syntax:
    uid: str
    name: str  # PS3.6 Table A-1
    keyword: str
    rules: str  # the PS3.5 sections that govern it
    profiles: tuple[Profile, ...]


def _rows(mono_bits: range, colour_bits: range, colour_allocated=(8, 16), mono_allocated=(8, 16)):
    return (Profile(MONO, 1, True, mono_allocated, mono_bits), Profile(("PALETTE COLOR",), 1, False, (8, 16),
            range(1, 17)), Profile(COLOUR, 3, False, colour_allocated, colour_bits))


# What each syntax accepts (medpipe writes Bits Allocated 8 or 16 only). Tables cited per row; where the library
# is narrower than the standard, the profile says what the library can do and the notes say so.
SYNTAXES: dict[str, Syntax] = {s.uid: s for s in (
    Syntax(JPEG_LOSSLESS_SV1, "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection "
           "Value 1])", "JPEGLosslessSV1", "PS3.5 8.2.1 Table 8.2.1-2, A.4.1",
           # Table allows BitsStored 1-16; libjpeg-turbo's lossless mode codes precision 2-16 (library limit).
           _rows(range(2, 17), range(2, 17))),
    Syntax(JPEG_LS_LOSSLESS, "JPEG-LS Lossless Image Compression", "JPEGLSLossless",
           "PS3.5 8.2.3 Table 8.2.3-1, A.4.3", _rows(range(2, 17), range(2, 17))),
    Syntax(JPEG_2000_LOSSLESS, "JPEG 2000 Image Compression (Lossless Only)", "JPEG2000Lossless",
           "PS3.5 8.2.4 Table 8.2.4-1, A.4.4", _rows(range(1, 17), range(1, 17))),
    Syntax(HTJ2K_LOSSLESS, "High-Throughput JPEG 2000 Image Compression (Lossless Only)", "HTJ2KLossless",
           "PS3.5 10.18, F.4; Image Pixel rules as Table 8.2.4-1", _rows(range(1, 17), range(1, 17))),
    Syntax(HTJ2K_LOSSLESS_RPCL, "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)",
           "HTJ2KLosslessRPCL", "PS3.5 10.18 (RPCL, TLM, base resolution <= 64), F.4; as Table 8.2.4-1",
           _rows(range(1, 17), range(1, 17))),
    Syntax(JPEG_XL_LOSSLESS, "JPEG XL Lossless", "JPEGXLLossless", "PS3.5 8.2.15 Table 8.2.15-1",
           _rows(range(1, 17), range(1, 17))),
    Syntax(RLE_LOSSLESS, "RLE Lossless", "RLELossless", "PS3.5 8.2.2 Table 8.2.2-1, Annex G",
           (Profile(MONO, 1, True, (8, 16), range(1, 17)), Profile(("PALETTE COLOR",), 1, False, (8, 16),
            range(1, 17)), Profile(("RGB",), 3, False, (8, 16), range(1, 17)),
            Profile(("YBR_FULL",), 3, False, (8,), range(1, 9)))),
    # 8.2.16: "there are no restrictions on the values of Pixel Data Related Attributes".
    Syntax(DEFLATED_IMAGE_FRAME, "Deflated Image Frame Compression", "DeflatedImageFrameCompression",
           "PS3.5 8.2.16, A.4.13", (Profile(MONO + ("PALETTE COLOR",), 1, True, (8, 16), range(1, 17)),
                                    Profile(COLOUR, 3, True, (8, 16), range(1, 17)))),
)}


# PS3.6 Table A-1 entries pydicom < 3.1 lacks (name, type, info, retired, keyword), as pydicom 3.1 ships them.
NEW_UIDS = {
    "1.2.840.10008.1.2.4.110": ("JPEG XL Lossless", "Transfer Syntax", "", "", "JPEGXLLossless"),
    "1.2.840.10008.1.2.4.111": ("JPEG XL JPEG Recompression", "Transfer Syntax", "", "", "JPEGXLJPEGRecompression"),
    "1.2.840.10008.1.2.4.112": ("JPEG XL", "Transfer Syntax", "", "", "JPEGXL"),
    DEFLATED_IMAGE_FRAME: ("Deflated Image Frame Compression", "Transfer Syntax", "", "",
                           "DeflatedImageFrameCompression"),
}


@contextmanager
def known_transfer_syntaxes():
    """Within the block pydicom knows the PS3.6 transfer syntaxes it lacks (JPEG XL, Deflated Image Frame), so
    files in them write and send like any encapsulated syntax (reading works without). Removed afterwards, so code
    that asks pydicom what it supports sees the library as it is."""
    from pydicom._uid_dict import UID_dictionary

    added = [uid for uid in NEW_UIDS if uid not in UID_dictionary]
    UID_dictionary.update({uid: NEW_UIDS[uid] for uid in added})
    try:
        yield
    finally:
        for uid in added:
            UID_dictionary.pop(uid, None)


def syntax(uid: str) -> Syntax:
    try:
        return SYNTAXES[uid]
    except KeyError:
        raise CodecSkip(f"transfer syntax {uid} is not one medpipe writes losslessly; use one of "
                        f"{', '.join(sorted(SYNTAXES))}") from None


PLANAR_ZERO = (JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS, JPEG_2000_LOSSLESS, HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL,
               JPEG_XL_LOSSLESS)


def pixel_module_problems(uid: str, samples_per_pixel: int, photometric: str, pixel_representation: int,
                          bits_allocated: int, bits_stored: int, high_bit: int, planar_configuration: int = 0
                          ) -> list[str]:
    """Why these Image Pixel attributes cannot be written unchanged in `uid` (empty when they can)."""
    s = syntax(uid)
    problems = []
    if samples_per_pixel > 1 and planar_configuration != 0 and uid in PLANAR_ZERO:
        # 8.2.4: "irrelevant since the manner of encoding components is specified in the JPEG 2000 standard,
        # hence it shall be set to 0"; Tables 8.2.1-2 / 8.2.3-1 likewise list 0 (colour-by-pixel codestreams).
        problems.append(f"Planar Configuration {planar_configuration} must become 0 in {s.name} ({s.rules})")
    if high_bit != bits_stored - 1:
        problems.append(f"High Bit {high_bit} is not Bits Stored - 1: encapsulated codestreams decode to "
                        "low-aligned values (PS3.5 8.2, the precision of the codestream is Bits Stored)")
    for p in s.profiles:
        if photometric in p.photometric and samples_per_pixel == p.samples:
            if pixel_representation == 1 and not p.signed_allowed:
                problems.append(f"{photometric} with Pixel Representation 1 is not allowed ({s.rules})")
            if bits_allocated not in p.bits_allocated:
                problems.append(f"Bits Allocated {bits_allocated} is not one of {p.bits_allocated} ({s.rules})")
            if bits_stored not in p.bits_stored or bits_stored > bits_allocated:
                problems.append(f"Bits Stored {bits_stored} is outside {p.bits_stored.start}-"
                                f"{p.bits_stored.stop - 1} ({s.rules})")
            return problems
    return problems + [f"{photometric} with {samples_per_pixel} sample(s) per pixel is not written in {s.name} "
                       f"({s.rules})"]


def pattern_precision(bits_stored: int, bits_allocated: int, signed: bool) -> int:
    """Sample precision of an unsigned-only codestream (.70, .80, .110): the whole sign-extended cell for signed
    data, Bits Stored for unsigned data (module docstring)."""
    return bits_allocated if signed else bits_stored


def stored_pattern(values: np.ndarray, precision: int) -> np.ndarray:
    """The two's complement bit pattern of each value in `precision` bits, as unsigned (bits above are zero)."""
    unsigned = np.uint8 if precision <= 8 else np.uint16
    return (values.astype(np.int64) & ((1 << precision) - 1)).astype(unsigned)


def values_from_pattern(pattern: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Stored values from decoded samples: keep Bits Stored bits, sign-extend from the High Bit when signed
    (PS3.5 8.1.1: the bits above are unused, whatever they hold)."""
    mask = (1 << bits_stored) - 1
    values = pattern.astype(np.int64) & mask
    if signed:
        values = np.where(values >> (bits_stored - 1), values - (1 << bits_stored), values)
    return values


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
        return _drop_jfif(bytes(data))
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


def _drop_jfif(data: bytes) -> bytes:
    """Remove a JFIF APP0 segment: PS3.5 8.2.1 Note 3 recommends it be absent (colour space is DICOM's)."""
    if data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00":
        return data[:2] + data[4 + struct.unpack(">H", data[4:6])[0]:]
    return data


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


def encapsulate_frames(uid: str, codestreams: list[bytes]) -> bytes:
    """Pixel Data value for `codestreams` (one per frame): PS3.5 A.4 -- Basic Offset Table item with an offset
    per frame, one fragment per frame (required for RLE, A.4.2, and Deflated Image Frame, A.4.13; chosen for the
    others), every item of even length (one NULL pad byte, after EOI/EOC or the deflate stream)."""
    from pydicom.encaps import encapsulate

    syntax(uid)
    return encapsulate([bytes(c) for c in codestreams], fragments_per_frame=1, has_bot=True)


PROGRESSIONS = ("LRCP", "RLCP", "RPCL", "PCRL", "CPRL")


def j2k_info(data: bytes) -> dict:
    """Main-header facts of a JPEG 2000 / HTJ2K codestream (ISO 15444-1 Annex A; 15444-15 for CAP)."""
    if data[:2] != b"\xff\x4f":
        raise DamagedInput("not a JPEG 2000 codestream: no SOC marker")
    info = {"format": "J2K", "tlm": False, "cap": False, "tile_parts": 0}
    pos = 2
    while pos + 4 <= len(data):
        marker, length = struct.unpack(">HH", data[pos:pos + 4])
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xFF51:  # SIZ, A.5.1
            info["rsiz"] = struct.unpack(">H", segment[:2])[0]
            info["columns"], info["rows"] = struct.unpack(">II", segment[2:10])
            count = struct.unpack(">H", segment[34:36])[0]
            ssiz = [segment[36 + 3 * c] for c in range(count)]
            info.update(components=count, precision=(ssiz[0] & 0x7F) + 1, signed=bool(ssiz[0] & 0x80),
                        ht=bool(info["rsiz"] & 0x4000))
        elif marker == 0xFF52:  # COD, A.6.1
            info.update(progression=PROGRESSIONS[segment[1]] if segment[1] < 5 else segment[1],
                        layers=struct.unpack(">H", segment[2:4])[0], mct=segment[4], levels=segment[5],
                        reversible=segment[9] == 1, ht_blocks=bool(segment[8] & 0x40))
        elif marker == 0xFF55:  # TLM, A.7.1
            info["tlm"] = True
        elif marker == 0xFF50:  # CAP, 15444-15 A.2
            info["cap"] = True
        elif marker == 0xFF90:  # SOT, A.4.2: walk the tile-parts by their Psot lengths
            psot = struct.unpack(">I", segment[2:6])[0]
            info["tile_parts"] += 1
            if psot == 0:
                break
            pos += psot
            continue
        elif marker == 0xFFD9:
            break
        pos += 2 + length
    return info


def jpeg_info(data: bytes) -> dict:
    """Frame and scan header facts of a JPEG (ISO 10918-1 B.2) or JPEG-LS (ISO 14495-1 C.2) codestream."""
    if data[:2] != b"\xff\xd8":
        raise DamagedInput("not a JPEG codestream: no SOI marker")
    info: dict = {"app": []}
    pos = 2
    while pos + 4 <= len(data):
        marker, length = struct.unpack(">HH", data[pos:pos + 4])
        segment = data[pos + 4:pos + 2 + length]
        if 0xFFE0 <= marker <= 0xFFEF:
            info["app"].append(marker - 0xFFE0)
        elif marker in (0xFFC3, 0xFFF7):  # SOF3 lossless Huffman; SOF55 JPEG-LS
            precision, rows, columns, count = struct.unpack(">BHHB", segment[:6])
            info.update(process="lossless" if marker == 0xFFC3 else "JPEG-LS", precision=precision, rows=rows,
                        columns=columns, components=count)
        elif 0xFFC0 <= marker <= 0xFFCF and marker not in (0xFFC4, 0xFFC8, 0xFFCC):
            info.update(process=f"SOF{marker - 0xFFC0}", precision=segment[0])
        elif marker == 0xFFDA:  # SOS: Ns, component specs, then Ss Se Ah/Al
            ns = segment[0]
            ss, se, ahal = segment[1 + 2 * ns:4 + 2 * ns]
            if info.get("process") == "JPEG-LS":
                info.update(near=ss, interleave=se, point_transform=ahal & 0x0F)
            else:
                info.update(predictor=ss, point_transform=ahal & 0x0F)
            break
        pos += 2 + length
    return info


class _Bits:
    """ISO 18181-1 bit reader: least significant bit first."""

    def __init__(self, data: bytes):
        self.value, self.pos = int.from_bytes(data, "little"), 0

    def u(self, n: int) -> int:
        v = (self.value >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return v

    def u32(self, *dist) -> int:  # each distribution: an int constant or (bits, offset)
        d = dist[self.u(2)]
        return d if isinstance(d, int) else d[1] + self.u(d[0])


def jxl_boxes(data: bytes) -> dict[str, bytes]:
    """The boxes of a JPEG XL container (ISO 18181-2): type -> payload; the codestream under 'jxlc' (jxlp parts
    joined, their 4-byte index dropped)."""
    boxes: dict[str, bytes] = {}
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        end = len(data) if size == 0 else pos + size
        name, payload = kind.decode("latin-1"), data[pos + head:end]
        if name == "jxlp":
            boxes["jxlc"] = boxes.get("jxlc", b"") + payload[4:]
        else:
            boxes[name] = payload
        pos = end
    return boxes


def jxl_info(data: bytes) -> dict:
    """Header facts of a JPEG XL codestream, bare or in its container (ISO 18181-1 D.2 SizeHeader, A.6
    ImageMetadata; ISO 18181-2 boxes and the jxll level box)."""
    info: dict = {"format": "JXL", "container": False, "level": 5}
    if data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        boxes = jxl_boxes(data)
        data = boxes.get("jxlc", b"")
        info.update(container=True, level=boxes["jxll"][0] if "jxll" in boxes else 5)
    if data[:2] != b"\xff\x0a":
        raise DamagedInput("not a JPEG XL codestream: signature FF0A missing")
    bits = _Bits(data[2:64])
    size = (9, 0), (13, 0), (18, 0), (30, 0)
    ratios = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}

    def size_header():
        small = bits.u(1)
        rows = 8 * (bits.u(5) + 1) if small else bits.u32(*size) + 1
        ratio = bits.u(3)
        if ratio:
            num, den = ratios[ratio]
            return rows, rows * num // den
        return rows, (8 * (bits.u(5) + 1) if small else bits.u32(*size) + 1)

    info["rows"], info["columns"] = size_header()
    if bits.u(1):  # all_default: 8-bit, XYB
        return info | {"precision": 8, "xyb": True}
    if bits.u(1):  # extra_fields
        bits.u(3)  # orientation
        if bits.u(1):
            size_header()  # intrinsic size
        if bits.u(1) or bits.u(1):
            return info  # preview or animation headers: not parsed (medpipe writes neither)
    if bits.u(1):
        return info | {"float": True}
    info["precision"] = bits.u32(8, 10, 12, (6, 1))
    bits.u(1)  # modular_16_bit_buffer_sufficient
    if bits.u32(0, 1, (4, 2), (12, 1)):
        return info | {"extra_channels": True}
    info["xyb"] = bool(bits.u(1))
    if bits.u(1):  # colour encoding all_default: sRGB
        return info | {"colour": "RGB"}
    bits.u(1)  # want_icc
    info["colour"] = {0: "RGB", 1: "grey", 2: "XYB"}.get(bits.u32(0, 1, (4, 2), (6, 18)), "unknown")
    return info


def codestream_info(uid: str, data: bytes) -> dict:
    """Facts a validator checks against the header: precision, signedness, components, progression, markers."""
    if uid in (JPEG_2000_LOSSLESS, HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, "1.2.840.10008.1.2.4.91",
               "1.2.840.10008.1.2.4.203"):
        return j2k_info(data)
    if uid in (JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS, "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.81"):
        return jpeg_info(data)
    if uid in (JPEG_XL_LOSSLESS, "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112"):
        return jxl_info(data)
    if uid == RLE_LOSSLESS:  # PS3.5 G.5: 64-byte header, 16 little-endian uint32: segment count, offsets
        header = struct.unpack("<16I", data[:64])
        return {"format": "RLE", "segments": header[0], "offsets": [o for o in header[1:] if o]}
    if uid == DEFLATED_IMAGE_FRAME:
        return {"format": "deflate", "length": len(zlib.decompress(data, -zlib.MAX_WBITS))}
    raise CodecSkip(f"no codestream reader for transfer syntax {uid}")
