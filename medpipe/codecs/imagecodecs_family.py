"""Still-image codecs from imagecodecs (pure wheels, bit-exact on 12/16-bit data): one stream per slice."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Codec, NearLossless, Param, Syntax

# DICOM transfer syntaxes these codestreams are (PS3.5 Table A-1, 10.x)
LJPEG_SV1 = Syntax("1.2.840.10008.1.2.4.70", "JPEG Lossless SV1")
JPEGLS_LOSSLESS = Syntax("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", {"near": 0})
JPEGLS_NEAR = Syntax("1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless", {"near": tuple(range(1, 256))})
J2K_LOSSLESS = Syntax("1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless", {"lossless": True})
J2K = Syntax("1.2.840.10008.1.2.4.91", "JPEG 2000", {"lossless": False})
HTJ2K_LOSSLESS = Syntax("1.2.840.10008.1.2.4.201", "HTJ2K Lossless")
JPEGXL_LOSSLESS = Syntax("1.2.840.10008.1.2.4.110", "JPEG XL Lossless")


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
    description = "lossless JPEG process 14 SV1 (DICOM 1.2.840.10008.1.2.4.70), 2-16 bits"
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
    description = "JPEG XL (libjxl) lossless (modular mode)"
    params = {"effort": Param(int, 9, "encoder effort 1-10 (libjxl's own default is 7)", range=(1, 10))}
    cost = 9.0
    dicom = (JPEGXL_LOSSLESS,)

    def encode_slice(self, sl):
        bits = max(int(sl.max()).bit_length(), 9) if sl.dtype == np.uint16 else None  # 8 + uint16 is refused
        return _codecs().jpegxl_encode(sl, lossless=True, effort=self.p["effort"], bitspersample=bits)


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


CODECS = [JpegLossless8, JpegLosslessSV1, JpegLS, Jpeg2000, HTJ2K, JpegXL, Png]
