"""Running the cells of a matrix: planning, the executor loop, progress, and collecting rows in matrix order.

A finished cell comes back typed (:class:`~medpipe.matrix.cell.CellResult`, inside the worker's
:class:`~medpipe.matrix.workers.Finished`) and is handed, at the client, to each sink the run gave: the DICOM writer
takes the streams and mapping, the heatmaps' collector the kept slices. Rows become dicts only for the result store
and for the run's results files (:attr:`Outcome.rows`).

Cells with the same identity (the same pixels under two names, a series exported twice) are computed once; every
volume still gets its own rows under its own name. Cells already in the result store are not run again.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..codecs import CodecContext, CodecSpec
from ..errors import MedpipeError, OutputError, described
from ..results import Row
from .cell import CellResult, CellSettings, cell_id, measure_cell, new_row
from .executors import DaskCluster, InProcess, LocalPool
from .store import ResultStore
from .workers import CODEC_THREADS, Finished, VolumeRef, make_task, shell_of, stage_volume

PLAIN_PROGRESS_EVERY_S = 30.0  # output going to a file or pipe: one plain line at most this often


@dataclass
class Cell:
    index: int  # position in the matrix (rows come out in this order)
    volume: object
    spec: CodecSpec
    cid: str | None  # None: the codec cannot run here; its 'skipped' row is made by the client
    cost: float = 0.0
    keep: tuple[int, ...] = ()  # slices whose restored values the report's heatmaps need


@dataclass
class Outcome:
    rows: list[dict]  # the results files' form of each Row, in matrix order
    from_store: int = 0
    ran: int = 0
    shared: int = 0  # cells answered by a cell of identical content
    failed: int = 0
    executor: str = "in-process"
    jobs: int = 1
    peak_rss_mb: float | None = None  # the largest peak of one cell (the process running it; ffmpeg apart)
    cell_seconds: float = 0.0
    wall_seconds: float = 0.0
    commands: list[str] = field(default_factory=list)


def plan_cells(volumes: list, specs, ctx: CodecContext, keep: dict | None = None) -> list[Cell]:
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
            cid = cell_id(vol.content_hash, spec, versions[i]) if versions[i] is not None else None
            cost = spec.codec.cost_per_voxel() * vol.pixels.size
            wanted = tuple((keep or {}).get(vol.name, ())) if not spec.codec.lossless else ()
            cells.append(Cell(len(cells), vol, spec, cid, cost, wanted))
    return cells


def failed_row(cell: Cell, reason: str) -> Row:
    """The row of a cell whose worker died (the codec never reported)."""
    return new_row(cell.volume, cell.spec).update(cell_id=cell.cid, status="failed", reason=reason)


def choose_executor(jobs: int, executor: str, scheduler: str | None, n_cells: int):
    if scheduler or executor == "dask":
        return DaskCluster(scheduler, jobs)
    jobs = max(1, min(jobs, n_cells))
    return InProcess() if jobs == 1 else LocalPool(jobs)


def execute(cells: list[Cell], ctx: CodecContext, settings: CellSettings, console, *, jobs: int = 1,
            executor: str = "local", scheduler: str | None = None, store: ResultStore | None = None,
            folder: Path | None = None, sinks=(), color: str = "gray", session: str = "") -> Outcome:
    """Run the cells not yet in ``store``; rows come back in matrix order, whatever order cells finish in. Each
    cell that runs is handed to every one of ``sinks``, ``sink(volume, spec, result: CellResult)``, at the client
    (a sink with ``needs_streams`` true has the verified streams sent back from the workers)."""
    t_start = time.perf_counter()
    rows: list[Row | None] = [None] * len(cells)
    done = store.done() if store else {}
    out = Outcome(rows=[])
    todo: list[Cell] = []
    twins: dict[str, list[Cell]] = {}  # cid -> later cells of identical content, answered by the first
    for cell in cells:
        rec = done.get(cell.cid) if cell.cid else None
        if rec is not None:
            rows[cell.index] = Row.from_dict(rec["row"]).update(volume=cell.volume.name, label=cell.spec.label)
            out.commands += rec.get("commands") or []
            out.from_store += 1
        elif cell.cid is None:  # codec unavailable here: the cell says why without touching the pixels
            rows[cell.index] = measure_cell(cell.volume, cell.spec, ctx, settings).row
        elif cell.cid in twins:
            twins[cell.cid].append(cell)
        else:
            twins[cell.cid] = []
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
        _loop(todo, ex, refs, ctx, settings, console, store, tuple(sinks), rows, out, session, twins)
    out.rows = [r.as_dict() for r in rows if r is not None]
    out.wall_seconds = time.perf_counter() - t_start
    return out


class _Progress:
    """Cells done / total, running, failed and time left: a live bar on a terminal, else one plain line at most
    every 30 s (a log file shows the run is alive)."""

    def __init__(self, console, total: int, done: int):
        self.console, self.total, self.done, self.failed = console, total, done, 0
        self.running: dict[int, str] = {}
        self.t0 = time.perf_counter()
        self.start_done = done
        self.last_plain = 0.0
        self.live = None
        if console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.live = Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("running {task.fields[running]} · failed {task.fields[failed]}"),
                                 TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[now]}", style="dim"),
                                 console=console, transient=True, speed_estimate_period=900)

    def __enter__(self):
        if self.live:
            self.live.__enter__()
            self.bar = self.live.add_task("cells", total=self.total, completed=self.done, running=0, failed=0,
                                          now="")
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)
        return False

    def left(self) -> str:
        ran = self.done - self.start_done
        if not ran:
            return "unknown"
        s = (time.perf_counter() - self.t0) / ran * (self.total - self.done)
        return f"{s / 60:.0f} min" if s >= 90 else f"{s:.0f} s"

    def update(self, advance: int = 0) -> None:
        self.done += advance
        if self.live:
            now = ", ".join(self.running.values())
            self.live.update(self.bar, advance=advance, running=len(self.running), failed=self.failed,
                             now=now if len(now) < 70 else now[:67] + "...")
            return
        t = time.perf_counter()
        if advance and (t - self.last_plain >= PLAIN_PROGRESS_EVERY_S or self.done == self.total):
            self.last_plain = t
            self.console.print(f"progress: {self.done}/{self.total} cells done, {self.failed} failed, "
                               f"{len(self.running)} running, time left {self.left()}", highlight=False)


def _loop(todo, ex, refs, ctx, settings, console, store, sinks, rows, out: Outcome, session: str, twins) -> None:
    queue = list(todo)
    want_streams = any(getattr(sink, "needs_streams", False) for sink in sinks)
    pending: dict = {}
    with _Progress(console, len(rows), len(rows) - len(todo) - sum(len(v) for v in twins.values())) as progress:
        try:
            while queue or pending:
                while queue and len(pending) < ex.slots:
                    cell = queue.pop(0)
                    progress.running[cell.index] = f"{cell.volume.name} · {cell.spec.label}"
                    progress.update()
                    ref = refs.get(cell.volume.content_hash)
                    task = make_task(cell.index, cell.spec, ref, cell.volume, ctx, settings, cell.keep,
                                     want_streams)
                    pending[ex.submit(task)] = cell
                finished, _ = ex.wait(pending)
                for fut in finished:
                    cell = pending.pop(fut)
                    progress.running.pop(cell.index, None)
                    n = _collect(cell, fut, sinks, store, rows, out, ex, session, twins.get(cell.cid, []))
                    progress.failed = out.failed
                    progress.update(n)
        except KeyboardInterrupt:
            stored = f"{store.path}" if store else "the result store"
            console.print(f"[yellow]interrupted: {out.ran} cell(s) finished in this run are in {stored}; "
                          "rerun with --resume to finish the rest[/]", highlight=False)
            raise


def _collect(cell: Cell, fut, sinks, store, rows, out: Outcome, ex, session: str, twins: list[Cell]) -> int:
    """File a finished cell (and its twins of identical content, each under its own name); returns cells done."""
    try:
        done: Finished = fut.result()
    except Exception as exc:  # noqa: BLE001 - the worker died or the task could not run: the cell failed
        kind = type(exc).__name__
        reason = (f"worker process died ({kind}: killed or out of memory?)" if "Broken" in kind or "Killed" in kind
                  else f"{kind}: {exc}")
        done = Finished(CellResult(failed_row(cell, reason)))
    for member in [cell, *twins]:
        res = replace(done.result, row=replace(done.result.row, volume=member.volume.name, label=member.spec.label))
        if member is not cell:
            res.row.reason = "; ".join(filter(None, [res.row.reason, f"same pixels as {cell.volume.name}: "
                                                     "computed once"]))
            out.shared += 1
        _hand_over(member, res, sinks)
        rows[member.index] = res.row
        out.failed += res.row.status == "failed"
    out.ran += 1
    out.cell_seconds += done.cell_s
    out.commands += done.commands
    if done.peak_rss_mb is not None:
        out.peak_rss_mb = max(out.peak_rss_mb or 0.0, done.peak_rss_mb)
    if store is not None and cell.cid:
        store.append({"cell_id": cell.cid, "volume": cell.volume.name, "label": cell.spec.label,
                      "settings": store.settings, "session": session, "executor": ex.name, "jobs": ex.slots,
                      "cell_s": round(done.cell_s, 4), "peak_rss_mb": done.peak_rss_mb, "pid": done.pid,
                      "commands": done.commands, "row": rows[cell.index].as_dict()})
    return 1 + len(twins)


def _hand_over(member: Cell, res: CellResult, sinks) -> None:
    """Give a finished cell to each sink at the client (workers never need the DICOM headers or the output
    folder); a sink's failure fails the row, except an OutputError (disk full / read-only), which stops the run:
    this cell is not stored, --resume redoes it."""
    for sink in sinks:
        try:
            sink(member.volume, member.spec, res)
        except OutputError:
            raise
        except Exception as exc:  # noqa: BLE001 - the codec's row stays; the output failure is said in it
            res.row.update(status="failed", reason=f"output: {exc}" if isinstance(exc, MedpipeError)
                           else f"output: {described(exc)}")


def timing_note(out: Outcome) -> str:
    if out.jobs > 1 and out.ran:
        return (f"taken under parallel load: up to {out.jobs} cells ran side by side ({out.executor}), each codec "
                f"call limited to {CODEC_THREADS} thread (ffmpeg -threads, x265 pools), so calls did not share a "
                "core but did share memory bandwidth and caches; run with --jobs 1 for timings taken alone")
    return f"cells ran one at a time, each codec call limited to {CODEC_THREADS} thread"
