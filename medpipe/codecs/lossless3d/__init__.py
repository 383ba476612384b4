"""lossless3d: placeholder docstring (design notes to come)."""
from __future__ import annotations

from .stream import StreamError


def encode_volume(volume, bits=None, **kw) -> bytes:
    from .coder import encode_volume as enc

    return enc(volume, bits, **kw)


def decode_volume(data):
    from .coder import decode_volume as dec

    return dec(data)


__all__ = ["StreamError", "decode_volume", "encode_volume"]
