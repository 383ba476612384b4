"""PNG through OpenCV (the thesis's pipeline used opencv-python). OpenCV's .jp2 writer is lossy by default,
so JPEG 2000 is left to imagecodecs/glymur rather than offered here with a surprising loss."""
from __future__ import annotations

import numpy as np

from .base import Codec
from .imagecodecs_family import PNG_PARAMS, PNG_STRATEGIES


class OpenCvPng(Codec):
    name, family = "png_opencv", "opencv"
    description = "PNG via OpenCV imencode (libpng), 8 or 16 bits"
    requires = ("cv2",)
    install_hint = "opencv-python-headless"
    params = PNG_PARAMS  # as codec png, whose defaults were measured (OpenCV's own level is 1)
    cost = 22.0

    def version(self, ctx):
        import cv2

        return f"opencv {cv2.__version__}"

    def encode_slice(self, sl):
        import cv2

        ok, buf = cv2.imencode(".png", sl, [cv2.IMWRITE_PNG_COMPRESSION, self.p["level"],
                                            cv2.IMWRITE_PNG_STRATEGY, PNG_STRATEGIES[self.p["strategy"]]])
        if not ok:
            raise RuntimeError("cv2.imencode('.png') returned False")
        return buf.tobytes()

    def decode_slice(self, data):
        import cv2

        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


CODECS = [OpenCvPng]
