"""The codec matrix (floor 3): every (volume, codec configuration) cell through the one round trip, run in this
process, in worker processes or on Dask, with a result store behind ``--resume``.

- :mod:`.cell`: one cell -> one row (mapping, round trip, metrics, verdict) and its identity
- :mod:`.schedule`: planning, the executor loop, progress, rows in matrix order
- :mod:`.executors` / :mod:`.workers`: where cells run and how a volume reaches a worker
- :mod:`.store`: ``cells.jsonl``; :mod:`.resources`: jobs, memory; :mod:`.table`: the terminal table
"""
from __future__ import annotations

from pathlib import Path

from ..codecs import CodecContext
from ..options import Option
from .cell import CellResult, CellSettings, cell_id, measure_cell
from .resources import cap_jobs_for_memory, default_jobs, peak_rss_mb
from .schedule import Outcome, execute, plan_cells, timing_note
from .store import STORE, ResultStore, find_resume_folder
from .table import render_table
from .workers import CODEC_THREADS, STAGE_DIR

MATRIX_OPTIONS: dict[str, Option] = {
    "ssim": Option(bool, True, "compute SSIM (it costs more than PSNR)"),
    "repeat": Option(int, 1, "time each codec call this many times and keep the fastest", range=(1, 100)),
    "jobs": Option(int, None, "cells run in parallel (default: number of cores)", range=(1, 1024)),
    "executor": Option(str, "local", "where cells run", ("local", "dask")),
    "scheduler": Option(str, None, "dask scheduler address (default: start a LocalCluster)"),
    "fill_depth": Option(bool, True, "shift data narrower than a lossy video codec's depth up to fill it (exact, "
                                     "recorded), so one crf means one quantiser on every input; false codes the "
                                     "values as stored (measured: bench/codec_defaults.py)"),
    "ffmpeg_timeout": Option((int, float), 1.0, "factor on every ffmpeg call's time limit (derived from its work)",
                             range=(0.01, 1000)),
}


def run_matrix(volumes: list, specs, ctx: CodecContext, settings: CellSettings, console, *, jobs: int = 1,
               executor: str = "local", scheduler: str | None = None, folder: Path | None = None, sinks=(),
               color: str = "gray", session: str = "", keep: dict | None = None) -> Outcome:
    """Run every (volume, codec) cell: in this process (jobs 1), in a pool of ``jobs`` processes, or on Dask.
    With ``folder``, finished cells go to its result store at once and cells already there are not run again
    (--resume). Rows come back in matrix order. ``keep`` (volume name -> slice indices) asks lossy cells for
    restored slices (heatmaps). Each cell that runs is handed to every one of ``sinks`` at the client (see
    :func:`.schedule.execute`)."""
    cells = plan_cells(volumes, specs, ctx, keep)
    store = ResultStore(folder, settings.as_dict()) if folder else None
    if executor == "local" and not scheduler:
        jobs = cap_jobs_for_memory(jobs, [v.raw_bytes for v in volumes], console)
    return execute(cells, ctx, settings, console, jobs=jobs, executor="dask" if scheduler else executor,
                   scheduler=scheduler, store=store, folder=folder, sinks=sinks, color=color, session=session)


__all__ = ["CODEC_THREADS", "MATRIX_OPTIONS", "STAGE_DIR", "STORE", "CellResult", "CellSettings", "Outcome",
           "ResultStore", "cell_id", "default_jobs", "execute", "find_resume_folder", "measure_cell", "peak_rss_mb",
           "plan_cells", "render_table", "run_matrix", "timing_note"]
