"""Codecs through pydicom's own encoders: DICOM RLE Lossless (PS3.5 Annex G), one RLE frame per slice.

pydicom picks the backend: the fast pylibjpeg-rle plugin when installed, else its pure-Python encoder (much
slower, same bytes). The stream is exactly what DICOM encapsulates, so medpipe.dicom writes it as it is.
"""
from __future__ import annotations

import numpy as np

from pydicom.uid import RLELossless

from .base import Codec, Encoded, WrittenAs


def _plugin() -> str:
    """'pylibjpeg' (pylibjpeg-rle, fast) when available, else 'pydicom' (pure Python)."""
    from pydicom.pixels.encoders import RLELosslessEncoder

    return "pylibjpeg" if "pylibjpeg" in RLELosslessEncoder.available_plugins else "pydicom"


class Rle(Codec):
    name = "rle"
    family = "pydicom"
    description = "DICOM RLE Lossless (PackBits per byte plane) via pydicom, 8 or 16 bits"
    requires = ("pydicom", "numpy")
    install_hint = "pydicom (pip install pydicom; pylibjpeg-rle makes it ~20x faster)"
    dicom = (WrittenAs(RLELossless),)

    def version(self, ctx) -> str:
        import pydicom

        plugin = _plugin()
        if plugin == "pylibjpeg":
            import rle

            return f"pydicom {pydicom.__version__} (pylibjpeg-rle {rle.__version__})"
        return f"pydicom {pydicom.__version__} (native RLE encoder)"

    def encode(self, frames, ctx):
        from pydicom.pixels.encoders import RLELosslessEncoder

        plugin = _plugin()
        n, h, w = frames.shape
        bits = frames.dtype.itemsize * 8
        opts = dict(rows=h, columns=w, samples_per_pixel=1, number_of_frames=1, bits_allocated=bits,
                    bits_stored=bits, pixel_representation=0, photometric_interpretation="MONOCHROME2")
        chunks = [RLELosslessEncoder.encode(np.ascontiguousarray(sl), encoding_plugin=plugin, **opts)
                  for sl in frames]
        return Encoded(chunks, frames.shape, frames.dtype.str)

    def decode(self, enc, ctx):
        n, h, w = enc.shape
        dtype = np.dtype(enc.dtype)
        bits = dtype.itemsize * 8
        out = np.empty(enc.shape, dtype)
        try:
            from rle.utils import decode_pixel_data

            def one(chunk):
                return decode_pixel_data(chunk, version=2, rows=h, columns=w, bits_allocated=bits, byteorder="<")
        except ImportError:
            from ..rle import decode_frame

            def one(chunk):  # PS3.5 Annex G, every segment length checked
                return decode_frame(chunk, h, w, 1, bits).tobytes()
        for i, chunk in enumerate(enc.chunks):
            out[i] = np.frombuffer(bytes(one(chunk)), dtype.newbyteorder("<")).reshape(h, w)
        return out


CODECS = [Rle]
