"""Still-image codecs from imagecodecs (pure wheels, bit-exact on 12/16-bit data): one stream per slice."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Codec, NearLossless, Param

UID_JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
UID_JPEGLS_LOSSLESS = "1.2.840.10008.1.2.4.80"
UID_JPEGLS_NEAR = "1.2.840.10008.1.2.4.81"
UID_J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
UID_J2K = "1.2.840.10008.1.2.4.91"
UID_HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
UID_HTJ2K = "1.2.840.10008.1.2.4.203"
UID_JPEGXL_LOSSLESS = "1.2.840.10008.1.2.4.110"


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
    """The thesis's 'JPEG, 8 bits, lossless' row: lossless JPEG of data reduced to 8 bits."""

    name, lib = "jpeg8", "jpeg8"
    description = "JPEG lossless (process 14) on 8-bit input, as the thesis ran it; wider data is reduced first"
    max_bits = 8
    reduces_depth_ok = True

    def encode_slice(self, sl):
        return _codecs().jpeg8_encode(sl, lossless=True, predictor=1)


class JpegLosslessSV1(ImagecodecsCodec):
    """Lossless JPEG process 14, selection value 1: DICOM's default lossless transfer syntax, up to 16 bits."""

    name, lib = "ljpeg", "jpeg8"
    description = "lossless JPEG process 14 SV1 (DICOM 1.2.840.10008.1.2.4.70), 2-16 bits"
    dicom_ts = UID_JPEG_LOSSLESS_SV1

    def encode_slice(self, sl):
        bits = max(2, int(sl.max()).bit_length()) if sl.dtype == np.uint16 else 8
        return _codecs().jpeg8_encode(sl, lossless=True, predictor=1, bitspersample=bits if bits > 8 else None)


class JpegLS(ImagecodecsCodec, NearLossless):
    name, lib = "jpegls", "jpegls"
    description = "JPEG-LS (CharLS); near=0 lossless, near>0 near-lossless with |error| <= near"

    @property
    def dicom_ts(self):  # type: ignore[override]
        return UID_JPEGLS_LOSSLESS if self.lossless else UID_JPEGLS_NEAR

    def encode_slice(self, sl):
        return _codecs().jpegls_encode(sl, level=self.p["near"] or None)


class Jpeg2000(ImagecodecsCodec):
    name, lib = "jpeg2000", "jpeg2k"
    description = "JPEG 2000 (OpenJPEG); lossless (reversible 5/3) or lossy at a target PSNR"
    params = {"lossless": Param(bool, True, "reversible 5/3 wavelet, bit-exact"),
              "psnr": Param((int, float), None, "lossy: target PSNR in dB as OpenJPEG computes it"),
              "level": Param(int, None, "lossy: imagecodecs quality level (ignored when lossless)")}

    @property
    def lossless(self):
        return bool(self.p["lossless"])

    @property
    def dicom_ts(self):  # type: ignore[override]
        return UID_J2K_LOSSLESS if self.lossless else UID_J2K

    def encode_slice(self, sl):
        bits = max(int(sl.max()).bit_length(), 1 if sl.dtype == np.uint8 else 9)
        if self.lossless:
            return _codecs().jpeg2k_encode(sl, level=0, reversible=True, codecformat="j2k", bitspersample=bits)
        level = self.p["psnr"] if self.p["psnr"] is not None else self.p["level"]
        return _codecs().jpeg2k_encode(sl, level=level, reversible=False, codecformat="j2k", bitspersample=bits)


class HTJ2K(ImagecodecsCodec):
    name, lib = "htj2k", "htj2k"
    description = "High-Throughput JPEG 2000 (OpenJPH), lossless"
    dicom_ts = UID_HTJ2K_LOSSLESS

    def encode_slice(self, sl):
        return _codecs().htj2k_encode(sl, reversible=True)


class JpegXL(ImagecodecsCodec):
    name, lib = "jpegxl", "jpegxl"
    description = "JPEG XL (libjxl) lossless (modular mode)"
    params = {"effort": Param(int, None, "encoder effort 1-10 (libjxl default 7)")}
    dicom_ts = UID_JPEGXL_LOSSLESS

    def encode_slice(self, sl):
        bits = max(int(sl.max()).bit_length(), 9) if sl.dtype == np.uint16 else None  # 8 + uint16 is refused
        return _codecs().jpegxl_encode(sl, lossless=True, effort=self.p["effort"], bitspersample=bits)


class Png(ImagecodecsCodec):
    name, lib = "png", "png"
    description = "PNG (zlib deflate), 8 or 16 bits"
    params = {"level": Param(int, 9, "zlib compression level 0-9")}

    def encode_slice(self, sl):
        return _codecs().png_encode(sl, level=self.p["level"])


CODECS = [JpegLossless8, JpegLosslessSV1, JpegLS, Jpeg2000, HTJ2K, JpegXL, Png]
