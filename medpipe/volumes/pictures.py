"""PNG slice folders (medpipe's own exact dump) and pictures: PNG, JPEG, TIFF and whole-slide TIFF (SVS, NDPI).

- A folder of PNG slices with ``medpipe_slices.json`` (written by :func:`dump_png`) is one exact volume: the
  sidecar holds the value offset and signedness, so signed 16-bit data survives 16-bit PNG.
- A picture is a 1-slice volume (a multi-page TIFF a stack). Colour becomes grey (or component planes) like
  colour DICOM. JPEG pictures and JPEG-tiled TIFF/SVS were lossy before medpipe read them: ``lossy_source``.
- Whole-slide images are read at level 0 of their first series (tifffile + imagecodecs), refused with one line
  beyond ``max_picture_megapixels``.
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np

from ..errors import InputError, described
from ..files import atomic_write_bytes
from ..options import Option
from .colour import colour_to_slices
from .input_options import input_settings, read_json_sidecar
from .series import natural_key
from .volume import Volume, exact_integers

PNG_SIDECAR = "medpipe_slices.json"  # written by dump_png: value offset and signedness, so PNG -> Volume is exact
# its keys, as dump_png writes them (values in PNG + offset, in int16 when signed, else uint16)
PNG_SIDECAR_KEYS = {
    "offset": Option(int, 0, "added to every PNG sample to give the stored value", range=(-65535, 65535)),
    "signed": Option(bool, False, "stored values are signed (int16)"),
    "bits_stored": Option(int, None, "bits of each value that carry data", range=(1, 16)),
    "source": Option(str, "", "where the volume came from"),
    "modality": Option(str, "", "DICOM modality code"),
    "body_part": Option(str, "", "body part examined"),
    "padding": Option(list, None, "[low, high] stored values marking padding", item=int),
    "spacing_mm": Option(list, None, "[slice, row, col] spacing in mm", item=(int, float)),
    "lossy_source": Option(str, "", "why the data was already lossy"),
}
# TIFF compression tags (TIFF 6 + registered extensions) whose coding loses information
LOSSY_TIFF = {6: "old-style JPEG", 7: "JPEG", 33003: "Aperio JPEG 2000 (YCbCr)", 33005: "Aperio JPEG 2000 (RGB)",
              34892: "lossy JPEG (DNG)", 22610: "JPEG XR", 50001: "WebP", 34712: "JPEG 2000 (lossy allowed)"}


def png_header(path: Path) -> tuple[int, int, int] | None:
    """(rows, cols, colour type) from the PNG IHDR chunk (PNG spec 11.2.2), without decoding; None if not PNG."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return None
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return height, width, head[25]


def _too_big(path: Path, samples: int, settings: dict, what: str) -> None:
    limit = settings["max_picture_megapixels"] * 1e6
    if samples > limit:
        raise InputError(f"{path}: {what} holds {samples / 1e6:.0f} million samples, more than inputs."
                         f"max_picture_megapixels ({settings['max_picture_megapixels']:g}); crop it or raise the "
                         "limit")


def load_png_folder(folder: Path, name: str | None = None, options: dict | None = None) -> Volume:
    """A folder of PNG slices, read exactly (values as stored, plus the sidecar's offset/signedness)."""
    import imagecodecs

    settings = input_settings(options)
    pngs = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"), key=lambda p: natural_key(p.name))
    if not pngs:
        raise InputError(f"{folder}: no .png slices")
    meta = read_png_sidecar(folder / PNG_SIDECAR)  # before the slices: a bad sidecar costs no decoding
    slices = []
    for p in pngs:
        header = png_header(p)
        if header:  # the size the header declares, before decoding: a 3 MB PNG may declare 40000 x 40000
            _too_big(p, header[0] * header[1], settings, "the PNG slice")
        try:
            slices.append(imagecodecs.png_decode(p.read_bytes()))
        except Exception as exc:  # noqa: BLE001 - imagecodecs raises its own error types per build
            raise InputError(f"{p}: not a readable PNG ({exc})")
    if len({s.shape for s in slices}) > 1:
        raise InputError(f"{folder}: PNG slices differ in size; one volume needs equal slices")
    if slices[0].ndim != 2:
        raise InputError(f"{pngs[0]}: colour PNG in a slice folder; PNG slices must be greyscale")
    pixels = np.stack(slices)
    offset, signed = meta.get("offset") or 0, bool(meta.get("signed"))
    if offset or signed:
        pixels = _offset_values(pixels, offset, signed, folder / PNG_SIDECAR)
    bits_alloc = pixels.dtype.itemsize * 8
    padding, spacing = meta.get("padding"), meta.get("spacing_mm")
    return Volume(name=name or folder.name, pixels=pixels, bits_stored=meta.get("bits_stored") or bits_alloc,
                  signed=signed, bits_allocated=bits_alloc, source=folder, files=pngs,
                  modality=meta.get("modality") or "", body_part=meta.get("body_part") or "",
                  padding=tuple(padding) if padding else None, spacing=tuple(spacing) if spacing else None,
                  lossy_source=meta.get("lossy_source") or "")


def read_png_sidecar(side: Path) -> dict:
    """The sidecar's keys, each of the type dump_png writes; InputError naming the file and the key otherwise."""
    if not side.exists():
        return {}
    meta = read_json_sidecar(side, PNG_SIDECAR_KEYS, "it must be the JSON dump_png wrote")
    padding = meta.get("padding")
    if padding is not None and (len(padding) != 2 or padding[0] > padding[1]):
        raise InputError(f"{side}.padding: {padding!r} is not [low, high]")
    spacing = meta.get("spacing_mm")
    if spacing is not None and (len(spacing) != 3 or not all(0 < v < float("inf") for v in spacing)):
        raise InputError(f"{side}.spacing_mm: {spacing!r} is not three positive spacings")
    return meta


def _offset_values(pixels: np.ndarray, offset: int, signed: bool, side: Path) -> np.ndarray:
    """The stored values back: PNG samples + the sidecar's offset, in int16 (signed) or uint16; refused, never
    wrapped, when they leave that type (dump_png's offset always keeps them inside)."""
    dtype = np.dtype(np.int16 if signed else np.uint16)
    lo, hi = int(pixels.min()) + offset, int(pixels.max()) + offset
    info = np.iinfo(dtype)
    if lo < info.min or hi > info.max:
        raise InputError(f"{side}: offset {offset} takes the slices' values to {lo}..{hi}, outside {dtype.name} "
                         f"({info.min}..{info.max}); refused instead of wrapping")
    return (pixels.astype(np.int32) + offset).astype(dtype)


def _decode_picture(path: Path, settings: dict) -> tuple[np.ndarray, str, str]:
    """(array, lossy_source, what it is) of a PNG, JPEG or TIFF picture."""
    import imagecodecs

    suffix = path.suffix.lower()
    if suffix == ".png":
        header = png_header(path)
        if header:
            _too_big(path, header[0] * header[1], settings, "the PNG")
        try:
            return imagecodecs.png_decode(path.read_bytes()), "", "PNG picture"
        except Exception as exc:  # noqa: BLE001 - imagecodecs raises its own error types per build
            raise InputError(f"{path}: not a readable PNG ({exc})")
    if suffix in (".jpg", ".jpeg"):
        try:
            arr = imagecodecs.jpeg8_decode(path.read_bytes())
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{path}: not a readable JPEG ({exc})")
        return arr, "JPEG picture (lossy coding at the source)", "JPEG picture"
    return _decode_tiff(path, settings)


def _decode_tiff(path: Path, settings: dict) -> tuple[np.ndarray, str, str]:
    """Level 0 of a TIFF's first series (SVS/NDPI: the full-resolution scan)."""
    try:
        import tifffile
    except ImportError:
        raise InputError(f"{path}: TIFF reader not available: install tifffile (pip install tifffile)")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            level = series.levels[0] if series.levels else series
            kind = "Aperio SVS whole-slide image, level 0" if tif.is_svs else (
                "NDPI whole-slide image, level 0" if tif.is_ndpi else "TIFF picture")
            _too_big(path, int(np.prod(level.shape)), settings, kind)
            code = int(level.keyframe.compression)
            description = tif.pages[0].description or ""
            arr = level.asarray()
            axes = level.axes
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile/imagecodecs raise many types on odd files
        raise InputError(f"{path}: not a readable TIFF ({described(exc)})")
    lossy = ""
    if code in LOSSY_TIFF:
        quality = re.search(r"\bQ=(\d+)", description)
        lossy = (f"{kind}: tiles coded {LOSSY_TIFF[code]}" + (f" Q={quality.group(1)}" if quality else "") +
                 " (lossy at the source)")
    if any(a not in "ZQIYXS" for a in axes) or not set("YX") <= set(axes):
        raise InputError(f"{path}: TIFF with axes {axes!r}; medpipe reads pictures (YX, YXS) and stacks (ZYX)")
    if "S" in axes and axes[-1] != "S":  # separate colour planes (PlanarConfiguration 2): samples last
        arr = np.moveaxis(arr, axes.index("S"), -1)
    return arr, lossy, kind


def load_picture(path: Path, name: str | None = None, options: dict | None = None) -> Volume:
    """One PNG/JPEG/TIFF picture (grey 8/16-bit, or 8-bit colour converted as colour DICOM is) as a volume."""
    settings = input_settings(options)
    arr, lossy, kind = _decode_picture(path, settings)
    notes, colour_text = [], ""
    if arr.ndim >= 3 and arr.shape[-1] == 2 and arr.ndim in (3, 4):  # grey + alpha
        arr = arr[..., 0]
        notes.append("alpha channel dropped")
    if arr.ndim >= 3 and arr.shape[-1] in (3, 4):
        if arr.shape[-1] == 4:
            notes.append("alpha channel dropped")
        try:
            arr, note, colour_text = colour_to_slices(arr, "RGB", settings["color"])
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        notes.insert(0, note)
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"{path}: {kind} of shape {arr.shape} is not a picture or a stack of slices")
    if arr.dtype.kind == "f":
        arr, note = exact_integers(arr, str(path))
        notes.append(note)
    if arr.dtype.kind not in "iu":
        raise InputError(f"{path}: {kind} with {arr.dtype} samples is not supported")
    bits = arr.dtype.itemsize * 8
    return Volume(name=name or path.stem, pixels=np.ascontiguousarray(arr), bits_stored=bits,
                  signed=arr.dtype.kind == "i", bits_allocated=bits, source=path, files=[path],
                  modality="SM" if "whole-slide" in kind else "OT", notes=notes, lossy_source=lossy,
                  color=colour_text, color_mode=settings["color"] if colour_text else "", description=kind)


def dump_png(volume: Volume, folder: Path) -> Path:
    """Write each slice as a 16-bit (or 8-bit) PNG, values exact; signed data is offset and the offset recorded."""
    import imagecodecs

    folder.mkdir(parents=True, exist_ok=True)
    lo, _ = volume.value_range
    offset = lo if volume.signed or lo < 0 else 0
    data = volume.pixels.astype(np.int64) - offset
    dtype = np.uint8 if volume.pixels.dtype.itemsize == 1 and offset == 0 else np.uint16
    width = max(3, len(str(volume.shape[0])))
    for i, sl in enumerate(data.astype(dtype)):
        atomic_write_bytes(folder / f"slice_{i:0{width}d}.png", imagecodecs.png_encode(sl))
    atomic_write_bytes(folder / PNG_SIDECAR, json.dumps({
        "offset": offset, "signed": volume.signed, "bits_stored": volume.bits_stored, "source": str(volume.source),
        "modality": volume.modality, "body_part": volume.body_part,
        "padding": list(volume.padding) if volume.padding else None,
        "spacing_mm": list(volume.spacing) if volume.spacing else None,
        "lossy_source": volume.lossy_source}, indent=1).encode())
    return folder
