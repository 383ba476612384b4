"""JPEG 2000 through glymur, an optional backend: it needs a system OpenJPEG >= 2.4 (a pip-only install lacks it,
and then this codec reports what to install instead of failing the run)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .base import Codec
from .imagecodecs_family import J2K_LOSSLESS


class GlymurJpeg2000(Codec):
    name, family = "jpeg2000_glymur", "glymur"
    description = "JPEG 2000 lossless via glymur + system OpenJPEG"
    requires = ("glymur",)
    install_hint = "glymur and a system OpenJPEG >= 2.4 (apt install libopenjp2-7 / conda install openjpeg)"
    cost = 7.0
    dicom = (J2K_LOSSLESS,)

    @classmethod
    def missing(cls):
        reason = super().missing()
        if reason:
            return reason
        import glymur

        found = tuple(int(x) for x in str(glymur.version.openjpeg_version).split(".")[:2] if x.isdigit())
        if found < (2, 4):
            return ("not available: glymur finds no OpenJPEG >= 2.4 (found "
                    f"'{glymur.version.openjpeg_version}'); install libopenjp2-7 or use codec jpeg2000")
        return None

    def version(self, ctx):
        import glymur

        return f"glymur {glymur.__version__}, OpenJPEG {glymur.version.openjpeg_version}"

    def encode_slice(self, sl):
        import glymur

        # glymur writes files only; a temporary file per slice is part of this backend's cost.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "s.j2k"
            glymur.Jp2k(str(path), data=sl)  # default: lossless (irreversible=False, one layer)
            return path.read_bytes()

    def decode_slice(self, data):
        import glymur

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "s.j2k"
            path.write_bytes(data)
            return np.asarray(glymur.Jp2k(str(path))[:])


CODECS = [GlymurJpeg2000]
