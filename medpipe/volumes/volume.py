"""The Volume type: a stack of 2-D slices of stored integer values and the facts that describe them.

Codecs work on the *stored* values (for DICOM: pydicom ``pixel_array`` without rescale); slope and intercept are
recorded, never applied. Padding (PixelPaddingValue / PixelPaddingRangeLimit) is kept in the pixels -- it must
survive a lossless round trip -- but the metrics leave it out of the value span and of MSE/PSNR/SSIM, through
:meth:`Volume.padding_mask`, :attr:`Volume.signal_range` and :attr:`Volume.signal_bits`.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

EVENT_KINDS = ("grouped", "split", "dropped", "duplicate", "damaged", "sorted")


def bits_for(lo: int, hi: int) -> int:
    """Bits needed for the values lo..hi after removing the minimum (at least 1)."""
    return max(1, math.ceil(math.log2(hi - lo + 1)))


def smallest_integer_dtype(lo: int, hi: int) -> np.dtype | None:
    """The narrowest of uint8/int8/uint16/int16/uint32/int32 holding lo..hi (None beyond 32 bits)."""
    for dt in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return None


def exact_integers(arr: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """Float pixels whose every value is an integer -> the narrowest integer array holding them exactly, and a
    note saying so. Medpipe codes integers only: any other float data is refused with one line."""
    if not np.isfinite(arr).all():
        raise InputError(f"{where}: floating-point pixels with NaN or infinity; medpipe codes integer data only "
                         "(convert the volume to integers first)")
    if arr.size and not np.array_equal(arr, np.rint(arr)):
        frac = arr[arr != np.rint(arr)].flat[0]
        raise InputError(f"{where}: floating-point pixels with fractional values (e.g. {float(frac):g}); medpipe "
                         "codes integer data only (scale and round to integers yourself, then record the scale)")
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    dt = smallest_integer_dtype(lo, hi)
    if dt is None:
        raise InputError(f"{where}: floating-point pixels with integer values {lo}..{hi} beyond 32 bits; not coded")
    return arr.astype(dt), (f"{arr.dtype} pixels hold integers only ({lo}..{hi}): converted exactly to {dt}")


@dataclass(eq=False)
class Volume:
    """A stack of 2-D slices (slices x rows x cols) of stored integer values plus what describes them."""

    name: str  # a safe file-name component, unique within one load
    pixels: np.ndarray
    bits_stored: int
    signed: bool
    bits_allocated: int
    source: Path
    files: list[Path] = field(default_factory=list)
    modality: str = ""
    body_part: str = ""
    description: str = ""
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    patient_hash: str = ""
    headers: list = field(default_factory=list, repr=False)  # pydicom Datasets without PixelData; [] when not DICOM
    notes: list[str] = field(default_factory=list)  # things done to the data on loading
    frame_order: list[int] | None = None  # multi-frame source: stored frame index of each slice (None: same order)
    # inclusive range of STORED values that are padding (PS3.3 C.7.5.1.1.2), None when the source names none
    padding: tuple[int, int] | None = None
    lossy_source: str = ""  # "" or why the source was already lossy before medpipe touched it
    color: str = ""  # "" or the colour conversion done on loading
    color_mode: str = ""  # "" or the input option `color` that conversion used: a coder of the source redoes it
    events: list[dict] = field(default_factory=list)  # what series assembly did: {"kind": ..., "message": ...}
    spacing: tuple[float, float, float] | None = None  # (slice, row, col) in mm when known
    origin: Any = field(default=None, repr=False)  # the VolumeSource this volume was loaded from (re-readable)
    source_transcoded: str = ""  # "" or how a PACS sent other bytes than it stores (medpipe/sources)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.pixels.shape)  # type: ignore[return-value]

    @property
    def raw_bytes(self) -> int:
        """Size of the stored pixel data: rows x cols x slices x BitsAllocated/8 (SPEC's CR numerator)."""
        return int(self.pixels.size) * self.bits_allocated // 8

    @cached_property
    def value_range(self) -> tuple[int, int]:
        return int(self.pixels.min()), int(self.pixels.max())

    @property
    def span_bits(self) -> int:
        """Bits the values present span, padding included (what a lossless codec must carry)."""
        return bits_for(*self.value_range)

    def padding_mask(self, arr: np.ndarray | None = None) -> np.ndarray:
        """True where ``arr`` (default: the pixels) holds a padding value; all False without padding."""
        arr = self.pixels if arr is None else arr
        if self.padding is None:
            return np.zeros(arr.shape, dtype=bool)
        lo, hi = self.padding
        return (arr >= lo) & (arr <= hi) if lo != hi else arr == lo

    @cached_property
    def padding_count(self) -> int:
        return int(np.count_nonzero(self.padding_mask())) if self.padding is not None else 0

    @cached_property
    def signal_range(self) -> tuple[int, int]:
        """Min and max of the voxels that are not padding (the value range when there is no padding, or when
        every voxel is padding)."""
        if self.padding is None or not self.padding_count or self.padding_count == self.pixels.size:
            return self.value_range
        lo, hi = self.padding
        # values below and above the padding range, without building a masked copy of the volume
        vmin, vmax = self.value_range
        below = self.pixels[self.pixels < lo] if vmin < lo else None
        above = self.pixels[self.pixels > hi] if vmax > hi else None
        mins = [int(a.min()) for a in (below, above) if a is not None and a.size]
        maxs = [int(a.max()) for a in (below, above) if a is not None and a.size]
        return min(mins), max(maxs)

    @property
    def signal_bits(self) -> int:
        """Bits the non-padding values span (the B of the PSNR/SSIM peak 2^B - 1)."""
        return bits_for(*self.signal_range)

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 over shape, dtype and pixel bytes: a volume's identity for caches and results."""
        h = hashlib.sha256()
        h.update(repr((self.pixels.shape, self.pixels.dtype.str)).encode())
        h.update(np.ascontiguousarray(self.pixels).tobytes())
        return h.hexdigest()

    def add_event(self, kind: str, message: str) -> dict:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; one of {EVENT_KINDS}")
        event = {"kind": kind, "message": message}
        self.events.append(event)
        return event

    def describe(self) -> dict:
        lo, hi = self.value_range
        slo, shi = self.signal_range
        return {
            "volume": self.name, "source": str(self.source), "shape": list(self.shape),
            "dtype": str(self.pixels.dtype), "bits_stored": self.bits_stored, "bits_allocated": self.bits_allocated,
            "signed": self.signed, "min": lo, "max": hi, "span_bits": self.span_bits,
            "padding": list(self.padding) if self.padding else None, "padding_count": self.padding_count,
            "signal_min": slo, "signal_max": shi, "signal_bits": self.signal_bits, "modality": self.modality,
            "body_part": self.body_part, "description": self.description, "rescale_slope": self.rescale_slope,
            "rescale_intercept": self.rescale_intercept, "patient_hash": self.patient_hash,
            "spacing_mm": list(self.spacing) if self.spacing else None, "lossy_source": self.lossy_source,
            "source_transcoded": self.source_transcoded,
            "color": self.color, "events": list(self.events), "notes": self.notes,
        }
