"""Inputs -> volumes.

An input path is a folder tree (a PACS export, with or without DICOMDIR: every series in it becomes a volume, see
:mod:`medpipe.discover`), one DICOM file (single image or multi-frame), a PNG picture, or a folder of PNG slices.
Each bad file gets one message and is left out; the rest of its series and every other input go on. Inputs are
only ever read.
"""
from __future__ import annotations

import time
from pathlib import Path

from .discover import Discovery, Series, discover
from .errors import InputError, MedpipeError
from .volume import (PNG_SIDECAR, Volume, decode_pixels, load_png_folder, load_png_image, read_dicom,
                     volume_from_datasets)


def is_png_stack(path: Path) -> bool:
    """A folder of PNG slices (e.g. written by dump_png): only .png files (and the sidecar), no sub-folders."""
    if not path.is_dir():
        return False
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if (path / PNG_SIDECAR).exists():
        return True
    return bool(entries) and all(p.is_file() and p.suffix.lower() == ".png" for p in entries) and len(entries) > 1


def load_series(series: Series, color: str, errors: list[str]) -> Volume | None:
    """Read the pixels of one discovered series; a file that fails is reported and left out."""
    datasets, paths = [], []
    for path in series.paths:
        try:
            ds = read_dicom(path)
            decode_pixels(ds, path)  # decode now (pydicom caches it) so a damaged file is caught per file
        except MedpipeError as exc:
            errors.append(str(exc))
            continue
        datasets.append(ds)
        paths.append(path)
    if not datasets:
        return None
    dropped = len(series.paths) - len(paths)
    source = series.paths[0] if len(series.paths) == 1 else series.paths[0].parent
    vol = volume_from_datasets(datasets, paths, series.name, source, color=color)
    vol.notes += series.notes
    if dropped:
        vol.notes.append(f"{dropped} of {len(series.paths)} file(s) left out (see the messages above)")
    return vol


def load_path(path: Path, color: str, console) -> tuple[list[Volume], list[str], Discovery | None]:
    """One input path -> (volumes, error messages, the discovery when the path was walked)."""
    if not path.exists():
        raise InputError(f"{path}: does not exist; check the preset's 'input' or --input")
    if is_png_stack(path):
        return [load_png_folder(path)], [], None
    if path.is_file() and path.suffix.lower() == ".png":
        return [load_png_image(path, color=color)], [], None
    found = discover(path)
    volumes: list[Volume] = []
    errors = list(found.errors)
    for folder in found.png_folders:
        try:
            volumes.append(load_png_folder(folder, folder.name))
        except MedpipeError as exc:
            errors.append(str(exc))
    for png in found.pngs:
        try:
            volumes.append(load_png_image(png, name=png.stem, color=color))
        except MedpipeError as exc:
            errors.append(str(exc))
    for series in found.series:
        try:
            vol = load_series(series, color, errors)
        except MedpipeError as exc:
            errors.append(str(exc))
            continue
        if vol is not None:
            volumes.append(vol)
    return volumes, errors, found


def load_inputs(paths, console, color: str = "gray") -> tuple[list[Volume], list[str]]:
    """Every input path -> volumes; returns (volumes, one message per file or input that was left out)."""
    volumes, errors = [], []
    for path in paths:
        path = Path(path)
        t0 = time.perf_counter()
        try:
            found_vols, found_errors, found = load_path(path, color, console)
        except MedpipeError as exc:
            found_vols, found_errors, found = [], [str(exc)], None
        for msg in found_errors:
            console.print(f"[red]skipped:[/] {msg}", highlight=False)
        if found is not None:
            for note in found.notes:
                console.print(f"[yellow]note:[/] {note}", highlight=False)
            console.print(f"{path}: {found.summary(len(found_errors))}", highlight=False)
        ms = (time.perf_counter() - t0) * 1000 / max(1, len(found_vols))
        taken = {v.name for v in volumes}
        for vol in found_vols:
            vol.notes.append(f"load_ms={ms:.0f}")
            if vol.name in taken:  # two inputs with the same folder name: keep rows apart
                vol.name = f"{vol.name}-{len(volumes) + 1}"
            taken.add(vol.name)
            volumes.append(vol)
        errors += found_errors
    return volumes, errors
