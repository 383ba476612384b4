"""Inputs -> volumes. Each input path is a volume (series folder, multi-frame file, PNG folder); a bad input is
reported with its reason and skipped, the others go on."""
from __future__ import annotations

import time

from .errors import MedpipeError
from .volume import Volume, load_volume


def load_inputs(paths, console, color: str = "gray") -> tuple[list[Volume], list[str]]:
    volumes, errors = [], []
    for path in paths:
        t0 = time.perf_counter()
        try:
            vol = load_volume(path)
        except MedpipeError as exc:
            errors.append(str(exc))
            console.print(f"[red]input skipped:[/] {exc}", highlight=False)
            continue
        vol.notes.append(f"load_ms={((time.perf_counter() - t0) * 1000):.0f}")
        volumes.append(vol)
    return volumes, errors
