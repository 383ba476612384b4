"""JPEG XL JPEG Recompression (DICOM .111) as a matrix row: a source stored as baseline JPEG has its own JPEG
bitstreams re-coded losslessly by libjxl, and decoding gives the same JPEG bytes back, bit for bit (checked on every
decode). It codes bitstreams, not values: :meth:`Codec.take_source` hands it the source's frames, and a source that is
not baseline JPEG skips the row with the reason. The row's reason carries the ratio against the source's own JPEG
bytes (the column ``cr`` stays raw / compressed, like every row).

A lossy source stays lossy: the values are the JPEG's, nothing new is lost, so the DICOM output keeps the instance
(Lossy Image Compression stays 01, its method and ratio history unchanged).

A colour source (ultrasound, endoscopy, secondary captures: YBR_FULL_422, YBR_FULL or RGB) was loaded as grey
(:mod:`medpipe.volumes.colour`). The JPEG bitstream is re-coded as it is, colour and all; decoding gives its JPEG bytes
back bit for bit and then its values converted by the very conversion the loader used (the same pydicom decoder,
then the same ``colour_to_slices`` mode, found from the volume's ``color``), so the round trip's bit-exact comparison
with the loaded volume is an honest one. The colour facts travel in the stream's side data: an archive decodes
without the source.
"""
from __future__ import annotations

import numpy as np

from ..errors import CodecSkip, DamagedInput
from ..syntaxes import BASELINE_JPEG, BASELINE_PIXELS, JPEGXLJPEGRecompression, PixelAttrs, name
from ..volumes.colour import colour_to_slices
from .base import Codec, Encoded, WrittenAs
from .frames import decode_jpeg, original_jpeg, recompress_jpeg


def source_headers(volume) -> list:
    """The volume's DICOM headers, read again from its files where the volume travelled without them (a matrix
    worker gets a volume's metadata only; read whole, so the JPEG frames need no second read); [] for a source that
    is not DICOM."""
    if volume.headers or not volume.files:
        return list(volume.headers)
    import pydicom

    try:
        return [pydicom.dcmread(p) for p in volume.files]
    except Exception:  # noqa: BLE001 - not DICOM (a picture, NIfTI, ...): no JPEG bitstream to take
        return []


def source_jpeg_frames(volume, headers: list) -> list[bytes]:
    """The source's baseline JPEG bitstream of each slice (slice order), or CodecSkip saying why there is none."""
    import pydicom
    from pydicom.encaps import generate_frames

    if not headers:
        raise CodecSkip("the source is not DICOM: no JPEG bitstream to recompress")
    stored = sorted({str(getattr(h, "file_meta", {}).get("TransferSyntaxUID", "")) for h in headers})
    if any(uid not in BASELINE_JPEG for uid in stored):
        raise CodecSkip(f"the source is stored as {', '.join(name(u) for u in stored)}, not baseline JPEG (.50/.51): "
                        "nothing to recompress")
    out = []
    for path, header in zip(volume.files, headers):
        ds = header if "PixelData" in header else pydicom.dcmread(path)
        out += list(generate_frames(ds.PixelData, number_of_frames=int(header.get("NumberOfFrames", 1) or 1)))
    if volume.frame_order is not None:
        out = [out[i] for i in volume.frame_order]
    per = slices_per_image(colour_of(volume, headers))
    if len(out) * per != volume.shape[0]:
        raise CodecSkip(f"{len(out)} JPEG frames for {volume.shape[0]} slices")
    return out


def colour_of(volume, headers: list | None = None) -> dict | None:
    """None for a grey source; for a colour one {"photometric", "mode"}: how its decoded pixels became the loaded
    slices. CodecSkip when the loaded volume's conversion cannot be reproduced from the JPEG."""
    headers = volume.headers if headers is None else headers
    header = headers[0]
    if int(header.get("SamplesPerPixel", 1) or 1) == 1:
        return None
    photometric = str(header.get("PhotometricInterpretation", ""))
    others = {str(h.get("PhotometricInterpretation", "")) for h in headers} - {photometric}
    if others:  # one conversion per volume: the stream's side data carries one
        raise CodecSkip(f"a colour JPEG series whose files differ in Photometric Interpretation ({photometric}, "
                        f"{', '.join(sorted(others))})")
    allowed = next(p.photometric for p in BASELINE_PIXELS if p.samples == 3)
    if photometric not in allowed:
        raise CodecSkip(f"a colour JPEG source with Photometric Interpretation {photometric or '(none)'}: baseline "
                        f"JPEG holds {', '.join(allowed)}")
    mode = volume.color_mode
    if not mode:
        raise CodecSkip(f"a colour JPEG source loaded as {volume.color or 'it is'}: medpipe cannot reproduce that "
                        "conversion from the decoded JPEG, so the values could not be compared")
    return {"photometric": photometric, "mode": mode}


def slices_per_image(colour: dict | None) -> int:
    return 3 if colour and colour["mode"] == "components" else 1


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
    colour: dict | None = None  # colour_of(the source)
    low = 0  # the smallest stored value of the volume prepared: the codec's input may be offset from it

    def version(self, ctx) -> str:
        import imagecodecs

        return f"imagecodecs {imagecodecs.__version__} ({imagecodecs.jpegxl_version()})"

    def take_source(self, volume) -> None:
        headers = source_headers(volume)
        self.colour = colour_of(volume, headers) if headers else None
        self.jpeg = source_jpeg_frames(volume, headers)
        self.low = int(volume.pixels.min())

    def encode(self, frames: np.ndarray, ctx) -> Encoded:
        if self.jpeg is None or len(self.jpeg) * slices_per_image(self.colour) != len(frames):
            raise CodecSkip("needs the source's own JPEG frames (a DICOM source stored as baseline JPEG)")
        chunks = [recompress_jpeg(j) for j in self.jpeg]
        jpeg_bytes, coded = sum(len(j) for j in self.jpeg), sum(len(c) for c in chunks)
        note = (f"against the source's own JPEG: {jpeg_bytes:,} -> {coded:,} bytes (CR {jpeg_bytes / coded:.3f}, "
                f"{100 * (1 - coded / jpeg_bytes):.1f} % smaller); the JPEG bytes come back bit for bit")
        # the JPEG decodes to the stored values; a value mapping may have offset the input from them
        side = {"note": note, "offset": self.low - int(frames.min())}
        if self.colour:
            side["colour"] = dict(self.colour)
        return Encoded(chunks, frames.shape, frames.dtype.str, side=side)

    def decode(self, enc: Encoded, ctx) -> np.ndarray:
        n, rows, cols = enc.shape
        colour = enc.side.get("colour")
        per = slices_per_image(colour)
        attrs = (PixelAttrs(rows, cols, 3, colour["photometric"], False, 8, 8, 7) if colour else
                 PixelAttrs(rows, cols, 1, "MONOCHROME2", False, 8, 8, 7))
        if len(enc.chunks) * per != n:
            raise DamagedInput(f"{len(enc.chunks)} JPEG XL streams for {n} slices")
        out = np.empty(enc.shape, np.dtype(enc.dtype))
        for i, chunk in enumerate(enc.chunks):
            jpeg = original_jpeg(chunk)
            if self.jpeg is not None and jpeg != self.jpeg[i]:
                raise DamagedInput(f"slice {i}: the JPEG bitstream did not come back bit for bit")
            values = decode_jpeg(jpeg, attrs)
            if colour:  # the loader's own conversion (module docstring)
                values = colour_to_slices(values, colour["photometric"], colour["mode"])[0]
            out[i * per:(i + 1) * per] = values.astype(np.int32) - enc.side.get("offset", 0)
        return out


CODECS = [JpegXLRecompression]
