"""JPEG-LS through pillow-jpls (the thesis's library; CharLS underneath, via Pillow's plugin API)."""
from __future__ import annotations

import io

import numpy as np

from .base import NearLossless
from .imagecodecs_family import JPEGLS_LOSSLESS, JPEGLS_NEAR


class PillowJpegLS(NearLossless):
    name, family = "jpegls_pillow", "pillow-jpls"
    description = "JPEG-LS via pillow-jpls; near=0 lossless"
    requires = ("PIL", "pillow_jpls")
    install_hint = "pillow-jpls (pip install pillow-jpls)"
    dicom = (JPEGLS_LOSSLESS, JPEGLS_NEAR)

    def version(self, ctx):
        from importlib.metadata import version

        return f"pillow-jpls {version('pillow-jpls')}, Pillow {version('pillow')}"

    def encode_slice(self, sl):
        from PIL import Image
        import pillow_jpls  # noqa: F401  (registers the plugin)

        img = Image.fromarray(sl)  # uint16 -> mode I;16, uint8 -> L
        buf = io.BytesIO()
        img.save(buf, format="JPEG-LS", near_lossless=self.p["near"])
        return buf.getvalue()

    def decode_slice(self, data):
        from PIL import Image
        import pillow_jpls  # noqa: F401

        return np.asarray(Image.open(io.BytesIO(data)))


CODECS = [PillowJpegLS]
