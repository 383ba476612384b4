"""The worker side of a matrix run: how a cell reaches a worker process (or a Dask worker) and runs there.

How work reaches workers: the client writes each volume's pixels once to ``<results>/.volumes/<hash>.npy``;
workers map that file read-only (``numpy.load(mmap_mode="r")``), so N processes share one copy through the page
cache instead of each unpickling the volume. A worker that cannot see that file (a remote Dask worker) reads the
input files from their original paths instead and checks the content hash.

Thread budget: every codec call runs with one thread (``ffmpeg -threads 1``, x265 ``pools=1``, OpenCV 1 thread in
workers) whatever ``--jobs`` is, so the machine is never oversubscribed and the bitstreams -- hence sizes, CR,
PSNR, SSIM -- do not depend on ``--jobs``, the executor or the machine's core count.

A worker ends with its parent: a thread waits on the parent's sentinel (``multiprocessing.parent_process()``,
Linux and Windows alike) and exits the worker when the parent is gone, so a killed run leaves no workers behind.
"""
from __future__ import annotations

import copy
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import interrupt
from ..codecs import CodecContext
from ..errors import InputError
from ..files import atomic_file, make_dirs
from .cell import CellResult, CellSettings, measure_cell
from .resources import peak_rss_mb, reset_peak_rss

CODEC_THREADS = 1  # threads per codec call in a matrix run (see the module docstring)
STAGE_DIR = ".volumes"


@dataclass
class VolumeRef:
    """What a worker needs to get a volume: its metadata (pixels and headers left out) and where to read it."""

    shell: object  # a Volume without pixels or headers
    staged: str | None
    color: str = "gray"


def shell_of(volume):
    """A copy without pixels or DICOM headers (small to send), keeping the cached hash and value range."""
    volume.content_hash, volume.value_range  # compute now so the shell carries them
    shell = copy.copy(volume)
    shell.pixels = None
    shell.headers = []
    return shell


def stage_volume(volume, folder: Path) -> Path:
    """Write the pixels once as .npy beside the results, and let the client itself use the mapped copy."""
    stage = make_dirs(Path(folder) / STAGE_DIR)
    path = stage / f"{volume.content_hash[:24]}.npy"
    if not path.is_file():
        with atomic_file(path) as fh:
            np.save(fh, np.ascontiguousarray(volume.pixels))
    shell_of(volume)
    volume.pixels = np.load(path, mmap_mode="r")  # the client's copy is now the shared page-cache one
    return path


_VOLUMES: dict[str, object] = {}  # per worker process: content hash -> volume (2 kept; a mapped file costs no RAM)


def worker_volume(ref: VolumeRef):
    key = ref.shell.content_hash
    if key in _VOLUMES:
        return _VOLUMES[key]
    vol = copy.copy(ref.shell)
    if ref.staged and Path(ref.staged).is_file():
        vol.pixels = np.load(ref.staged, mmap_mode="r")
    else:
        vol.pixels = _read_input(ref).pixels
        fresh = copy.copy(vol)
        fresh.__dict__.pop("content_hash", None)
        if fresh.content_hash != key:
            raise InputError(f"{ref.shell.source}: this worker reads other pixels than the client did; every "
                             "worker must see the same input files at the same paths")
    while len(_VOLUMES) >= 2:
        _VOLUMES.pop(next(iter(_VOLUMES)))
    _VOLUMES[key] = vol
    return vol


def _read_input(ref: VolumeRef):
    """Read a volume from its input files (a worker that cannot see the staged copy): through the VolumeSource it
    was loaded from, so the worker reads it exactly as the client did."""
    from ..volumes import VolumeSource, load_volume

    origin = getattr(ref.shell, "origin", None)
    if isinstance(origin, VolumeSource):
        return origin.load()
    return load_volume(ref.shell.source, ref.shell.name, {"color": ref.color})


def _exit_with_parent() -> None:
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def wait():
        parent.join()  # returns when the parent's sentinel closes: the parent process is gone
        os._exit(3)

    threading.Thread(target=wait, daemon=True, name="medpipe-parent-watch").start()


def worker_init(threads: int = CODEC_THREADS) -> None:
    """In a worker process: keep in-process libraries to the thread budget, end with the parent, and unwind on
    SIGTERM so temporary folders are removed."""
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass
    _exit_with_parent()
    interrupt.install()
    if hasattr(signal, "SIGTERM") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_signal)


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds: context managers remove their temporary folders


_CTX: dict[tuple, CodecContext] = {}


@dataclass
class Finished:
    """A cell as its worker sends it back: the typed result and how it ran (ffmpeg commands, seconds, peak
    memory, process)."""

    result: CellResult
    commands: list = field(default_factory=list)
    cell_s: float = 0.0
    peak_rss_mb: float | None = None
    pid: int | None = None


def run_task(task: dict) -> Finished:
    """One cell in a worker (process pool, Dask worker, or the client itself for --jobs 1)."""
    key = (task["ffmpeg"], task["threads"], task["timeout_factor"])
    ctx = _CTX.get(key)
    if ctx is None:
        ctx = _CTX[key] = CodecContext(task["ffmpeg"], threads=task["threads"], timeout_factor=task["timeout_factor"])
    vol = task["volume_obj"] if task.get("volume_obj") is not None else worker_volume(task["volume"])
    logged = len(ctx.commands)
    reset_peak_rss()
    t0 = time.perf_counter()
    result = measure_cell(vol, task["spec"], ctx, task["settings"], keep=task["keep"])
    cell_s = time.perf_counter() - t0
    if not task["want_encoded"]:
        result.encoded = None  # no sink writes the streams: do not send them back
    return Finished(result, ctx.commands[logged:], cell_s, peak_rss_mb(), os.getpid())


def make_task(index: int, spec, ref: VolumeRef | None, volume, ctx: CodecContext, settings: CellSettings,
              keep: tuple[int, ...], want_encoded: bool) -> dict:
    return {"index": index, "spec": spec, "volume": ref, "volume_obj": None if ref else volume,
            "ffmpeg": ctx.ffmpeg_path, "threads": ctx.threads, "timeout_factor": ctx.timeout_factor,
            "settings": settings, "keep": keep, "want_encoded": want_encoded}
