"""The files of one DICOM series (already grouped and ordered by :mod:`series`) -> one Volume.

Each file is read and decoded once; the decoders' verdicts, the header's BitsStored and the series' own slices
decide whether a slice is trusted (:mod:`damage`). A slice that is not is named, and by ``on_damage`` either its
whole series is refused (default: one line saying how to go on without it) or the series goes on without it, said
so in an event.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .colour import colour_to_slices
from .damage import decode_checked, header_range_problem, series_outliers
from .dicom import (frame_positions, is_compressed_syntax, lossy_source_of, nominal_slice_spacing, orientation,
                    padding_of, patient_hash, pixel_spacing, read_dicom, slice_position, strip_pixels,
                    value_transform)
from .input_options import input_settings
from .series import ORIENTATION_TOLERANCE, int_or_none, slice_spacing
from .volume import Volume, exact_integers


class _Slices:
    """Per-file results while a series is read: headers, decoded arrays and the damage found."""

    def __init__(self):
        self.datasets: list = []
        self.paths: list[Path] = []
        self.arrays: list[np.ndarray] = []
        self.damaged: list[tuple[Path, str]] = []  # (file, reason)
        self.events: list[dict] = []


def _read_one(path: Path, alternates: list[Path], settings: dict, slices: _Slices) -> None:
    """Read and decode one file (or the first readable copy of its SOP Instance); record damage."""
    reasons = []
    for candidate in [path, *alternates]:
        try:
            ds = read_dicom(candidate)
            decoded = decode_checked(ds, candidate, settings["cross_check"])
        except InputError as exc:
            reasons.append(str(exc))
            continue
        if decoded.problems:
            reasons.append(f"{candidate}: damaged: " + "; ".join(decoded.problems))
            continue
        spp = int_or_none(ds.get("SamplesPerPixel")) or 1
        if spp == 1:
            problem = header_range_problem(decoded.array, int_or_none(ds.get("BitsStored")) or 16,
                                           bool(int_or_none(ds.get("PixelRepresentation"))))
            if problem:
                reasons.append(f"{candidate}: {problem}")
                continue
        if candidate != path:
            slices.events.append({"kind": "duplicate", "message": f"{path.name} could not be used "
                                  f"({reasons[-1]}); its copy {candidate.name} (same SOP Instance) was read instead"})
        slices.datasets.append(ds)
        slices.paths.append(candidate)
        slices.arrays.append(decoded.array)
        return
    slices.damaged.append((path, reasons[0] if reasons else f"{path}: unreadable"))


def _reasons(damaged: list[tuple[Path, str]]) -> str:
    return "; ".join(reason for _, reason in damaged[:3]) + (f"; and {len(damaged) - 3} more"
                                                             if len(damaged) > 3 else "")


def _refuse_or_drop(label: str, damaged: list[tuple[Path, str]], settings: dict, multiframe: bool) -> None:
    """Raise (the series is refused) unless on_damage is drop_slice and dropping is possible."""
    if not damaged:
        return
    if settings["on_damage"] == "refuse_series" or multiframe:
        how = ("a multi-frame object is never processed with frames missing" if multiframe else
               "set inputs on_damage: drop_slice to process the series without it")
        raise InputError(f"{label}: series refused, {len(damaged)} slice(s) unreadable or damaged: "
                         f"{_reasons(damaged)} ({how})")


def load_dicom_series(paths: list[Path], name: str, source: Path, options: dict | None = None, *,
                      alternates: dict[Path, list[Path]] | None = None, events: list[dict] | None = None,
                      label: str = "", errors: list[str] | None = None) -> Volume:
    """Read the ordered files of one series (or one multi-frame file) into a Volume.

    Raises InputError when the series is refused; with ``on_damage: drop_slice`` a damaged file is left out,
    its message appended to ``errors`` and an event added to the volume.
    """
    settings = input_settings(options)
    label = label or str(source)
    alternates = alternates or {}
    if not paths:
        raise InputError(f"{label}: no DICOM files")
    slices = _Slices()
    for path in paths:
        _read_one(path, alternates.get(path, []), settings, slices)
    if not slices.datasets:  # nothing to refuse or keep: the file's own message says it all
        raise InputError(slices.damaged[0][1] if len(paths) == 1 else
                         f"{label}: no slice could be read: {_reasons(slices.damaged)}")
    multiframe = len(paths) == 1 and (int_or_none(slices.datasets[0].get("NumberOfFrames")) or 1) > 1
    _refuse_or_drop(label, slices.damaged, settings, multiframe)
    vol = _stack(slices, name, source, settings)
    vol.events = list(events or []) + slices.events
    lost = list(slices.damaged)
    # the series check is for codestreams (a decoder run past a damaged byte); native pixel data is what it is.
    # Neighbours must be neighbours: frames of one object, or slices ordered along one normal.
    compressed = any(is_compressed_syntax(ds.file_meta.get("TransferSyntaxUID"))
                     for ds in slices.datasets if hasattr(ds, "file_meta"))
    neighbours = len(slices.datasets) == 1 or (_one_orientation(slices.datasets) and all(
        slice_position(ds) is not None for ds in slices.datasets))
    if (settings["damage_check"] and compressed and neighbours and vol.shape[0] >= 3
            and vol.pixels.dtype.kind in "iu" and not vol.color):
        outliers = series_outliers(vol.pixels, vol.padding)
        if outliers:
            per_file = len(vol.files) == vol.shape[0]
            bad = [(vol.files[i] if per_file else vol.files[0], f"{vol.files[i] if per_file else vol.source}: slice "
                    f"{i}: {why}") for i, why in sorted(outliers.items())]
            _refuse_or_drop(label, bad, settings, not per_file)
            keep = [i for i in range(vol.shape[0]) if i not in outliers]
            vol.pixels = np.ascontiguousarray(vol.pixels[keep])
            vol.files = [vol.files[i] for i in keep]
            vol.headers = [vol.headers[i] for i in keep]
            vol.__dict__.pop("value_range", None)
            lost += bad
    for path, reason in lost:
        vol.add_event("damaged", f"{reason}; slice left out (on_damage: drop_slice)")
        if errors is not None:
            errors.append(f"{reason}; left out of {label}")
    if lost:
        vol.notes.append(f"{len(lost)} damaged slice(s) left out (see events)")
    return vol


def _stack(slices: _Slices, name: str, source: Path, settings: dict) -> Volume:
    datasets, paths = slices.datasets, slices.paths
    first = datasets[0]
    notes: list[str] = []
    colour_text = ""
    frames = []
    for ds, arr in zip(datasets, slices.arrays):
        spp = int_or_none(ds.get("SamplesPerPixel")) or 1
        if spp > 1:
            try:
                arr, note, colour_text = colour_to_slices(arr, str(ds.get("PhotometricInterpretation", "RGB")),
                                                          settings["color"])
            except InputError as exc:
                raise InputError(f"{paths[0]}: {exc}") from None
            if note not in notes:
                notes.append(note)
        elif arr.ndim == 2:
            arr = arr[None]
        frames.append(arr)
    shapes = sorted({f.shape[1:] for f in frames})
    if len(shapes) > 1:
        raise InputError(f"{source}: slices differ in size {shapes}; give the folder as input so the series is "
                         "split by image size")
    pixels = np.concatenate(frames, axis=0)
    spp = int_or_none(first.get("SamplesPerPixel")) or 1
    signed = bool(int_or_none(first.get("PixelRepresentation"))) and spp == 1
    bits_alloc = (int_or_none(first.get("BitsAllocated")) or pixels.dtype.itemsize * 8) if spp == 1 else 8
    bits_stored = (int_or_none(first.get("BitsStored")) or bits_alloc) if spp == 1 else 8
    if pixels.dtype.kind == "f":  # Float/Double Float Pixel Data holding integers: the integer array decides
        pixels, note = exact_integers(pixels, str(source))
        notes.append(note)
        bits_alloc = bits_stored = pixels.dtype.itemsize * 8
        signed = pixels.dtype.kind == "i"
    frame_order, positions = None, None
    if len(datasets) == 1 and pixels.shape[0] > 1 and spp == 1:
        frame_order, positions = _sort_frames(first, pixels.shape[0], notes)
        if frame_order is not None:
            pixels = pixels[frame_order]
    elif len(datasets) > 1 and _one_orientation(datasets):  # positions along one normal only
        positions = [slice_position(ds) for ds in datasets]
    slope, intercept = value_transform(first)
    lossy = [reason for reason in (lossy_source_of(ds) for ds in datasets) if reason]
    vol = Volume(
        name=name, pixels=np.ascontiguousarray(pixels), bits_stored=bits_stored, signed=signed,
        bits_allocated=bits_alloc, source=source, files=list(paths), modality=str(first.get("Modality", "") or ""),
        body_part=str(first.get("BodyPartExamined", "") or ""),
        description=str(first.get("SeriesDescription", "") or first.get("ProtocolName", "") or ""),
        rescale_slope=slope, rescale_intercept=intercept, patient_hash=patient_hash(first),
        headers=[strip_pixels(ds) for ds in datasets], notes=notes, frame_order=frame_order,
        padding=padding_of(first, signed, bits_alloc) if spp == 1 else None,
        lossy_source=(lossy[0] if len(lossy) == len(datasets) else
                      f"{len(lossy)} of {len(datasets)} files: {lossy[0]}") if lossy else "",
        color=colour_text, color_mode=settings["color"] if colour_text else "", spacing=_spacing(first, positions, pixels.shape[0]))
    return vol


def _one_orientation(datasets: list) -> bool:
    first = orientation(datasets[0])
    return first is not None and all(
        (iop := orientation(ds)) is not None and max(abs(a - b) for a, b in zip(first, iop)) < ORIENTATION_TOLERANCE
        for ds in datasets[1:])


def _sort_frames(ds, n: int, notes: list[str]) -> tuple[list[int] | None, list[float] | None]:
    """Frames of an enhanced multi-frame object in order along the normal (per-frame functional groups)."""
    positions = frame_positions(ds)
    if not positions or len(positions) != n:
        return None, None
    if len({round(p, 3) for p in positions}) != len(positions):
        notes.append("frames share positions (several stacks or time points): kept in stored order")
        return None, None
    order = sorted(range(n), key=lambda i: positions[i])
    if order == list(range(n)):
        return None, positions
    notes.append("frames sorted along the slice normal (functional groups); DICOM output keeps the stored order")
    return order, [positions[i] for i in order]


def _spacing(ds, positions: list | None, n: int) -> tuple[float, float, float] | None:
    """(slice, row, col) mm: slice step from positions (median), else SpacingBetweenSlices/SliceThickness; a
    single image has slice spacing 0 when its header names no thickness."""
    pixel = pixel_spacing(ds)
    if pixel is None:
        return None
    step = None
    if positions and n > 1 and all(p is not None for p in positions):
        step = slice_spacing(positions)
    if step is None:
        step = nominal_slice_spacing(ds)
    if step is None:
        if n > 1:
            return None
        step = 0.0
    return round(float(step), 6), float(pixel[0]), float(pixel[1])
