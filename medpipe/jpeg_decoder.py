"""Which of pydicom's decoders decodes lossy baseline JPEG (.50/.51) here.

Two conformant JPEG decoders may round differently (ISO 10918-1 sets an IDCT accuracy, not its rounding; colour
upsampling and conversion add their own): Pillow (libjpeg-turbo) and pylibjpeg-libjpeg do on a few % of samples
(tests/test_archive_jpeg.py). So what a JPEG "is" in values depends on the decoder. medpipe reads a baseline JPEG source
with the first of pydicom's available plugins (in pydicom's sorted order, the others kept for rejections) and decodes a
kept JPEG frame again with that same one, so both agree on one machine. ``MEDPIPE_JPEG_DECODER`` picks another installed
plugin (``pillow``, ``pylibjpeg``, ``gdcm``): to get the values another machine got, or to avoid one decoder.
"""
from __future__ import annotations

import os

from .errors import InputError

ENV_VAR = "MEDPIPE_JPEG_DECODER"
VERSIONS = {"pillow": "pillow", "pylibjpeg": "pylibjpeg-libjpeg", "gdcm": "python-gdcm"}  # plugin -> its package


def plugin_order(available) -> list[str]:
    """``available`` (a decoder's plugin names) in the order medpipe tries them for baseline JPEG: the one
    ``MEDPIPE_JPEG_DECODER`` names first, else pydicom's sorted order. InputError when it names none of them."""
    order = sorted(available)
    chosen = os.environ.get(ENV_VAR, "").strip()
    if not chosen:
        return order
    if chosen not in order:
        raise InputError(f"{ENV_VAR}={chosen}: not an installed pydicom JPEG decoder plugin here; installed: "
                         f"{', '.join(order) or 'none'}")
    return [chosen] + [p for p in order if p != chosen]


def baseline_plugin() -> str:
    """The plugin that decodes baseline JPEG here (see the module docstring)."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGBaseline8Bit

    order = plugin_order(get_decoder(JPEGBaseline8Bit).available_plugins)
    if not order:
        raise InputError("no pydicom decoder for baseline JPEG is installed: pip install -r requirements.txt")
    return order[0]


def described_decoder(plugin: str | None = None) -> str:
    """'pillow 13.0.0': the baseline JPEG decoder here (or ``plugin``) and its package's version."""
    from importlib.metadata import PackageNotFoundError, version

    plugin = plugin or baseline_plugin()
    try:
        return f"{plugin} {version(VERSIONS.get(plugin, plugin))}"
    except PackageNotFoundError:
        return plugin
