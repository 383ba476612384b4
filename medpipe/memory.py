"""Memory a decode may take: what is free for this process, and one refusal for what would not fit.

A decoder knows the shape before it allocates; this says whether that shape fits in what is free, so a few bytes
claiming 4096 x 1024 x 1024 samples are refused with one line instead of ending in MemoryError (or the OOM killer).
"""
from __future__ import annotations

from pathlib import Path

from .errors import MedpipeError


class TooLarge(MedpipeError):
    """Decoding this would need more memory than is free here."""


def free_memory() -> int | None:
    """Bytes free for this run: the machine's available memory, or less when a cgroup (container, batch job) or an
    address-space limit (ulimit -v, prlimit --as) holds this process."""
    free, room = _machine_free(), _address_space_left()
    return room if free is None else free if room is None else min(free, room)


def _address_space_left() -> int | None:
    """Room under this process's address-space limit: past it every allocation fails (MemoryError) however much
    the machine has free. The limit minus the address space mapped now (VmSize)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (ImportError, OSError, ValueError, IndexError):  # not Linux / no /proc: the machine's figure only
        pass
    return None


def _machine_free() -> int | None:
    """The machine's available memory, or less when a cgroup limits this process (its limit minus its usage, page
    cache included: conservative)."""
    free = None
    try:
        import psutil

        free = psutil.virtual_memory().available
    except ImportError:
        pass
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return free
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            files = base / "memory.max", base / "memory.current"
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            files = base / "memory.limit_in_bytes", base / "memory.usage_in_bytes"
        else:
            continue
        try:
            limit = files[0].read_text().strip()
            if limit != "max" and int(limit) < 2**60:
                room = max(0, int(limit) - int(files[1].read_text()))
                free = room if free is None else min(free, room)
        except (OSError, ValueError):
            continue
    return free


def check_fits(need: int, what: str) -> None:
    """Raise TooLarge (one line naming ``what``) when ``need`` bytes exceed the memory free for this process."""
    free = free_memory()
    if free is not None and need > free:
        raise TooLarge(f"{what}: decoding needs {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB is free here; refused")
