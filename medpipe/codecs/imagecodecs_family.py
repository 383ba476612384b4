"""Still-image codecs from imagecodecs (pure wheels, bit-exact on 12/16-bit data): one stream per slice."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from pydicom import uid

from ..syntaxes import JPEGXL, JPEGXLLossless
from ..dicom.streaminfo import jxl_info
from ..errors import CodecSkip, DamagedInput
from .base import Codec, Encoded, NearLossless, Param, WrittenAs

# DICOM transfer syntaxes these codestreams are (rows of medpipe.syntaxes)
LJPEG_SV1 = WrittenAs(uid.JPEGLosslessSV1)
JPEGLS_LOSSLESS = WrittenAs(uid.JPEGLSLossless, {"near": 0})
JPEGLS_NEAR = WrittenAs(uid.JPEGLSNearLossless, {"near": tuple(range(1, 256))})
J2K_LOSSLESS = WrittenAs(uid.JPEG2000Lossless, {"lossless": True})
J2K = WrittenAs(uid.JPEG2000, {"lossless": False})
HTJ2K_LOSSLESS = WrittenAs(uid.HTJ2KLossless)
JPEGXL_LOSSLESS = WrittenAs(JPEGXLLossless, {"distance": (None, 0, 0.0)})
JPEGXL_LOSSY = WrittenAs(JPEGXL)  # any distance > 0 (the lossless case is taken by .110 first)


def _codecs():
    import imagecodecs

    return imagecodecs


class ImagecodecsCodec(Codec):
    family = "imagecodecs"
    requires = ("imagecodecs",)
    install_hint = "imagecodecs (pip install imagecodecs)"
    lib: ClassVar[str]  # imagecodecs codec name, e.g. "jpegls"

    @classmethod
    def missing(cls):
        reason = super().missing()
        if reason is None and not getattr(getattr(_codecs(), cls.lib.upper(), None), "available", False):
            return f"not available: this imagecodecs build lacks {cls.lib}; pip install -U imagecodecs"
        return reason

    def version(self, ctx) -> str:
        ic = _codecs()
        return f"imagecodecs {ic.__version__} ({getattr(ic, self.lib + '_version')()})"

    def decode_slice(self, data: bytes) -> np.ndarray:
        return getattr(_codecs(), self.lib + "_decode")(data)


class JpegLossless8(ImagecodecsCodec):
    """The thesis's 'JPEG, 8 bits, lossless' row: lossless JPEG of data reduced to 8 bits. The coding is lossless,
    the row is not (on 12-bit CT the reduction costs up to 8 stored values): label it as what it is."""

    name, lib = "jpeg8", "jpeg8"
    description = ("lossless JPEG (process 14, SV1) of data reduced to 8 bits, as the thesis ran it: lossy for wider "
                   "data")
    max_bits = 8
    reduces_depth_ok = True
    dicom = (LJPEG_SV1,)  # only when the mapping is exact (8-bit data): the matrix checks
    lossy_method = "ISO_10918_1"

    def encode_slice(self, sl):
        return _codecs().jpeg8_encode(sl, lossless=True, predictor=1)


class JpegLosslessSV1(ImagecodecsCodec):
    """Lossless JPEG process 14, selection value 1: DICOM's default lossless transfer syntax, up to 16 bits."""

    name, lib = "ljpeg", "jpeg8"
    description = "lossless JPEG process 14 SV1 (DICOM .70), 2-16 bits"
    dicom = (LJPEG_SV1,)

    def encode_slice(self, sl):
        bits = max(2, int(sl.max()).bit_length()) if sl.dtype == np.uint16 else 8
        return _codecs().jpeg8_encode(sl, lossless=True, predictor=1, bitspersample=bits if bits > 8 else None)


class JpegLS(ImagecodecsCodec, NearLossless):
    name, lib = "jpegls", "jpegls"
    description = "JPEG-LS (CharLS); near=0 lossless, near>0 near-lossless with |error| <= near"
    dicom = (JPEGLS_LOSSLESS, JPEGLS_NEAR)

    def encode_slice(self, sl):
        return _codecs().jpegls_encode(sl, level=self.p["near"] or None)


class Jpeg2000(ImagecodecsCodec):
    """JPEG 2000 through OpenJPEG. Lossless default by measurement (``bench/codec_defaults.py`` on the dev CT series;
    the README's "Codecs and their defaults", numbers in ``bench/measured/codec_defaults-2026-12-01``): resolution
    levels 5 to 8 code equally, so OpenJPEG's own 6 (5 decomposition levels) stays. The code-block size (OpenJPEG's
    64 x 64, the largest the standard allows), precincts and progression order are not exposed by imagecodecs, and
    it cannot write tiles."""

    name, lib = "jpeg2000", "jpeg2k"
    description = "JPEG 2000 (OpenJPEG); lossless (reversible 5/3) or lossy at a target PSNR"
    params = {"lossless": Param(bool, True, "reversible 5/3 wavelet, bit-exact"),
              "resolutions": Param(int, 6, "resolution levels (wavelet decompositions + 1; the library lowers it "
                                           "for small images)", range=(1, 32)),
              "psnr": Param((int, float), None, "lossy: target PSNR in dB as OpenJPEG computes it", range=(1, 200),
                            knob=True),
              "level": Param(int, None, "lossy: imagecodecs quality level (ignored when lossless)", range=(0, 100),
                             knob=True)}
    conflicts = (("psnr", "level"),)
    cost = 9.0
    dicom = (J2K_LOSSLESS, J2K)
    lossy_method = "ISO_15444_1"

    @property
    def lossless(self):
        return bool(self.p["lossless"])

    def encode_slice(self, sl):
        bits = max(int(sl.max()).bit_length(), 1 if sl.dtype == np.uint8 else 9)
        if self.lossless:
            return _codecs().jpeg2k_encode(sl, level=0, reversible=True, codecformat="j2k", bitspersample=bits,
                                           resolutions=self.p["resolutions"])
        level = self.p["psnr"] if self.p["psnr"] is not None else self.p["level"]
        return _codecs().jpeg2k_encode(sl, level=level, reversible=False, codecformat="j2k", bitspersample=bits,
                                       resolutions=self.p["resolutions"])


class HTJ2K(ImagecodecsCodec):
    """HTJ2K through OpenJPH, lossless. Default by measurement (as for JPEG 2000): 6 resolution levels, one more
    than OpenJPH's default and smaller at the same speed; more levels gain nothing, and 6 is JPEG 2000's default
    too. One tile (tiles cost compression in a first look); the code-block size is not exposed by imagecodecs."""

    name, lib = "htj2k", "htj2k"
    description = "High-Throughput JPEG 2000 (OpenJPH), lossless"
    params = {"resolutions": Param(int, 6, "resolution levels (wavelet decompositions + 1)", range=(1, 33))}
    dicom = (HTJ2K_LOSSLESS,)

    def encode_slice(self, sl):
        return _codecs().htj2k_encode(sl, reversible=True, resolutions=self.p["resolutions"])


class JpegXL(ImagecodecsCodec):
    """JPEG XL through libjxl, lossless (modular mode). Default effort by measurement (as for JPEG 2000): effort 9,
    the strongest short of 10, chosen deliberately: smaller than libjxl's default 7 for several times the encode
    time, while 10 gains little more again at a fraction of 9's speed. ``presets/ladder.yaml`` shows efforts 1, 3,
    7 and 9 side by side. imagecodecs exposes no modular predictor or tree options for lossless coding
    (``decodingspeed`` concerns lossy VarDCT)."""

    name, lib = "jpegxl", "jpegxl"
    description = "JPEG XL (libjxl): lossless (modular mode), or lossy (VarDCT) at a Butteraugli distance > 0"
    params = {"effort": Param(int, 9, "encoder effort 1-10 (libjxl's own default is 7)", range=(1, 10)),
              "distance": Param((int, float), None, "lossy: Butteraugli distance (0 or unset: lossless; 1 is "
                                "libjxl's 'visually lossless')", range=(0, 25), knob=True)}
    cost = 9.0
    dicom = (JPEGXL_LOSSLESS, JPEGXL_LOSSY)  # .110 lossless, .112 lossy (PS3.5 8.2.15)
    lossy_method = "ISO_18181_1"  # PS3.3 C.7.6.1.1.5.1

    @property
    def lossless(self):
        return not self.p["distance"]

    def encode_slice(self, sl):
        bits = max(int(sl.max()).bit_length(), 9) if sl.dtype == np.uint16 else None  # 8 + uint16 is refused
        if not self.lossless:
            return _codecs().jpegxl_encode(sl, effort=self.p["effort"], distance=float(self.p["distance"]),
                                           bitspersample=bits)
        return _codecs().jpegxl_encode(sl, lossless=True, effort=self.p["effort"], bitspersample=bits)


class ChannelJpegXL(ImagecodecsCodec):
    """JPEG XL lossless images of 1-4 frames each (grey, grey + alpha, RGB, RGBA; imagecodecs codes L, LA, RGB
    and RGBA in contiguous mode), so the encoder's reversible colour transforms and context tree see neighbouring
    frames together. ``channels`` lists the frames of each image, in stream order."""

    name, lib = "jpegxl-channels", "jpegxl"
    description = "JPEG XL lossless, consecutive frames as the channels of one image (the archive's layouts)"
    params = {"effort": Param(int, 7, "encoder effort 1-10", range=(1, 10)),
              "channels": Param(list, None, "frames per image, in stream order", item=int)}
    per_slice = False
    cost = 9.0

    def encode(self, frames: np.ndarray, ctx) -> Encoded:
        imagecodecs = _codecs()
        plan = self.p["channels"] or [1] * len(frames)
        if sum(plan) != len(frames) or not all(1 <= c <= 4 for c in plan):
            raise CodecSkip(f"channel plan {plan[:8]}... does not cover {len(frames)} frames with 1-4 per image")
        chunks, at = [], 0
        for c in plan:
            part = frames[at] if c == 1 else np.ascontiguousarray(np.moveaxis(frames[at:at + c], 0, -1))
            bits = max(9, int(part.max()).bit_length()) if part.dtype == np.uint16 else None
            chunks.append(bytes(imagecodecs.jpegxl_encode(part, lossless=True, effort=self.p["effort"],
                                                          bitspersample=bits)))
            at += c
        return Encoded(chunks, frames.shape, frames.dtype.str)

    def decode(self, enc: Encoded, ctx) -> np.ndarray:
        imagecodecs = _codecs()
        out = np.empty(enc.shape, np.dtype(enc.dtype))
        plan = self.p["channels"] or [1] * enc.shape[0]
        if len(plan) != len(enc.chunks) or sum(plan) != enc.shape[0]:
            raise DamagedInput(f"{len(enc.chunks)} codestreams of {sum(plan)} channels for {len(plan)} images of "
                               f"{enc.shape[0]} slices")
        at = 0
        for c, chunk in zip(plan, enc.chunks):
            info = jxl_info(chunk)  # the codestream's own size header, before the decoder allocates
            if (info["rows"], info["columns"]) != tuple(enc.shape[1:]):
                raise DamagedInput(f"a JPEG XL codestream says {info['rows']} x {info['columns']}, expected "
                                   f"{enc.shape[1]} x {enc.shape[2]}; refused before decoding")
            img = imagecodecs.jpegxl_decode(chunk)
            out[at:at + c] = img[None] if c == 1 else np.moveaxis(img, -1, 0)
            at += c
        return out


# zlib strategies (zlib.h Z_FILTERED etc.), as imagecodecs' PNG.STRATEGY and OpenCV's IMWRITE_PNG_STRATEGY number them
PNG_STRATEGIES = {"default": 0, "filtered": 1, "huffman": 2, "rle": 3, "fixed": 4}


PNG_PARAMS = {"level": Param(int, 9, "zlib compression level 0-9", range=(0, 9)),
              "strategy": Param(str, "filtered", "zlib strategy (filtered suits PNG's filtered rows)",
                                tuple(PNG_STRATEGIES))}  # both PNG codecs: the defaults measured below


class Png(ImagecodecsCodec):
    """PNG through libpng. Defaults by measurement (as for JPEG 2000): zlib level 9 with the Z_FILTERED strategy and
    libpng's adaptive row filters, the strongest combination and the slowest; ``presets/ladder.yaml`` shows levels
    1, 6 and 9. Fixed row filters (Paeth or Up alone) came out below libpng's adaptive choice in a first look, so
    the filters are not a parameter."""

    name, lib = "png", "png"
    description = "PNG (zlib deflate), 8 or 16 bits"
    params = PNG_PARAMS
    cost = 35.0

    def encode_slice(self, sl):
        return _codecs().png_encode(sl, level=self.p["level"], strategy=PNG_STRATEGIES[self.p["strategy"]])


CODECS = [JpegLossless8, JpegLosslessSV1, JpegLS, Jpeg2000, HTJ2K, JpegXL, ChannelJpegXL, Png]
