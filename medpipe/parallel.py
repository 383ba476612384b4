"""Running the cells of a matrix side by side: a local process pool or a Dask cluster, a result store for
``--resume``, and the progress display.

A cell is one (volume, codec configuration); its identity is :func:`medpipe.bench.cell_id` (volume content hash +
canonical codec parameters + library version). That identity keys the result store, ``cells.jsonl`` in the
results folder: one JSON line per finished cell, appended and fsync'ed as soon as the cell is back, so a crash
loses at most the cells in flight. ``--resume`` continues the newest results folder of the same preset name and
runs only the cells without an ``ok``/``skipped`` record (failed cells run again).

How work reaches workers: the client writes each volume's pixels once to ``<results>/.volumes/<hash>.npy``;
workers map that file read-only (``numpy.load(mmap_mode="r")``), so N processes share one copy through the page
cache instead of each unpickling the volume. A worker that cannot see that file (a remote Dask worker) reads the
input files from their original paths instead and checks the content hash.

Thread budget: every codec call runs with one thread (``ffmpeg -threads 1``, x265 ``pools=1``, OpenCV 1 thread
in workers) whatever ``--jobs`` is, so the machine is never oversubscribed and the bitstreams -- hence sizes, CR,
PSNR, SSIM -- do not depend on ``--jobs``, the executor or the machine's core count (x264/x265 output does
depend on their thread count). Parallelism comes from running cells side by side. With ``--jobs`` > 1 the
timings are taken under that parallel load; provenance says so.
"""
from __future__ import annotations

import concurrent.futures as cf
import copy
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bench import COLUMNS, Context, cell_id, run_cell
from .errors import InputError, MedpipeError
from .preset import CodecSpec
from .volumes import Volume

CODEC_THREADS = 1  # threads per codec call in a matrix run (see the module docstring)
STORE = "cells.jsonl"
STAGE_DIR = ".volumes"

# Relative cost of a configuration per voxel, only used to start the longest cells first (so the last cell
# does not run alone while other cores idle). Measured on the shipped head CT, one thread; results never
# depend on it.
_PRESET_COST = {"ultrafast": 0.3, "superfast": 0.4, "veryfast": 0.6, "faster": 1, "fast": 1.2, "medium": 2,
                "slow": 4, "slower": 8, "veryslow": 14, "placebo": 30}
_CODEC_COST = {"png": 35, "png_opencv": 22, "jpeg2000": 9, "jpeg2000_glymur": 7, "jpegxl": 9, "ffv1": 1.5}


def cell_cost(volume: Volume, spec: CodecSpec) -> float:
    codec = spec.codec
    if codec.name in ("x264", "x265"):
        weight = _PRESET_COST.get(codec.p.get("preset"), 2) * (2.5 if codec.name == "x265" else 1)
        weight *= {"444": 1.5, "420": 1.2}.get(codec.p.get("chroma"), 1.0)
    else:
        weight = _CODEC_COST.get(codec.name, 2)
    return weight * float(np.prod(volume.shape))


# ---------------------------------------------------------------- cells and the result store

@dataclass
class Cell:
    index: int  # position in the matrix (rows come out in this order)
    volume: Volume
    spec: CodecSpec
    cid: str | None  # None: the codec cannot run here; its 'skipped' row is made by the client
    cost: float = 0.0


def plan_cells(volumes: list[Volume], specs, ctx: Context) -> list[Cell]:
    """Every (volume, codec configuration) with its identity (the codec's version is asked once per spec)."""
    versions: dict[int, str | None] = {}
    for i, spec in enumerate(specs):
        try:
            spec.codec.check(ctx)
            versions[i] = spec.codec.version(ctx)
        except MedpipeError:
            versions[i] = None
    cells = []
    for vol in volumes:
        for i, spec in enumerate(specs):
            cid = cell_id(vol, spec, versions[i]) if versions[i] is not None else None
            cells.append(Cell(len(cells), vol, spec, cid, cell_cost(vol, spec)))
    return cells


def run_settings(ctx: Context) -> dict:
    """What, besides the cell identity, changes a row: a stored row made with other settings is not reused."""
    return {"ssim": ctx.ssim, "repeat": ctx.repeat, "codec_threads": ctx.threads}


class ResultStore:
    """``cells.jsonl``: one JSON object per line, ``{"cell_id", "volume", "label", "settings", "session",
    "executor", "jobs", "peak_rss_mb", "cell_s", "commands", "row"}``. Appended by the client only, one write
    per line, flushed to disk before the next cell is counted done; a torn last line (a crash mid-write) is
    ignored on reading."""

    def __init__(self, folder: Path, settings: dict):
        self.path = Path(folder) / STORE
        self.settings = settings

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        with open(self.path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # the line being written when the run stopped
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("cell_id") and isinstance(rec.get("row"), dict):
                    out.append(rec)
        return out

    def done(self) -> dict[str, dict]:
        """cell_id -> the last record of each cell that needs no rerun (ok or skipped, same settings)."""
        out = {}
        for rec in self.records():
            if rec.get("settings") != self.settings:
                continue
            if rec["row"].get("status") in ("ok", "skipped"):
                out[rec["cell_id"]] = rec
            else:
                out.pop(rec["cell_id"], None)  # a later failure replaces an earlier success
        return out

    def append(self, record: dict) -> None:
        line = (json.dumps(record, default=str, allow_nan=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size:  # a torn last line (crash): this record starts anew
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        try:
            os.write(fd, line)  # one write of the whole line: O_APPEND never interleaves it
            os.fsync(fd)
        finally:
            os.close(fd)


def find_resume_folder(output: Path, name: str) -> Path | None:
    """The newest ``<output>/<name>-<YYYYmmdd-HHMMSS>[-n]`` folder holding a result store, or None."""
    pattern = re.compile(re.escape(name) + r"-(\d{8}-\d{6})(?:-(\d+))?$")
    found = []
    if Path(output).is_dir():
        for p in Path(output).iterdir():
            m = pattern.match(p.name)
            if m and (p / STORE).is_file():
                found.append((m.group(1), int(m.group(2) or 1), p))
    return max(found)[2] if found else None


# ---------------------------------------------------------------- staging volumes for workers

@dataclass
class VolumeRef:
    """What a worker needs to get a volume: its metadata (pixels and headers left out) and where to read it."""

    shell: Volume
    staged: str | None
    color: str = "gray"


def shell_of(volume: Volume) -> Volume:
    """A copy without pixels or DICOM headers (small to send), keeping the cached hash and value range."""
    volume.content_hash, volume.value_range  # compute now so the shell carries them
    shell = copy.copy(volume)
    shell.pixels = None  # type: ignore[assignment]
    shell.headers = []
    return shell


def stage_volume(volume: Volume, folder: Path) -> Path:
    """Write the pixels once as .npy beside the results, and let the client itself use the mapped copy."""
    stage = Path(folder) / STAGE_DIR
    stage.mkdir(parents=True, exist_ok=True)
    path = stage / f"{volume.content_hash[:24]}.npy"
    if not path.is_file():
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(volume.pixels))
        os.replace(tmp, path)
    shell_of(volume)
    volume.pixels = np.load(path, mmap_mode="r")  # the client's copy is now the shared page-cache one
    return path


_VOLUMES: dict[str, Volume] = {}  # per worker process: content hash -> volume (2 kept; a mapped file costs no RAM)


def worker_volume(ref: VolumeRef) -> Volume:
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


def _read_input(ref: VolumeRef) -> Volume:
    """Read a volume from its input files (a worker that cannot see the staged copy): through the VolumeSource it
    was loaded from, so the worker reads it exactly as the client did."""
    from .volumes import VolumeSource, load_volume

    origin = getattr(ref.shell, "origin", None)
    if isinstance(origin, VolumeSource):
        return origin.load()
    return load_volume(ref.shell.source, ref.shell.name, {"color": ref.color})


# ---------------------------------------------------------------- the worker side

_CTX: dict[tuple, Context] = {}


def worker_init(threads: int = CODEC_THREADS) -> None:
    """In a worker process: keep in-process libraries to the thread budget too."""
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass


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


def run_task(task: dict) -> dict:
    """One cell in a worker (process pool, Dask worker, or the client itself for --jobs 1)."""
    key = (task["ffmpeg"], task["repeat"], task["ssim"], task["threads"])
    ctx = _CTX.get(key)
    if ctx is None:
        ctx = _CTX[key] = Context(ffmpeg_path=task["ffmpeg"], repeat=task["repeat"], ssim=task["ssim"],
                                  threads=task["threads"])
    vol = task["volume_obj"] if task.get("volume_obj") is not None else worker_volume(task["volume"])
    captured = []
    sink = (lambda v, s, dmap, enc, row: captured.append((dmap, enc))) if task["want_encoded"] else None
    logged = len(ctx._ffmpeg.log) if ctx._ffmpeg else 0
    reset_peak_rss()
    t0 = time.perf_counter()
    row = run_cell(vol, task["spec"], ctx, sink=sink)
    cell_s = time.perf_counter() - t0
    commands = ctx._ffmpeg.log[logged:] if ctx._ffmpeg else []
    return {"row": row, "encoded": captured[0] if captured else None, "commands": list(commands),
            "cell_s": cell_s, "peak_rss_mb": peak_rss_mb(), "pid": os.getpid()}


# ---------------------------------------------------------------- executors

class InProcess:
    """--jobs 1: cells run one after the other in this process (no staging, no pickling)."""

    name, slots = "in-process", 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, task: dict) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(run_task(task))
        except Exception as exc:  # noqa: BLE001 - reported as the cell's failure
            fut.set_exception(exc)
        return fut

    def wait(self, pending):
        return set(pending), set()


class LocalPool:
    """--jobs N: a pool of N worker processes (spawned: same behaviour on Linux, macOS and Windows)."""

    name = "local"

    def __init__(self, jobs: int):
        self.slots = jobs
        self.pool: cf.ProcessPoolExecutor | None = None

    def _start(self):
        import multiprocessing

        self.pool = cf.ProcessPoolExecutor(max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=worker_init)

    def __enter__(self):
        self._start()
        return self

    def __exit__(self, exc_type, *exc):
        self.close(now=exc_type is not None)
        return False

    def close(self, now: bool = False) -> None:
        if self.pool is None:
            return
        if now:  # interrupted: stop the cells in flight rather than wait for them
            for proc in list(getattr(self.pool, "_processes", {}).values()):
                proc.terminate()
        self.pool.shutdown(wait=not now, cancel_futures=True)
        self.pool = None

    def submit(self, task: dict):
        if self.pool is None:
            self._start()
        try:
            return self.pool.submit(run_task, task)
        except cf.process.BrokenProcessPool:  # a worker died (killed, out of memory): start a fresh pool
            self.close(now=True)
            self._start()
            return self.pool.submit(run_task, task)

    def wait(self, pending):
        return cf.wait(pending, return_when=cf.FIRST_COMPLETED)


class DaskCluster:
    """``executor: dask`` / ``--scheduler ADDRESS``: the same cells as tasks on a dask.distributed cluster.

    Without an address a LocalCluster of ``jobs`` single-threaded worker processes is started and closed again.
    """

    name = "dask"
    connect_timeout = "20s"  # an unreachable --scheduler fails after this

    def __init__(self, address: str | None, jobs: int, processes: bool = True):
        self.address, self.jobs, self.processes = address, jobs, processes
        self.client = self.cluster = None
        self.slots = jobs

    def __enter__(self):
        try:
            import logging

            from distributed import Client, LocalCluster
        except ImportError:
            raise MedpipeError("executor dask needs dask.distributed: pip install 'dask[distributed]'") from None
        try:
            if self.address:
                self.client = Client(self.address, timeout=self.connect_timeout)
            else:
                self.cluster = LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=self.processes,
                                            dashboard_address=":0", silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as exc:
            self.__exit__(None)
            where = f"the Dask scheduler at {self.address}" if self.address else "a Dask LocalCluster"
            raise MedpipeError(f"cannot reach {where} ({exc}); start one with 'dask scheduler' + 'dask worker "
                               "ADDRESS', or drop --scheduler / executor: dask") from None
        try:  # the thread budget in every worker; and a first task proves scheduler and workers know medpipe
            self.client.run(worker_init)
            self.client.submit(worker_init, pure=False).result(timeout=120)
        except Exception as exc:  # noqa: BLE001 - raised by the scheduler or the workers, any type
            self.__exit__(None)
            if isinstance(exc, TimeoutError):
                raise MedpipeError(f"no Dask worker ran a task within 120 s; are workers connected to "
                                   f"{self.address}? (dask worker {self.address})") from None
            hint = ("the scheduler and every worker need medpipe and its requirements installed (or PYTHONPATH set "
                    "to the medpipe checkout): Dask unpickles tasks on both" if "medpipe" in str(exc)
                    or "deserializ" in str(exc) else "check the scheduler's and workers' logs")
            raise MedpipeError(f"the Dask workers cannot run medpipe tasks ({type(exc).__name__}: {exc}); "
                               f"{hint}") from None
        self.slots = max(1, sum(self.client.nthreads().values()))
        return self

    def __exit__(self, *exc):
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing a cluster that is already gone
                    pass
        return False

    def describe(self) -> str:
        if self.cluster is not None:
            return f"Dask LocalCluster, {self.slots} worker(s)"
        return f"Dask scheduler {self.address}, {self.slots} worker thread(s)"

    def submit(self, task: dict):
        return self.client.submit(run_task, task, pure=False, key=f"medpipe-cell-{task['index']}-{time.time_ns()}")

    def wait(self, pending):
        from distributed import wait

        res = wait(list(pending), return_when="FIRST_COMPLETED")
        return set(res.done), set(res.not_done)


# ---------------------------------------------------------------- the loop

@dataclass
class Outcome:
    rows: list[dict]
    from_store: int = 0
    ran: int = 0
    failed: int = 0
    executor: str = "in-process"
    jobs: int = 1
    peak_rss_mb: float | None = None  # the largest peak of one cell (the process running it; ffmpeg apart)
    cell_seconds: float = 0.0
    wall_seconds: float = 0.0
    commands: list[str] = field(default_factory=list)


def failed_row(volume: Volume, spec: CodecSpec, cid: str | None, reason: str) -> dict:
    """The row of a cell whose worker died (the codec never reported)."""
    row = {c: None for c in COLUMNS}
    n, h, w = volume.shape
    row.update(volume=volume.name, codec=spec.codec.name, setting=spec.codec.setting(), label=spec.label,
               slices=n, rows=h, cols=w, raw_bytes=volume.raw_bytes, bits=volume.span_bits,
               modality=volume.modality, body_part=volume.body_part, volume_hash=volume.content_hash[:16],
               cell_id=cid, status="failed", reason=reason)
    return row


def choose_executor(jobs: int, executor: str, scheduler: str | None, n_cells: int):
    if scheduler or executor == "dask":
        return DaskCluster(scheduler, jobs)
    jobs = max(1, min(jobs, n_cells))
    return InProcess() if jobs == 1 else LocalPool(jobs)


def execute(cells: list[Cell], ctx: Context, console, *, jobs: int = 1, executor: str = "local",
            scheduler: str | None = None, store: ResultStore | None = None, folder: Path | None = None,
            sink=None, color: str = "gray", session: str = "") -> Outcome:
    """Run the cells not yet in ``store``; rows come back in matrix order, whatever order cells finish in."""
    t_start = time.perf_counter()
    rows: list[dict | None] = [None] * len(cells)
    done = store.done() if store else {}
    out = Outcome(rows=[])
    todo: list[Cell] = []
    for cell in cells:
        rec = done.get(cell.cid) if cell.cid else None
        if rec is not None:
            # same content under another name or label (identity is content + parameters): show this run's
            rows[cell.index] = {**rec["row"], "volume": cell.volume.name, "label": cell.spec.label}
            out.commands += rec.get("commands") or []
            out.from_store += 1
        elif cell.cid is None:  # codec unavailable here: run_cell says why without touching the pixels
            rows[cell.index] = run_cell(cell.volume, cell.spec, ctx)
        else:
            todo.append(cell)
    todo.sort(key=lambda c: -c.cost)  # longest first: the last cells to finish are short ones

    ex = choose_executor(jobs, executor, scheduler, len(todo)) if todo else InProcess()
    out.executor, out.jobs = ex.name, ex.slots
    with ex:
        out.jobs = ex.slots
        refs: dict[str, VolumeRef] = {}
        if not isinstance(ex, InProcess):
            for cell in todo:
                h = cell.volume.content_hash
                if h not in refs:
                    staged = stage_volume(cell.volume, folder) if folder else None
                    refs[h] = VolumeRef(shell_of(cell.volume), str(staged.resolve()) if staged else None, color)
        if todo:
            where = ex.describe() if hasattr(ex, "describe") else (
                f"{ex.slots} worker processes" if ex.slots > 1 else "one at a time")
            console.print(f"{len(todo)} cell(s) to run ({where}, {CODEC_THREADS} thread per codec call)"
                          + (f"; {out.from_store} already in {store.path}" if out.from_store else ""),
                          highlight=False)
        _loop(todo, ex, refs, ctx, console, store, sink, rows, out, session)
    out.rows = [r for r in rows if r is not None]
    out.wall_seconds = time.perf_counter() - t_start
    return out


def _task(cell: Cell, ref: VolumeRef | None, ctx: Context, want_encoded: bool) -> dict:
    return {"index": cell.index, "spec": cell.spec, "volume": ref, "volume_obj": None if ref else cell.volume,
            "ffmpeg": ctx.ffmpeg_path, "repeat": ctx.repeat, "ssim": ctx.ssim, "threads": ctx.threads,
            "want_encoded": want_encoded}


def _loop(todo, ex, refs, ctx, console, store, sink, rows, out: Outcome, session: str) -> None:
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    total = len(rows)
    queue = list(todo)
    pending: dict = {}
    running: dict[int, str] = {}
    with Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("running {task.fields[running]} · failed {task.fields[failed]}"),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                  TextColumn("{task.fields[now]}", style="dim"),
                  console=console, transient=True, speed_estimate_period=900) as progress:
        bar = progress.add_task("cells", total=total, completed=total - len(todo), running=0, failed=0, now="")

        def show():
            now = ", ".join(running.values())
            progress.update(bar, running=len(running), failed=out.failed,
                            now=now if len(now) < 70 else now[:67] + "...")

        try:
            while queue or pending:
                while queue and len(pending) < ex.slots:
                    cell = queue.pop(0)
                    running[cell.index] = f"{cell.volume.name} · {cell.spec.label}"
                    show()
                    ref = refs.get(cell.volume.content_hash)
                    pending[ex.submit(_task(cell, ref, ctx, sink is not None))] = cell
                finished, _ = ex.wait(pending)
                for fut in finished:
                    cell = pending.pop(fut)
                    running.pop(cell.index, None)
                    _collect(cell, fut, sink, store, rows, out, ex, session)
                    progress.advance(bar)
                    show()
        except KeyboardInterrupt:
            stored = f"{store.path}" if store else "the result store"
            console.print(f"[yellow]interrupted: {out.ran} cell(s) finished in this run are in {stored}; "
                          "rerun with --resume to finish the rest[/]", highlight=False)
            raise


def _collect(cell: Cell, fut, sink, store, rows, out: Outcome, ex, session: str) -> None:
    try:
        res = fut.result()
    except Exception as exc:  # noqa: BLE001 - the worker died or the task could not run: the cell failed
        kind = type(exc).__name__
        reason = (f"worker process died ({kind}: killed or out of memory?)" if "Broken" in kind or "Killed" in kind
                  else f"{kind}: {exc}")
        res = {"row": failed_row(cell.volume, cell.spec, cell.cid, reason), "encoded": None, "commands": [],
               "cell_s": 0.0, "peak_rss_mb": None}
    row = res["row"]
    if sink is not None and res["encoded"] is not None and row["status"] == "ok":
        dmap, enc = res["encoded"]
        try:  # the client writes outputs: workers never need the DICOM headers or the output folder
            sink(cell.volume, cell.spec, dmap, enc, row)
        except Exception as exc:  # noqa: BLE001 - as run_cell does for a sink inside it
            row.update(status="failed", reason=f"output: {exc}" if isinstance(exc, MedpipeError)
                       else f"output: {type(exc).__name__}: {exc}")
    rows[cell.index] = row
    out.ran += 1
    out.failed += row["status"] == "failed"
    out.cell_seconds += res["cell_s"]
    out.commands += res["commands"]
    if res.get("peak_rss_mb") is not None:
        out.peak_rss_mb = max(out.peak_rss_mb or 0.0, res["peak_rss_mb"])
    if store is not None and cell.cid:
        store.append({"cell_id": cell.cid, "volume": cell.volume.name, "label": cell.spec.label,
                      "settings": store.settings, "session": session, "executor": ex.name, "jobs": ex.slots,
                      "cell_s": round(res["cell_s"], 4), "peak_rss_mb": res.get("peak_rss_mb"),
                      "pid": res.get("pid"),
                      "commands": res["commands"], "row": row})


def timing_note(out: Outcome) -> str:
    if out.jobs > 1 and out.ran:
        return (f"taken under parallel load: up to {out.jobs} cells ran side by side ({out.executor}), each codec "
                f"call limited to {CODEC_THREADS} thread (ffmpeg -threads, x265 pools), so calls did not share a "
                "core but did share memory bandwidth and caches; run with --jobs 1 for timings taken alone")
    return f"cells ran one at a time, each codec call limited to {CODEC_THREADS} thread"


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def cap_jobs_for_memory(jobs: int, volumes: list[Volume], console) -> int:
    """Fewer parallel cells when N of them would not fit in the free memory (a cell needs ~k x its volume)."""
    if jobs <= 1 or not volumes:
        return jobs
    free = free_memory()
    if free is None:
        return jobs
    need = max(cell_memory(v.raw_bytes) for v in volumes)
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


def free_memory() -> int | None:
    """Bytes free for this run: the machine's available memory, or less when a cgroup (container, batch job)
    limits this process (its limit minus its usage, page cache included: conservative)."""
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
