"""The one table of DICOM transfer syntaxes (PS3.5 Section 8 and Annex A, PS3.6 Table A-1): every module asks it.

Per syntax (:class:`TransferSyntax`): UID and name; lossless, lossy or either; encapsulated or native; the frame
coder family that writes and reads it (``medpipe.codecs.frames``); how signed samples are coded, with the PS3.5
section; the Image Pixel attributes and bit depths it accepts (:class:`Pixels`, the PS3.5 "Valid Values of Pixel
Data Related Attributes" tables, as medpipe writes them); the fragment rule; and whether an object written in it may
keep its source's SOP Instance UID (PS3.3 C.7.6.1.1.5: only when the values are unchanged).

UIDs come from ``pydicom.uid``; the ones pydicom 3.0 lacks (JPEG XL, Deflated Image Frame, the retired JPEG
processes) are defined here, once, from PS3.6 Table A-1 (2024d). No UID literal of a transfer syntax appears in any
other module of medpipe (tests/test_syntaxes.py greps for them).
"""
from __future__ import annotations

from dataclasses import dataclass

from pydicom import uid as _u

from .errors import CodecSkip

# PS3.6 Table A-1 entries pydicom 3.0.2 has no constant for (pydicom 3.1 adds the first four).
JPEGXLLossless = _u.UID("1.2.840.10008.1.2.4.110")
JPEGXLJPEGRecompression = _u.UID("1.2.840.10008.1.2.4.111")
JPEGXL = _u.UID("1.2.840.10008.1.2.4.112")
DeflatedImageFrameCompression = _u.UID("1.2.840.10008.1.2.8.1")
RETIRED_JPEG = tuple(_u.UID(f"1.2.840.10008.1.2.4.{n}") for n in (52, 53, 54, 55, 56, 58, 59, 60, 61, 62, 63, 64))
VIDEO = (_u.MPEG2MPML, _u.MPEG2MPMLF, _u.MPEG2MPHL, _u.MPEG2MPHLF, _u.MPEG4HP41, _u.MPEG4HP41F, _u.MPEG4HP41BD,
         _u.MPEG4HP41BDF, _u.MPEG4HP422D, _u.MPEG4HP422DF, _u.MPEG4HP423D, _u.MPEG4HP423DF, _u.MPEG4HP42STEREO,
         _u.MPEG4HP42STEREOF, _u.HEVCMP51, _u.HEVCM10P51)

MONO = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL")


@dataclass(frozen=True)
class Pixels:
    """One row of a PS3.5 "Valid Values of Pixel Data Related Attributes" table, as medpipe writes it."""
    photometric: tuple[str, ...]
    samples: int
    signed_allowed: bool
    bits_allocated: tuple[int, ...]
    bits_stored: range


def _rows(mono_bits: range, colour_bits: range) -> tuple[Pixels, ...]:
    return (Pixels(MONO, 1, True, (8, 16), mono_bits), Pixels(("PALETTE COLOR",), 1, False, (8, 16), range(1, 17)),
            Pixels(COLOUR, 3, False, (8, 16), colour_bits))


# How signed samples (Pixel Representation 1) are coded; the frame coders follow these (README, "DICOM output").
PATTERN = ("unsigned-only coding: the two's complement bit pattern of the whole cell, sign-extended, precision "
           "Bits Allocated (unsigned data: precision Bits Stored); PS3.5 8.2.1 Note 4")
SIZ_SIGN = "the codestream carries the sign (SIZ Ssiz, ISO 15444-1 A.5.1); precision Bits Stored; PS3.5 8.2.4"
JXL_PATTERN = ("ISO 18181-1 has no signed samples: the bit pattern as for JPEG (8.2.1 Note 4, by analogy; "
               "PS3.5 8.2.15 gives only the consistency rule): medpipe's choice")
CELLS = "the pixel cells as stored (two's complement); PS3.5 8.1.1 (native), Annex G.2 (RLE), A.4.13 (deflate)"
ONE = "one fragment per frame (required)"
SPAN = "a frame may span fragments; medpipe writes one per frame"
JXL_FRAGMENTS = "medpipe writes one per frame (the A.4 text for JPEG XL was not at hand: not checked against it)"
WHOLE = "the whole stream is one frame; Basic Offset Table empty (PS3.5 8.2.5-8.2.9)"


@dataclass(frozen=True)
class TransferSyntax:
    """One transfer syntax. ``lossless``: True (always), False (always lossy) or None (either: the codestream and
    Lossy Image Compression say which). ``family``: the ``medpipe.codecs.frames`` coder that writes and reads its
    frames ("native" for native pixel data; "pydicom" when pydicom's plugins read it and medpipe codes none; ""
    when neither). ``pixels``: the Image Pixel attributes and bit depths it accepts (empty: not listed here).
    ``writes``: medpipe writes it from stored values (the DICOM output and the archive)."""
    uid: _u.UID
    name: str
    lossless: bool | None
    encapsulated: bool
    family: str
    signedness: str
    rules: str  # the PS3.5 sections that govern it
    fragments: str
    pixels: tuple[Pixels, ...] = ()
    writes: bool = False
    planar_zero: bool = False  # Planar Configuration must be 0 (colour-by-pixel codestreams)
    lossy_note: str = ""  # why its codestreams are, or may be, lossy (the readers' lossy-source reason)

    @property
    def keyword(self) -> str:
        return NAMES[self.uid][1] if self.uid in NAMES else self.uid.keyword

    @property
    def short(self) -> str:
        """The name in one-line messages and codec reasons."""
        return SHORT.get(self.uid, self.name)

    @property
    def keeps_instance(self) -> bool:
        """An object in this syntax may keep its source's SOP Instance UID: only when the values are unchanged --
        a lossless syntax, or .111, whose JPEG bitstream (hence every decoded value) is the source's own."""
        return self.lossless is True or self.family == "jpegxl-jpeg"

    def __str__(self) -> str:
        return self.uid


# names of the UIDs pydicom 3.0.2 does not know (PS3.6 Table A-1)
NAMES = {JPEGXLLossless: ("JPEG XL Lossless", "JPEGXLLossless"),
         JPEGXLJPEGRecompression: ("JPEG XL JPEG Recompression", "JPEGXLJPEGRecompression"),
         JPEGXL: ("JPEG XL", "JPEGXL"),
         DeflatedImageFrameCompression: ("Deflated Image Frame Compression", "DeflatedImageFrameCompression")}

SHORT = {_u.ImplicitVRLittleEndian: "Implicit VR Little Endian", _u.ExplicitVRLittleEndian: "Explicit VR Little "
         "Endian", _u.JPEGBaseline8Bit: "JPEG Baseline", _u.JPEGExtended12Bit: "JPEG Extended",
         _u.JPEGLossless: "JPEG Lossless", _u.JPEGLosslessSV1: "JPEG Lossless SV1", _u.JPEGLSLossless: "JPEG-LS "
         "Lossless", _u.JPEGLSNearLossless: "JPEG-LS Near-Lossless", _u.JPEG2000Lossless: "JPEG 2000 Lossless",
         _u.JPEG2000: "JPEG 2000", _u.HTJ2KLossless: "HTJ2K Lossless", _u.HTJ2KLosslessRPCL: "HTJ2K Lossless RPCL",
         _u.HTJ2K: "HTJ2K", _u.RLELossless: "RLE Lossless", DeflatedImageFrameCompression: "Deflated Image Frame"}
BASELINE_PIXELS = (Pixels(MONO, 1, False, (8,), range(8, 9)),
                   Pixels(("YBR_FULL_422", "YBR_FULL", "RGB"), 3, False, (8,), range(8, 9)))
_LOSSLESS = dict(lossless=True, encapsulated=True, writes=True)
_ROWS = (
    TransferSyntax(_u.ImplicitVRLittleEndian, "Implicit VR Little Endian", True, False, "native", CELLS,
                   "PS3.5 10.1, A.1", "native: no fragments"),
    TransferSyntax(_u.ExplicitVRLittleEndian, "Explicit VR Little Endian", True, False, "native", CELLS,
                   "PS3.5 10.2, A.2", "native: no fragments"),
    TransferSyntax(_u.ExplicitVRBigEndian, "Explicit VR Big Endian", True, False, "native", CELLS,
                   "PS3.5 A.3", "native: no fragments"),
    TransferSyntax(_u.DeflatedExplicitVRLittleEndian, "Deflated Explicit VR Little Endian", True, False, "native",
                   CELLS, "PS3.5 10.3, A.5 (the whole data set is deflated)", "native: no fragments"),
    TransferSyntax(_u.JPEGBaseline8Bit, "JPEG Baseline (Process 1)", False, True, "pydicom", "8-bit unsigned "
                   "only; PS3.5 8.2.1 Table 8.2.1-1", "PS3.5 8.2.1, A.4.1", SPAN, pixels=BASELINE_PIXELS,
                   lossy_note="JPEG Baseline (process 1), always lossy"),
    # Table 8.2.1-1: Bits Stored 8 or 12 (the range here also admits 9-11, which the table does not)
    TransferSyntax(_u.JPEGExtended12Bit, "JPEG Extended (Process 2 & 4)", False, True, "pydicom", "8/12-bit "
                   "unsigned only; PS3.5 8.2.1 Table 8.2.1-1", "PS3.5 8.2.1, A.4.1", SPAN,
                   pixels=(Pixels(MONO, 1, False, (8, 16), range(8, 13)),),
                   lossy_note="JPEG Extended (processes 2 & 4), always lossy"),
    *(TransferSyntax(u, u.name, False, True, "", PATTERN, "PS3.5 8.2.1 (retired)", SPAN,
                     lossy_note="a retired lossy JPEG process")
      for u in RETIRED_JPEG),
    TransferSyntax(_u.JPEGLossless, "JPEG Lossless, Non-Hierarchical (Process 14)", True, True, "ljpeg", PATTERN,
                   "PS3.5 8.2.1, A.4.1", SPAN),
    # Table 8.2.1-2 allows Bits Stored 1-16; libjpeg-turbo's lossless mode codes precision 2-16 (library limit).
    TransferSyntax(_u.JPEGLosslessSV1, "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 "
                   "[Selection Value 1])", family="ljpeg", signedness=PATTERN, rules="PS3.5 8.2.1 Table 8.2.1-2, "
                   "A.4.1", fragments=SPAN, pixels=_rows(range(2, 17), range(2, 17)), planar_zero=True, **_LOSSLESS),
    TransferSyntax(_u.JPEGLSLossless, "JPEG-LS Lossless Image Compression", family="jpegls", signedness=PATTERN,
                   rules="PS3.5 8.2.3 Table 8.2.3-1, A.4.3", fragments=SPAN, pixels=_rows(range(2, 17),
                   range(2, 17)), planar_zero=True, **_LOSSLESS),
    TransferSyntax(_u.JPEGLSNearLossless, "JPEG-LS Lossy (Near-Lossless) Image Compression", False, True, "jpegls",
                   PATTERN, "PS3.5 8.2.3, A.4.3 (lossless when NEAR is 0)", SPAN,
                   lossy_note="JPEG-LS Lossy (Near-Lossless)"),
    TransferSyntax(_u.JPEG2000Lossless, "JPEG 2000 Image Compression (Lossless Only)", family="j2k",
                   signedness=SIZ_SIGN, rules="PS3.5 8.2.4 Table 8.2.4-1, A.4.4", fragments=SPAN,
                   pixels=_rows(range(1, 17), range(1, 17)), planar_zero=True, **_LOSSLESS),
    TransferSyntax(_u.JPEG2000, "JPEG 2000 Image Compression", None, True, "j2k", SIZ_SIGN, "PS3.5 8.2.4, A.4.4",
                   SPAN, lossy_note="JPEG 2000 Image Compression, a syntax that allows lossy coding"),
    TransferSyntax(_u.JPEG2000MCLossless, "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)",
                   True, True, "", SIZ_SIGN, "PS3.5 8.2.5 (Part 2), A.4.5", SPAN),
    TransferSyntax(_u.JPEG2000MC, "JPEG 2000 Part 2 Multi-component Image Compression", None, True, "", SIZ_SIGN,
                   "PS3.5 8.2.5 (Part 2), A.4.5", SPAN, lossy_note="JPEG 2000 Part 2 Multi-component Image "
                   "Compression, a syntax that allows lossy coding"),
    TransferSyntax(_u.HTJ2KLossless, "High-Throughput JPEG 2000 Image Compression (Lossless Only)", family="htj2k",
                   signedness=SIZ_SIGN, rules="PS3.5 10.18, F.4; Image Pixel rules as Table 8.2.4-1", fragments=SPAN,
                   pixels=_rows(range(1, 17), range(1, 17)), planar_zero=True, **_LOSSLESS),
    TransferSyntax(_u.HTJ2KLosslessRPCL, "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless "
                   "Only)", family="htj2k", signedness=SIZ_SIGN, rules="PS3.5 10.18 (RPCL, TLM, base resolution "
                   "<= 64), F.4; as Table 8.2.4-1", fragments=SPAN, pixels=_rows(range(1, 17), range(1, 17)),
                   planar_zero=True, **_LOSSLESS),
    TransferSyntax(_u.HTJ2K, "High-Throughput JPEG 2000 Image Compression", None, True, "htj2k", SIZ_SIGN,
                   "PS3.5 10.18, F.4", SPAN, lossy_note="HTJ2K, a syntax that allows lossy coding"),
    TransferSyntax(JPEGXLLossless, "JPEG XL Lossless", family="jpegxl", signedness=JXL_PATTERN,
                   rules="PS3.5 8.2.15 Table 8.2.15-1", fragments=JXL_FRAGMENTS,
                   pixels=_rows(range(1, 17), range(1, 17)), planar_zero=True, **_LOSSLESS),
    # .111 holds a JPEG bitstream re-coded losslessly: lossless with respect to the JPEG bytes, which are lossy;
    # written only from a source's own baseline JPEG frames, never from values (writes stays False).
    TransferSyntax(JPEGXLJPEGRecompression, "JPEG XL JPEG Recompression", False, True, "jpegxl-jpeg",
                   "as the recompressed JPEG (8-bit unsigned, baseline); PS3.5 8.2.15",
                   "PS3.5 8.2.15 (the JPEG bitstream is reconstructible bit for bit)", JXL_FRAGMENTS,
                   pixels=BASELINE_PIXELS,
                   lossy_note="JPEG XL JPEG Recompression (the recompressed image was a lossy JPEG)"),
    TransferSyntax(JPEGXL, "JPEG XL", None, True, "jpegxl", JXL_PATTERN, "PS3.5 8.2.15 Table 8.2.15-1",
                   JXL_FRAGMENTS,
                   pixels=_rows(range(1, 17), range(1, 17)), planar_zero=True,
                   lossy_note="JPEG XL, a syntax that allows lossy coding"),
    TransferSyntax(_u.RLELossless, "RLE Lossless", family="rle", signedness=CELLS, rules="PS3.5 8.2.2 Table 8.2.2-1, "
                   "Annex G", fragments=ONE + ", PS3.5 A.4.2",
                   pixels=(Pixels(MONO, 1, True, (8, 16), range(1, 17)),
                           Pixels(("PALETTE COLOR",), 1, False, (8, 16), range(1, 17)),
                           Pixels(("RGB",), 3, False, (8, 16), range(1, 17)),
                           Pixels(("YBR_FULL",), 3, False, (8,), range(1, 9))), **_LOSSLESS),
    # 8.2.16: "there are no restrictions on the values of Pixel Data Related Attributes".
    TransferSyntax(DeflatedImageFrameCompression, "Deflated Image Frame Compression", family="deflate",
                   signedness=CELLS, rules="PS3.5 8.2.16, A.4.13", fragments=ONE + ", PS3.5 A.4.13",
                   pixels=(Pixels(MONO + ("PALETTE COLOR",), 1, True, (8, 16), range(1, 17)),
                           Pixels(COLOUR, 3, True, (8, 16), range(1, 17))), **_LOSSLESS),
    *(TransferSyntax(u, _u.UID(u).name, False, True, "video", "8/10-bit 4:2:0 video; PS3.5 8.2.5-8.2.9",
                     "PS3.5 8.2.5-8.2.9, A.4.6-A.4.12", WHOLE,
                     lossy_note="MPEG/H.264/HEVC video, always lossy") for u in VIDEO),
)
TABLE: dict[str, TransferSyntax] = {row.uid: row for row in _ROWS}

# Groups other modules ask for (each derived from the table, not listed again).
NATIVE = tuple(u for u, r in TABLE.items() if not r.encapsulated)
WRITTEN = {u: r for u, r in TABLE.items() if r.writes}  # lossless, written from stored values
J2K_FAMILY = tuple(u for u, r in TABLE.items() if r.family in ("j2k", "htj2k"))
JPEG_FAMILY = tuple(u for u, r in TABLE.items() if r.family in ("ljpeg", "jpegls"))
JXL_FAMILY = (JPEGXLLossless, JPEGXLJPEGRecompression, JPEGXL)
BASELINE_JPEG = (_u.JPEGBaseline8Bit, _u.JPEGExtended12Bit)  # what .111 can recompress (8-bit baseline frames)


def row(uid) -> TransferSyntax | None:
    return TABLE.get(str(uid))


def written(uid) -> TransferSyntax:
    """The row of a lossless syntax medpipe writes from stored values, or CodecSkip saying which ones it writes."""
    r = WRITTEN.get(str(uid))
    if r is None:
        raise CodecSkip(f"transfer syntax {uid} is not one medpipe writes losslessly; use one of "
                        f"{', '.join(sorted(WRITTEN))}")
    return r


def name(uid) -> str:
    r = TABLE.get(str(uid))
    return r.name if r else (_u.UID(str(uid)).name or str(uid))


def is_encapsulated(uid) -> bool:
    """True for an encapsulated (compressed) syntax, including those pydicom 3.0 does not know."""
    r = TABLE.get(str(uid))
    return bool(r and r.encapsulated)


def lossy_description(uid) -> str:
    """"" for a lossless syntax (or one not in the table), else why its codestreams are, or may be, lossy."""
    r = TABLE.get(str(uid))
    return r.lossy_note if r else ""


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

    @property
    def precision(self) -> int:
        """Sample precision of an unsigned-only codestream (:data:`PATTERN`)."""
        return pattern_precision(self.bits_stored, self.bits_allocated, self.signed)


def pattern_precision(bits_stored: int, bits_allocated: int, signed: bool) -> int:
    """Sample precision of an unsigned-only codestream (.70, .80, .110): the whole sign-extended cell for signed
    data, Bits Stored for unsigned data (:data:`PATTERN`)."""
    return bits_allocated if signed else bits_stored


def pixel_module_problems(uid: str, samples_per_pixel: int, photometric: str, pixel_representation: int,
                          bits_allocated: int, bits_stored: int, high_bit: int, planar_configuration: int = 0
                          ) -> list[str]:
    """Why these Image Pixel attributes cannot be written unchanged in `uid` (empty when they can)."""
    s = TABLE.get(str(uid))
    if s is None or not s.pixels:
        s = written(uid)
    problems = []
    if samples_per_pixel > 1 and planar_configuration != 0 and s.planar_zero:
        # 8.2.4: "irrelevant since the manner of encoding components is specified in the JPEG 2000 standard,
        # hence it shall be set to 0"; Tables 8.2.1-2 / 8.2.3-1 likewise list 0 (colour-by-pixel codestreams).
        problems.append(f"Planar Configuration {planar_configuration} must become 0 in {s.name} ({s.rules})")
    if high_bit != bits_stored - 1:
        problems.append(f"High Bit {high_bit} is not Bits Stored - 1: encapsulated codestreams decode to "
                        "low-aligned values (PS3.5 8.2, the precision of the codestream is Bits Stored)")
    for p in s.pixels:
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
