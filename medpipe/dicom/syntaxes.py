"""The DICOM output's names for the transfer syntaxes it writes, all from the one table (:mod:`medpipe.syntaxes`),
and the refusal a row gets when its configuration has no DICOM form.

Which codec configuration fits which syntax is declared in each codec class (``Codec.dicom``); what the standard
says about the syntaxes themselves is the table (README, "DICOM output", tables the rules per syntax).
"""
from __future__ import annotations

from pydicom import uid as _u

from ..errors import MedpipeError
from ..syntaxes import (J2K_FAMILY, JPEG_FAMILY, JXL_FAMILY, WRITTEN, DeflatedImageFrameCompression, JPEGXLLossless,
                        PixelAttrs, attrs_problems, pattern_precision, pixel_module_problems)

JPEG_LOSSLESS_SV1 = _u.JPEGLosslessSV1
JPEG_LS_LOSSLESS, JPEG_LS_NEAR = _u.JPEGLSLossless, _u.JPEGLSNearLossless
JPEG_2000_LOSSLESS, JPEG_2000 = _u.JPEG2000Lossless, _u.JPEG2000
HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, HTJ2K = _u.HTJ2KLossless, _u.HTJ2KLosslessRPCL, _u.HTJ2K
JPEG_XL_LOSSLESS = JPEGXLLossless
RLE_LOSSLESS = _u.RLELossless
DEFLATED_IMAGE_FRAME = DeflatedImageFrameCompression
SYNTAXES = WRITTEN  # the lossless syntaxes medpipe writes from stored values

__all__ = ["DEFLATED_IMAGE_FRAME", "HTJ2K", "HTJ2K_LOSSLESS", "HTJ2K_LOSSLESS_RPCL", "J2K_FAMILY", "JPEG_2000",
           "JPEG_2000_LOSSLESS", "JPEG_FAMILY", "JPEG_LOSSLESS_SV1", "JPEG_LS_LOSSLESS", "JPEG_LS_NEAR",
           "JPEG_XL_LOSSLESS", "JXL_FAMILY", "NotWritable", "PixelAttrs", "RLE_LOSSLESS", "SYNTAXES",
           "attrs_problems", "pattern_precision", "pixel_module_problems"]


class NotWritable(MedpipeError):
    """This configuration has no DICOM form; the row says why."""
