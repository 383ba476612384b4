"""Test data derived from the shipped real CT: the same anatomy at 8, 12, 16 bits and signed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medpipe.codecs import CodecSpec, parse_codec
from medpipe.matrix import CellSettings, measure_cell
from medpipe.volumes import Volume


def make_volume(pixels: np.ndarray, name: str, bits_stored: int | None = None) -> Volume:
    signed = pixels.dtype.kind == "i"
    return Volume(name=name, pixels=np.ascontiguousarray(pixels), bits_stored=bits_stored or pixels.dtype.itemsize * 8,
                  signed=signed, bits_allocated=pixels.dtype.itemsize * 8, source=Path(name), modality="CT")


def depth_variants(sample: Volume, slices=slice(12, 16), rows=slice(150, 215), cols=slice(140, 237)) -> dict:
    """Crops of the real sample (odd size 65 x 97, to exercise 4:2:0 padding) at several depths."""
    v = sample.pixels[slices, rows, cols].astype(np.int32)
    lo = int(v.min())
    off = v - lo  # 0..~3600: 12-bit
    return {
        "u8": make_volume((off >> 4).astype(np.uint8), "u8", 8),
        "u12": make_volume(off.astype(np.uint16), "u12", 12),
        "u16": make_volume(((off << 4) | (off & 15)).astype(np.uint16), "u16", 16),
        "s16": make_volume(sample.pixels[slices, rows, cols].copy(), "s16", 16),
    }


def spec_of(cfg) -> CodecSpec:
    return cfg if isinstance(cfg, CodecSpec) else parse_codec(dict(cfg), "test")


def row_of(volume: Volume, cfg, ctx, sink=None, **settings) -> dict:
    """The results row of one matrix cell (the real cell path: mapping, round trip, metrics, verdict); with
    ``sink`` (e.g. a DicomSink) the verified streams are handed to it as the matrix does."""
    spec = spec_of(cfg)
    res = measure_cell(volume, spec, ctx, CellSettings(**settings))
    if sink is not None:
        sink(volume, spec, res)
    return res.row.as_dict()
