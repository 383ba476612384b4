"""Codec registry. A family module lists its classes in ``CODECS``; importing a family never imports its
library (that happens on first use), so a missing optional backend only marks its rows unavailable."""
from __future__ import annotations

import difflib

from ..errors import PresetError
from .base import COMMON_PARAMS, Codec, Encoded, Param
from . import glymur_family, imagecodecs_family, opencv_family, pillow_jpls, pydicom_family, video
from .lossless3d import codec as lossless3d_family

FAMILIES = [imagecodecs_family, pillow_jpls, opencv_family, glymur_family, video, pydicom_family, lossless3d_family]
REGISTRY: dict[str, type[Codec]] = {cls.name: cls for fam in FAMILIES for cls in fam.CODECS}


def register(cls: type[Codec]) -> type[Codec]:
    """Add a codec class (used by family modules outside this package, e.g. pydicom's RLE)."""
    REGISTRY[cls.name] = cls
    return cls


def codec_class(name: str) -> type[Codec]:
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.6)
        hint = (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close
                else f"; known: {', '.join(sorted(REGISTRY))}")
        raise PresetError(f"unknown codec '{name}'{hint}") from None


__all__ = ["COMMON_PARAMS", "Codec", "Encoded", "Param", "REGISTRY", "codec_class", "register"]
