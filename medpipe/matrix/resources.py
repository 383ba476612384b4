"""Resources of a matrix run: how many cells run side by side (cores, free memory), and memory measured per cell."""
from __future__ import annotations

import os
import sys

from ..memory import free_memory


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)



def cap_jobs_for_memory(jobs: int, volume_bytes: list[int], console) -> int:
    """Fewer parallel cells when N of them would not fit in the free memory (a cell needs ~k x its volume)."""
    if jobs <= 1 or not volume_bytes:
        return jobs
    free = free_memory()
    if free is None:
        return jobs
    need = max(cell_memory(b) for b in volume_bytes)
    fit = max(1, int(free // need))
    if fit < jobs:
        console.print(f"[yellow]memory: {free / 2**30:.1f} GiB free, a cell of the largest volume needs about "
                      f"{need / 2**30:.1f} GiB: running {fit} cell(s) at a time instead of {jobs}[/]")
        return fit
    return jobs


# Measured peak of one cell (bench/scale.py, 50-200 slices of a 512 x 512 CT): the worker needs about
# 57 MiB + 3.25 x the volume's bytes (the mapped volume, the coded copy, the decoded and the restored volume);
# an x264/x265 veryslow 4:4:4 encoder process adds up to ~370 MiB whatever the length.
CELL_VOLUME_FACTOR = 3.5
CELL_BASE_BYTES = 450 * 2**20


def cell_memory(volume_bytes: int) -> float:
    """Bytes one cell of a volume of this size may need at its peak (worker and encoder process)."""
    return CELL_VOLUME_FACTOR * volume_bytes + CELL_BASE_BYTES


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MiB (Linux: since the last reset_peak_rss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 1024
    except ImportError:  # Windows
        try:
            import psutil

            return psutil.Process().memory_info().peak_wset / 2**20
        except (ImportError, AttributeError):
            return None


def reset_peak_rss() -> None:
    """Linux: start a new peak-memory measurement for this process (elsewhere the peak is the process's)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
