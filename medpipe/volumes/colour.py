"""Colour pictures -> grey slices, the one conversion every reader (DICOM, PNG, JPEG, TIFF/SVS, MHA) uses."""
from __future__ import annotations

import numpy as np

from ..errors import InputError

# ITU-R BT.601 luma weights: the thesis grey-scaled its colour samples this way, and the luma of RGB is
# YBR_FULL's Y, so a YBR source converted to RGB by pydicom gives back its own Y (to rounding).
BT601 = (0.299, 0.587, 0.114)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB (..., 3) 8-bit -> 8-bit luma (BT.601), rounded to nearest."""
    f = rgb.astype(np.float64)
    luma = f[..., 0] * BT601[0] + f[..., 1] * BT601[1] + f[..., 2] * BT601[2]
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def colour_to_slices(arr: np.ndarray, photometric: str, mode: str) -> tuple[np.ndarray, str, str]:
    """A colour image (rows x cols x 3, or images x rows x cols x 3) -> (grey slices, note, Volume.color text).

    ``mode`` 'gray': one 8-bit luma slice per image. 'components': each component its own grey slice
    (slice = image x components + component, RGB order), which no single DICOM form can hold.
    The note starts with "colour": DICOM output and archives recognise converted volumes by it.
    """
    if arr.ndim == 3:
        arr = arr[None]
    if arr.shape[-1] == 4:  # RGBA: the alpha channel is not image content
        arr = arr[..., :3]
    if arr.shape[-1] != 3:
        raise InputError(f"colour images with {arr.shape[-1]} components are not supported (RGB only)")
    if arr.dtype.itemsize > 1:
        raise InputError(f"colour images of {arr.dtype.itemsize * 8} bits per component are not supported "
                         "(8-bit RGB only)")
    note, text = colour_texts(photometric, mode)
    if mode == "components":
        return np.moveaxis(arr, -1, 1).reshape(-1, *arr.shape[1:3]), note, text
    return to_gray(arr), note, text


def colour_texts(photometric: str, mode: str) -> tuple[str, str]:
    """(note, Volume.color text) of converting a `photometric` image in ``mode``."""
    source = "RGB" if photometric in ("", "RGB") else f"{photometric} (decoded to RGB)"
    if mode == "components":
        return (f"colour ({photometric or 'RGB'}) coded per component: 3 planes per image, slice = image x "
                "components + component (RGB order)", f"{source} coded per component")
    return (f"colour ({photometric or 'RGB'}) converted to 8-bit grey (BT.601 luma)",
            f"{source} -> 8-bit grey (BT.601 luma)")

