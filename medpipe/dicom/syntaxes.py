"""The DICOM transfer syntaxes medpipe writes, as data (PS3.5, PS3.6): UIDs, what each lossless syntax accepts in
the Image Pixel module (the PS3.5 "Valid Values of Pixel Data Related Attributes" tables, as medpipe writes them),
the PS3.6 entries pydicom 3.0 lacks, and the wrapper clean-up of benchmark codestreams.

Which codec configuration fits which syntax is declared in each codec class (``Codec.dicom``); this module holds
what the standard says about the syntaxes themselves (README, "DICOM output", tables the rules per syntax).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import CodecSkip, MedpipeError

JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
JPEG_XL_LOSSLESS = "1.2.840.10008.1.2.4.110"
JPEG_XL_RECOMPRESSION = "1.2.840.10008.1.2.4.111"
JPEG_XL = "1.2.840.10008.1.2.4.112"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
DEFLATED_IMAGE_FRAME = "1.2.840.10008.1.2.8.1"
J2K_FAMILY = (JPEG_2000_LOSSLESS, JPEG_2000, HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, HTJ2K)
JPEG_FAMILY = (JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS, "1.2.840.10008.1.2.4.57", JPEG_LS_NEAR)
JXL_FAMILY = (JPEG_XL_LOSSLESS, JPEG_XL_RECOMPRESSION, JPEG_XL)

MONO = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL")


class NotWritable(MedpipeError):
    """This configuration has no DICOM form; the row says why."""


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


# The lossless syntaxes medpipe writes (Bits Allocated 8 or 16 only). Tables cited per row; where the library is
# narrower than the standard, the profile says what the library can do and the comment says so.
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
    JPEG_XL_LOSSLESS: ("JPEG XL Lossless", "Transfer Syntax", "", "", "JPEGXLLossless"),
    JPEG_XL_RECOMPRESSION: ("JPEG XL JPEG Recompression", "Transfer Syntax", "", "", "JPEGXLJPEGRecompression"),
    JPEG_XL: ("JPEG XL", "Transfer Syntax", "", "", "JPEGXL"),
    DEFLATED_IMAGE_FRAME: ("Deflated Image Frame Compression", "Transfer Syntax", "", "",
                           "DeflatedImageFrameCompression"),
}


@contextmanager
def known_transfer_syntaxes():
    """Within the block pydicom knows the PS3.6 transfer syntaxes it lacks (JPEG XL, Deflated Image Frame), so
    files in them write and send like any encapsulated syntax (reading works without). Removed afterwards, so code
    that asks pydicom what it supports sees the library as it is (pynetdicom adds them for good on import: what
    pydicom *knows* is never taken as what it can *decode*; see :func:`medpipe.dicom.validate.decode_frames`)."""
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


@dataclass(frozen=True)
class PixelAttrs:
    """The Image Pixel module attributes (PS3.3 C.7.6.3) a codestream must agree with."""
    rows: int
    columns: int
    samples: int
    photometric: str
    signed: bool
    bits_allocated: int
    bits_stored: int
    high_bit: int
    planar: int = 0

    @classmethod
    def of(cls, ds) -> "PixelAttrs":
        allocated = int(ds.get("BitsAllocated", 16))
        stored = int(ds.get("BitsStored", allocated))
        return cls(int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1) or 1),
                   str(ds.get("PhotometricInterpretation", "MONOCHROME2")), int(ds.get("PixelRepresentation", 0)) == 1,
                   allocated, stored, int(ds.get("HighBit", stored - 1)), int(ds.get("PlanarConfiguration", 0) or 0))

    @property
    def frame_bytes(self) -> int:
        """Native (uncompressed) bytes of one frame."""
        return self.rows * self.columns * self.samples * self.bits_allocated // 8


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


def attrs_problems(uid: str, attrs: PixelAttrs) -> list[str]:
    return pixel_module_problems(uid, attrs.samples, attrs.photometric, int(attrs.signed), attrs.bits_allocated,
                                 attrs.bits_stored, attrs.high_bit, attrs.planar)


def pattern_precision(bits_stored: int, bits_allocated: int, signed: bool) -> int:
    """Sample precision of an unsigned-only codestream (.70, .80, .110): the whole sign-extended cell for signed
    data, Bits Stored for unsigned data (see :mod:`medpipe.dicom.codestreams`)."""
    return bits_allocated if signed else bits_stored


# ---------------------------------------------------------------- benchmark codestreams

def strip_jpeg_wrappers(stream: bytes) -> bytes:
    """Drop a JFIF APP0 segment (PS3.5 8.2.1 Note 3 recommends it be absent) or a JPEG-LS SPIFF header (APP8 +
    directory, ending in its own SOI): DICOM takes the interchange format, the image data are untouched."""
    if stream[:2] != b"\xff\xd8" or len(stream) < 8:
        return stream
    if stream[2:4] == b"\xff\xe0" and stream[6:11] == b"JFIF\x00":
        seg = int.from_bytes(stream[4:6], "big")
        return b"\xff\xd8" + stream[4 + seg:]
    if stream[2:4] == b"\xff\xe8" and stream[6:12] == b"SPIFF\x00":
        pos = 4 + int.from_bytes(stream[4:6], "big")
        while stream[pos:pos + 2] == b"\xff\xe8":  # directory entries; the end-of-directory one holds the SOI
            seg = int.from_bytes(stream[pos + 2:pos + 4], "big")
            entry = stream[pos + 4:pos + 2 + seg]
            if entry[:4] == b"\x00\x00\x00\x01":  # EOD: its last two bytes are the image's SOI
                return stream[pos + 2 + seg - 2:]
            pos += 2 + seg
    return stream
