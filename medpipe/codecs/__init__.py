"""Codec registry and configurations. A family module lists its classes in ``CODECS``; importing a family never
imports its library (that happens on first use), so a missing optional backend only marks its rows unavailable.

A configuration (:class:`CodecSpec`) is a codec instance plus what the round trip applies around it (a label, an
optional clipping window); :func:`parse_codec` builds one from a preset entry, checking every parameter against
the codec's declared options before any work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PresetError
from ..options import check_value, did_you_mean
from . import glymur_family, imagecodecs_family, jpeg_recompression, opencv_family, pillow_jpls, pydicom_family, video
from .base import COMMON_PARAMS, Codec, CodecContext, Encoded, Param, WrittenAs
from .lossless3d import codec as lossless3d_family

FAMILIES = [imagecodecs_family, jpeg_recompression, pillow_jpls, opencv_family, glymur_family, video, pydicom_family,
            lossless3d_family]
REGISTRY: dict[str, type[Codec]] = {cls.name: cls for fam in FAMILIES for cls in fam.CODECS}


def codec_class(name: str) -> type[Codec]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise PresetError(f"unknown codec '{name}'{did_you_mean(name, REGISTRY)}") from None


@dataclass(frozen=True)
class CodecSpec:
    """One configuration of the matrix: a codec instance plus the parameters the round trip applies."""

    label: str
    codec: Codec
    window: tuple[int, int] | None = None

    def canonical(self) -> dict:
        return {**self.codec.canonical(), "window": list(self.window) if self.window else None}

    def describe(self) -> dict:
        """What results files record of a configuration (the report reads it, never the codec classes)."""
        return {"label": self.label, "codec": self.codec.name, "params": dict(self.codec.p),
                "knobs": self.codec.knobs(), "curve": self.codec.curve(), "window": self.window,
                "lossless": self.codec.lossless}


def parse_codec(entry: Any, where: str) -> CodecSpec:
    """A preset's codec entry (``{codec: NAME, ...}`` or just ``NAME``) -> CodecSpec, or PresetError naming
    ``where`` and the key."""
    if isinstance(entry, str):
        entry = {"codec": entry}
    if not isinstance(entry, dict) or "codec" not in entry:
        raise PresetError(f"{where}: expected a mapping with a 'codec' key, e.g. {{codec: jpegls}}")
    cls = codec_class(str(entry["codec"]))
    params = {k: v for k, v in entry.items() if k != "codec"}
    for key, value in params.items():
        if key not in cls.params and key not in COMMON_PARAMS:
            raise PresetError(f"{where} ({cls.name}): unknown parameter '{key}'"
                              f"{did_you_mean(key, {**cls.params, **COMMON_PARAMS})}")
    window = check_value(params.pop("window", None), COMMON_PARAMS["window"], f"{where}.window")
    if window is not None and (len(window) != 2 or window[0] >= window[1]):
        raise PresetError(f"{where}.window: expected [lo, hi] stored values with lo < hi, got {window!r}")
    label = check_value(params.pop("label", None), COMMON_PARAMS["label"], f"{where}.label")
    codec = cls(f"{where} ({cls.name})", **params)  # the codec checks its parameters against its declared options
    if not label:
        setting = codec.setting()
        label = cls.name if setting == "default" else f"{cls.name} {setting}"
    return CodecSpec(label=label, codec=codec, window=tuple(window) if window else None)


__all__ = ["COMMON_PARAMS", "Codec", "CodecContext", "CodecSpec", "Encoded", "Param", "REGISTRY", "WrittenAs",
           "codec_class", "parse_codec"]
