"""The frame coders: one class per transfer-syntax family (``TransferSyntax.family`` in :mod:`medpipe.syntaxes`)
that codes one frame of STORED values as PS3.5 specifies and decodes it back. The DICOM writer, its validator, the
archive and the DICOM readers all code frames here; a new syntax is one coder (or none, when a family has it) plus
one row of the table.

Input is one frame as pydicom's ``pixel_array`` gives it (rows x columns, or rows x columns x 3) with the Image
Pixel attributes it is written under (:class:`medpipe.syntaxes.PixelAttrs`). The output decodes, with any
conformant decoder, to exactly those values; every Image Pixel attribute stays as it was (High Bit = Bits Stored
- 1). How signed data is coded is the ``signedness`` rule of each table row:

- JPEG lossless (.70), JPEG-LS (.80): unsigned-only codings. PS3.5 8.2.1 Note 4 (8.2.3 refers to it): the Pixel
  Representation element "describes what has been compressed (the pixel data really is to be interpreted as signed
  if Pixel Representation so specifies)". So the codestream holds the two's complement bit pattern as unsigned
  samples. PS3.5 does not say how wide: medpipe codes the whole pixel cell, sign-extended, at precision
  P = BitsAllocated, as DCMTK 3.6.7 (dcmcjpeg/dcmcjpls "true lossless") and dcm4che (bitsCompressed=-16) do:
  every decoder then yields the stored values, including PACS that ignore Bits Stored (Orthanc 1.10.1 decodes a
  P = BitsStored signed stream as 0..2^P-1: measured, README "DICOM output"). Unsigned data: P = BitsStored.
- JPEG 2000 (.90), HTJ2K (.201/.202): the codestream carries signedness (SIZ Ssiz, ISO 15444-1 A.5.1); PS3.5
  8.2.4: "Pixel Representation may be either 0 or 1 depending on what has been encoded". Precision BitsStored.
- JPEG XL (.110, .112): no signed samples in ISO 18181-1; coded like JPEG/JPEG-LS by analogy with 8.2.1 Note 4
  (PS3.5 8.2.15 states only the consistency rule): medpipe's choice, labelled as such.
- JPEG XL JPEG Recompression (.111): not values but a baseline JPEG bitstream, re-coded losslessly (ISO 18181-1
  Annex M); :class:`JpegRecompression` gives the JPEG bytes back bit for bit.
- RLE (.5): PS3.5 Annex G.2 byte segments of the whole pixel cell, most significant byte first.
- Deflated Image Frame (.8.1): PS3.5 8.2.16 / A.4.13: the frame's native little-endian bytes, raw deflate.
"""
from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np

from ..depth import stored_pattern, values_from_pattern
from ..dicom.streaminfo import codestream_info
from ..errors import CodecSkip, DamagedInput, described
from ..syntaxes import TABLE, PixelAttrs, pixel_module_problems


def _ic():
    import imagecodecs

    return imagecodecs


class FrameCoder:
    """Codes one frame of stored values in the syntaxes of its ``family`` (module docstring)."""

    family: ClassVar[str]
    imagecodecs_decoder: ClassVar[str] = ""  # the imagecodecs function that decodes it, if one does

    def encode(self, uid: str, frame: np.ndarray, attrs: PixelAttrs, **settings) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes, attrs: PixelAttrs) -> np.ndarray:
        """The stored values of one frame: the codestream's samples read back through Bits Stored and Pixel
        Representation (the bit pattern of unsigned-only codings, or the values themselves)."""
        samples = np.asarray(getattr(_ic(), self.imagecodecs_decoder)(bytes(data)))
        return values_from_pattern(samples, attrs.bits_stored, attrs.signed)


class LosslessJpeg(FrameCoder):
    family, imagecodecs_decoder = "ljpeg", "jpeg8_decode"

    def encode(self, uid, frame, attrs, **settings):
        # PS3.5 8.2.1 Note 4 / A.4.1: process 14, selection value 1 (predictor 1), point transform 0, the bit pattern
        # as unsigned samples of `precision` bits. RGB without colour conversion.
        colour = {"colorspace": "RGB", "outcolorspace": "RGB"} if attrs.samples == 3 else {}
        data = _ic().jpeg8_encode(stored_pattern(frame, attrs.precision), lossless=True, predictor=1,
                                  bitspersample=attrs.precision, **colour)
        return strip_jpeg_wrappers(bytes(data))  # no JFIF APP0: PS3.5 8.2.1 Note 3


class JpegLS(FrameCoder):
    family, imagecodecs_decoder = "jpegls", "jpegls_decode"

    def encode(self, uid, frame, attrs, **settings):
        """NEAR 0 (8.2.3) of the bit pattern at `precision` (8.2.1 Note 4). imagecodecs' CharLS always codes 16 bits
        for uint16 data, so pydicom's pyjpegls encoder, which takes the precision, is used."""
        from pydicom.pixels.encoders import JPEGLSLosslessEncoder

        pattern = stored_pattern(frame, attrs.precision)
        return bytes(JPEGLSLosslessEncoder.encode(
            pattern, rows=frame.shape[0], columns=frame.shape[1], samples_per_pixel=attrs.samples,
            number_of_frames=1, bits_allocated=pattern.dtype.itemsize * 8, bits_stored=attrs.precision,
            pixel_representation=0, photometric_interpretation=attrs.photometric if attrs.samples == 3
            else "MONOCHROME2", planar_configuration=0))


class Jpeg2000(FrameCoder):
    family, imagecodecs_decoder = "j2k", "jpeg2k_decode"

    def encode(self, uid, frame, attrs, **settings):
        # PS3.5 8.2.4: signed components when Pixel Representation is 1; no multi-component transform, so that RGB
        # stays RGB (YBR_RCT would change Photometric Interpretation). Reversible 5-3 wavelet, raw codestream.
        data = frame.astype(np.int16 if attrs.signed else np.uint16) if frame.dtype.itemsize > 2 else frame
        return bytes(_ic().jpeg2k_encode(data, level=0, codecformat="J2K", reversible=True,
                                         bitspersample=attrs.bits_stored, mct=False))


class Htj2k(FrameCoder):
    """HTJ2K (ISO 15444-15) reversible, SIZ precision = BitsStored, signed when the data is; decoded by OpenJPEG
    (another library than the encoder, OpenJPH).

    imagecodecs' OpenJPH takes the precision from the dtype (8 or 16). A P-bit codestream is produced exactly as
    ISO 15444-1 specifies: the encoder level-shifts unsigned samples by 2^(P-1) (Annex G.1.2), so the samples are
    given already shifted, as signed, and SIZ is then written with the true precision and sign (A.5.1). QCD keeps
    the wider (16-bit) exponents, which only adds headroom.

    .202 (PS3.5 10.18): RPCL progression, base resolution <= 64 pixels, and TLM marker segments. Tile-parts are
    split at each resolution so that TLM gives the resolution breakpoints 10.18 asks for.
    """

    family, imagecodecs_decoder = "htj2k", "jpeg2k_decode"

    def encode(self, uid, frame, attrs, **settings):
        from pydicom.uid import HTJ2KLosslessRPCL

        rpcl = uid == HTJ2KLosslessRPCL
        values = frame.astype(np.int32)
        if not attrs.signed:
            values = values - (1 << (attrs.bits_stored - 1))
        levels = 5
        while max(frame.shape[:2]) > 64 << levels:
            levels += 1
        options = {"tlm": True, "tilepart": 1, "resolutions": levels} if rpcl else {}  # imagecodecs: decompositions
        # rgb=False: no multi-component transform, so RGB stays RGB (with RCT it would be YBR_RCT, PS3.5 8.2.4).
        data = bytearray(_ic().htj2k_encode(values.astype(np.int16), level=0, reversible=True, planar=False,
                                            rgb=False, **options))
        _set_siz_precision(data, attrs.bits_stored, attrs.signed)
        cod = data.find(b"\xff\x52")  # COD, ISO 15444-1 A.6.1: Lcod, Scod, then the progression order (2 = RPCL)
        if rpcl and (cod < 0 or data[cod + 5] != 2):
            raise CodecSkip("this OpenJPH did not write the RPCL progression PS3.5 10.18 requires for .202")
        return bytes(data)


def _set_siz_precision(data: bytearray, bits_stored: int, signed: bool) -> None:
    """Rewrite every component's Ssiz (ISO 15444-1 Table A.11: bit 7 sign, bits 0-6 precision - 1)."""
    if data[:4] != b"\xff\x4f\xff\x51":
        raise DamagedInput("not a JPEG 2000 codestream (SOC, SIZ expected)")
    components = int.from_bytes(data[40:42], "big")
    for c in range(components):
        data[42 + 3 * c] = (0x80 if signed else 0) | (bits_stored - 1)


class JpegXL(FrameCoder):
    """JPEG XL lossless (.110): modular mode, no XYB. Decodes .112 (lossy) too. libjxl writes a bare codestream
    up to 12 bits; above, the codestream needs Level 10, which ISO 18181-2 signals only in a container's jxll box,
    so the container is kept then."""

    family, imagecodecs_decoder = "jpegxl", "jpegxl_decode"

    def encode(self, uid, frame, attrs, effort=None, **settings):
        return bytes(_ic().jpegxl_encode(stored_pattern(frame, attrs.precision), lossless=True, effort=effort,
                                         bitspersample=attrs.precision, usecontainer=False))


class JpegRecompression(FrameCoder):
    """JPEG XL JPEG Recompression (.111): a baseline JPEG bitstream re-coded losslessly by libjxl (ISO 18181-1
    Annex M keeps the DCT coefficients and the reconstruction data); :meth:`jpeg` gives the original JPEG bytes
    back bit for bit, and :meth:`decode` decodes those with pydicom's JPEG decoder, as the readers decode a JPEG
    source, so the values are the source's own."""

    family = "jpegxl-jpeg"

    def encode(self, uid, frame, attrs, **settings):
        raise CodecSkip("JPEG XL JPEG Recompression codes a source's own baseline JPEG frames, not values")

    @staticmethod
    def recompress(jpeg: bytes) -> bytes:
        if jpeg[:2] != b"\xff\xd8":
            raise CodecSkip("not a JPEG bitstream (no SOI): nothing to recompress")
        try:
            return bytes(_ic().jpegxl_encode_jpeg(bytes(jpeg)))  # libjxl's default effort; imagecodecs takes none
        except Exception as exc:  # noqa: BLE001 - libjxl refuses JPEGs it cannot reconstruct (e.g. 12-bit)
            raise CodecSkip(f"libjxl cannot recompress this JPEG ({described(exc)})") from None

    @staticmethod
    def jpeg(data: bytes) -> bytes:
        """The original JPEG bitstream, reconstructed bit for bit."""
        return bytes(_ic().jpegxl_decode_jpeg(bytes(data)))

    def decode(self, data, attrs):
        return decode_jpeg(self.jpeg(data), attrs)


def decode_jpeg(jpeg: bytes, attrs: PixelAttrs) -> np.ndarray:
    """A baseline JPEG frame decoded by pydicom's public decoder API with the plugin the readers decode a .50
    source with (medpipe.jpeg_decoder: two conformant JPEG decoders may differ by one), so the values come from the
    same decoder the source was read with."""
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGBaseline8Bit

    from ..jpeg_decoder import baseline_plugin

    decoder = get_decoder(JPEGBaseline8Bit)
    return decoder.as_array(
        encapsulate([bytes(jpeg)]), rows=attrs.rows, columns=attrs.columns, samples_per_pixel=attrs.samples,
        number_of_frames=1, bits_allocated=attrs.bits_allocated, bits_stored=attrs.bits_stored,
        pixel_representation=0, photometric_interpretation=attrs.photometric, planar_configuration=0,
        pixel_keyword="PixelData", decoding_plugin=baseline_plugin())[0]


class Rle(FrameCoder):
    family = "rle"

    def encode(self, uid, frame, attrs, **settings):
        from pydicom.pixels.encoders import RLELosslessEncoder

        # PS3.5 Annex G.2: byte segments of the whole pixel cell, most significant byte first, one frame each.
        return bytes(RLELosslessEncoder.encode(
            native_cells(frame, attrs.bits_allocated, attrs.signed), rows=frame.shape[0], columns=frame.shape[1],
            samples_per_pixel=attrs.samples, number_of_frames=1, bits_allocated=attrs.bits_allocated,
            bits_stored=attrs.bits_stored, pixel_representation=int(attrs.signed),
            photometric_interpretation=attrs.photometric, planar_configuration=0))

    def decode(self, data, attrs):
        from ..rle import RleError, decode_frame as rle_frame

        try:  # medpipe's Annex G decoder: a frame that contradicts the format is named, not decoded to wrong values
            cells = rle_frame(bytes(data), attrs.rows, attrs.columns, attrs.samples, attrs.bits_allocated)
        except RleError as exc:
            raise DamagedInput(f"RLE frame: {exc}") from None
        return values_from_pattern(cells, attrs.bits_stored, attrs.signed)


class Deflate(FrameCoder):
    family = "deflate"

    def encode(self, uid, frame, attrs, **settings):
        # PS3.5 A.4.13: the frame's pixel data byte stream, deflated per RFC 1951 (no zlib header). Planar
        # Configuration is kept as the source has it (8.2.16: no restriction).
        cells = native_cells(frame, attrs.bits_allocated, attrs.signed)
        if attrs.samples == 3 and attrs.planar == 1:
            cells = np.moveaxis(cells, 2, 0)
        packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return packer.compress(np.ascontiguousarray(cells).tobytes()) + packer.flush()

    def decode(self, data, attrs):
        kind = np.dtype(("<i" if attrs.signed else "<u") + str(attrs.bits_allocated // 8))
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        native = inflater.decompress(bytes(data), attrs.frame_bytes + 2)  # bounded: one frame (+ a padding byte)
        if len(native) not in (attrs.frame_bytes, attrs.frame_bytes + 1) or inflater.unconsumed_tail:
            raise DamagedInput(f"a deflated frame inflates to {'more than ' if inflater.unconsumed_tail else ''}"
                               f"{len(native)} bytes, Rows x Columns x samples x bytes say {attrs.frame_bytes}")
        cells = np.frombuffer(native[:attrs.frame_bytes], kind).astype(kind.newbyteorder("="))
        if attrs.samples == 1:
            return cells.reshape(attrs.rows, attrs.columns)
        if attrs.planar:
            return np.moveaxis(cells.reshape(attrs.samples, attrs.rows, attrs.columns), 0, 2)
        return cells.reshape(attrs.rows, attrs.columns, attrs.samples)


# families whose codestream header states its size, and their names in messages
SIZED = {"ljpeg": "JPEG", "jpegls": "JPEG-LS", "j2k": "JPEG 2000", "htj2k": "HTJ2K", "jpegxl": "JPEG XL"}
CODERS: dict[str, FrameCoder] = {c.family: c() for c in (LosslessJpeg, JpegLS, Jpeg2000, Htj2k, JpegXL,
                                                         JpegRecompression, Rle, Deflate)}


def coder(uid: str) -> FrameCoder:
    """The coder of transfer syntax `uid`, or CodecSkip when medpipe codes none."""
    row = TABLE.get(str(uid))
    if row is None or row.family not in CODERS:
        raise CodecSkip(f"no frame coder for transfer syntax {uid}{' (' + row.name + ')' if row else ''}")
    return CODERS[row.family]


def native_cells(frame: np.ndarray, bits_allocated: int, signed: bool) -> np.ndarray:
    """The frame as native little-endian pixel cells (PS3.5 8.1.1), sign-extended when signed."""
    return frame.astype(("<i" if signed else "<u") + str(bits_allocated // 8))


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
                 photometric: str | None = None, planar_configuration: int = 0, **settings) -> bytes:
    """One frame's codestream in transfer syntax `uid`, decoding to exactly `frame` (lossless syntaxes; the module
    docstring), after checking its Image Pixel attributes against the table. ``settings``: effort, distance."""
    samples = _check_frame(frame, bits_stored, signed)
    allocated = bits_allocated or (8 if bits_stored <= 8 else 16)
    photometric = photometric or ("MONOCHROME2" if samples == 1 else "RGB")
    problems = pixel_module_problems(uid, samples, photometric, int(signed), allocated, bits_stored, bits_stored - 1,
                                     planar_configuration)
    if problems:
        raise CodecSkip(f"{TABLE[str(uid)].name}: " + "; ".join(problems))
    attrs = PixelAttrs(frame.shape[0], frame.shape[1], samples, photometric, signed, allocated, bits_stored,
                       bits_stored - 1, planar_configuration)
    return coder(uid).encode(uid, np.ascontiguousarray(frame), attrs, **{k: v for k, v in settings.items()
                                                                          if v is not None})


def decode_frame(uid: str, data: bytes, attrs: PixelAttrs) -> np.ndarray:
    """The stored values one codestream in `uid` holds. A JPEG, JPEG-LS, JPEG 2000 or JPEG XL codestream's own size
    header is checked against Rows and Columns first, so no decoder allocates for a size the header does not say."""
    row = TABLE.get(str(uid))
    if attrs.rows and row is not None and row.family in SIZED:
        info = codestream_info(uid, bytes(data))
        if (info.get("rows"), info.get("columns")) != (attrs.rows, attrs.columns):
            raise DamagedInput(f"the {SIZED[row.family]} codestream says {info.get('rows')} x {info.get('columns')}, the "
                               f"header Rows x Columns {attrs.rows} x {attrs.columns}; refused before decoding")
    return coder(uid).decode(bytes(data), attrs)


def recompress_jpeg(jpeg: bytes) -> bytes:
    """A baseline JPEG frame as JPEG XL JPEG Recompression (.111); :func:`original_jpeg` gives it back."""
    return JpegRecompression.recompress(jpeg)


def original_jpeg(data: bytes) -> bytes:
    return JpegRecompression.jpeg(data)


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

