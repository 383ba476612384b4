"""JPEG XL JPEG Recompression (DICOM .111) as a matrix row: a source stored as baseline JPEG has its own JPEG
bitstreams re-coded losslessly by libjxl, and decoding gives the same JPEG bytes back, bit for bit (checked on every
decode). It codes bitstreams, not values: :meth:`Codec.take_source` hands it the source's frames, and a source that is
not baseline JPEG skips the row with the reason. The row's reason carries the ratio against the source's own JPEG
bytes (the column ``cr`` stays raw / compressed, like every row).

A lossy source stays lossy: the values are the JPEG's, nothing new is lost, so the DICOM output keeps the instance
(Lossy Image Compression stays 01, its method and ratio history unchanged).
"""
from __future__ import annotations

import numpy as np

from ..errors import CodecSkip, DamagedInput
from ..syntaxes import BASELINE_JPEG, JPEGXLJPEGRecompression, PixelAttrs, name
from .base import Codec, Encoded, WrittenAs
from .frames import decode_jpeg, original_jpeg, recompress_jpeg


def source_jpeg_frames(volume) -> list[bytes]:
    """The source's baseline JPEG bitstream of each slice (slice order), or CodecSkip saying why there is none."""
    import pydicom
    from pydicom.encaps import generate_frames

    if not volume.headers:
        raise CodecSkip("the source is not DICOM: no JPEG bitstream to recompress")
    stored = sorted({str(getattr(h, "file_meta", {}).get("TransferSyntaxUID", "")) for h in volume.headers})
    if any(uid not in BASELINE_JPEG for uid in stored):
        raise CodecSkip(f"the source is stored as {', '.join(name(u) for u in stored)}, not baseline JPEG (.50/.51): "
                        "nothing to recompress")
    if int(volume.headers[0].get("SamplesPerPixel", 1) or 1) != 1:
        raise CodecSkip("a colour JPEG source: the row compares the grey values loaded from it; recompress it "
                        "through the DICOM output's own path instead")
    out = []
    for path, header in zip(volume.files, volume.headers):
        ds = pydicom.dcmread(path)
        out += list(generate_frames(ds.PixelData, number_of_frames=int(header.get("NumberOfFrames", 1) or 1)))
    if volume.frame_order is not None:
        out = [out[i] for i in volume.frame_order]
    if len(out) != volume.shape[0]:
        raise CodecSkip(f"{len(out)} JPEG frames for {volume.shape[0]} slices")
    return out


class JpegXLRecompression(Codec):
    name = "jpegxl-jpeg"
    family = "imagecodecs"
    description = ("JPEG XL JPEG Recompression (DICOM .111): a baseline JPEG source's own bitstream re-coded "
                   "losslessly; the JPEG bytes come back bit for bit")
    requires = ("imagecodecs",)
    max_bits = 8
    cost = 3.0
    dicom = (WrittenAs(JPEGXLJPEGRecompression),)
    jpeg: list[bytes] | None = None
    low = 0  # the smallest stored value of the volume prepared: the codec's input may be offset from it

    def version(self, ctx) -> str:
        import imagecodecs

        return f"imagecodecs {imagecodecs.__version__} ({imagecodecs.jpegxl_version()})"

    def take_source(self, volume) -> None:
        self.jpeg = source_jpeg_frames(volume)
        self.low = int(volume.pixels.min())

    def encode(self, frames: np.ndarray, ctx) -> Encoded:
        if self.jpeg is None or len(self.jpeg) != len(frames):
            raise CodecSkip("needs the source's own JPEG frames (a DICOM source stored as baseline JPEG)")
        chunks = [recompress_jpeg(j) for j in self.jpeg]
        jpeg_bytes, coded = sum(len(j) for j in self.jpeg), sum(len(c) for c in chunks)
        note = (f"against the source's own JPEG: {jpeg_bytes:,} -> {coded:,} bytes (CR {jpeg_bytes / coded:.3f}, "
                f"{100 * (1 - coded / jpeg_bytes):.1f} % smaller); the JPEG bytes come back bit for bit")
        # the JPEG decodes to the stored values; a value mapping may have offset the input from them
        return Encoded(chunks, frames.shape, frames.dtype.str, side={"note": note,
                                                                      "offset": self.low - int(frames.min())})

    def decode(self, enc: Encoded, ctx) -> np.ndarray:
        n, rows, cols = enc.shape
        attrs = PixelAttrs(rows, cols, 1, "MONOCHROME2", False, 8, 8, 7)
        out = np.empty(enc.shape, np.dtype(enc.dtype))
        for i, chunk in enumerate(enc.chunks):
            jpeg = original_jpeg(chunk)
            if self.jpeg is not None and jpeg != self.jpeg[i]:
                raise DamagedInput(f"slice {i}: the JPEG bitstream did not come back bit for bit")
            out[i] = decode_jpeg(jpeg, attrs).astype(np.int32) - enc.side.get("offset", 0)
        return out


CODECS = [JpegXLRecompression]
