"""A preset run: load volumes, check the codecs, run every cell with progress, write and show results."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from .bench import Context
from .errors import MedpipeError
from .preset import Preset
from .results import provenance, render_table, run_folder, write_results
from .parallel import (CODEC_THREADS, STAGE_DIR, STORE, Outcome, ResultStore, cap_jobs_for_memory, default_jobs,
                       execute, find_resume_folder, peak_rss_mb, plan_cells, run_settings, timing_note)
from .volumes import Volume, dump_png, load_inputs


def check_codecs(preset: Preset, ctx: Context, console) -> None:
    """Say before the matrix starts which configurations cannot run here, and why (ffmpeg checked once)."""
    for spec in preset.codecs:
        try:
            spec.codec.check(ctx)
        except MedpipeError as exc:
            console.print(f"[yellow]{spec.label}: {exc}[/] (row will be skipped)")


def list_volumes(volumes: list[Volume], console) -> None:
    from rich.table import Table

    t = Table(title="volumes", title_justify="left")
    for col in ("volume", "patient", "modality", "description", "slices x rows x cols", "dtype", "stored bits",
                "value range", "MiB"):
        t.add_column(col)
    for v in volumes:
        lo, hi = v.value_range
        t.add_row(v.name, v.patient_hash or "-", v.modality or "-", v.description or "-",
                  " x ".join(map(str, v.shape)), str(v.pixels.dtype), str(v.bits_stored), f"{lo}..{hi}",
                  f"{v.raw_bytes / 2**20:.1f}")
    console.print(t)


def run_matrix(preset: Preset, volumes: list[Volume], ctx: Context, console, sink=None, *, jobs: int = 1,
               scheduler: str | None = None, folder: Path | None = None, session: str = "") -> Outcome:
    """Run every (volume, codec) cell: in this process (jobs 1), in a pool of ``jobs`` processes, or on Dask
    (``executor: dask`` / ``scheduler``). With ``folder``, finished cells go to its result store at once and
    cells already there are not run again (--resume). Rows come back in matrix order."""
    cells = plan_cells(volumes, preset.codecs, ctx)
    store = ResultStore(folder, run_settings(ctx)) if folder else None
    address = scheduler or preset.scheduler
    executor = "dask" if address else preset.executor
    if executor == "local":
        jobs = cap_jobs_for_memory(jobs, volumes, console)
    return execute(cells, ctx, console, jobs=jobs, executor=executor, scheduler=address, store=store,
                   folder=folder, sink=sink, color=preset.color, session=session)


def run_preset(preset: Preset, console, *, input_override: Path | None = None, out: Path | None = None,
               ffmpeg: str | None = None, jobs: int | None = None, resume: bool = False,
               scheduler: str | None = None) -> int:
    """Run a preset; returns the exit code (0 all ok or skipped, 1 a row or input failed)."""
    if preset.archive:  # an intertwined-archive preset (thesis chapter 4)
        from .archive_cli import run_archive_preset

        return run_archive_preset(preset, console, input_override=input_override, out=out, ffmpeg=ffmpeg)
    started = datetime.now(timezone.utc)
    jobs = jobs if jobs is not None else preset.jobs if preset.jobs is not None else default_jobs()
    if jobs < 1:
        raise MedpipeError(f"--jobs / jobs: must be at least 1, got {jobs}")
    ctx = Context(ffmpeg_path=ffmpeg or preset.ffmpeg, repeat=preset.repeat, ssim=preset.ssim,
                  threads=CODEC_THREADS)
    inputs = [input_override] if input_override else list(preset.inputs)
    if not inputs:
        raise MedpipeError("the preset names no input; add 'input:' or pass --input PATH")
    check_codecs(preset, ctx, console)
    volumes, input_errors = load_inputs(inputs, console, {"color": preset.color})
    if not volumes:
        raise MedpipeError("no input could be loaded: " + "; ".join(input_errors))
    list_volumes(volumes, console)
    folder = None
    if resume:  # continue the newest results folder of this preset name (see medpipe/parallel.py)
        folder = find_resume_folder(out or preset.output, preset.name)
        console.print(f"resuming {folder}" if folder else f"--resume: no earlier '{preset.name}' run under "
                      f"{out or preset.output}; starting a new one", highlight=False)
    folder = folder or run_folder(out or preset.output, preset.name, started)
    folder.mkdir(parents=True, exist_ok=True)
    if preset.dump_png:
        for vol in volumes:
            base = folder if preset.dump_png is True else Path(str(preset.dump_png))
            dump_png(vol, base / "png" / vol.name)
    sink = None
    if preset.dicom_out:
        from .dicom_out import make_sink

        sink = make_sink(preset, folder, console)
    try:
        outcome = run_matrix(preset, volumes, ctx, console, sink=sink, jobs=jobs, scheduler=scheduler,
                             folder=folder, session=started.isoformat(timespec="seconds"))
    finally:
        shutil.rmtree(folder / STAGE_DIR, ignore_errors=True)  # the workers' shared copies of the pixels
    rows = outcome.rows
    if outcome.commands:
        ctx.ffmpeg.log.extend(c for c in outcome.commands if c not in ctx.ffmpeg.log)
    render_table(rows, console)
    prov = provenance(preset, ctx, started)
    prov["timing"] = f"{prov.get('timing', '')} Parallel runs: {timing_note(outcome)}.".strip()
    prov["parallel"] = {
        "executor": outcome.executor, "jobs": outcome.jobs, "codec_threads": CODEC_THREADS,
        "cells": len(rows), "from_store": outcome.from_store, "ran": outcome.ran,
        "wall_s": round(outcome.wall_seconds, 3), "cells_s": round(outcome.cell_seconds, 3),
        "peak_cell_rss_mb": outcome.peak_rss_mb,
        "client_peak_rss_mb": peak_rss_mb() if outcome.jobs > 1 else None,
        "store": STORE, "timings": timing_note(outcome)}
    write_results(folder, rows, [v.describe() for v in volumes], prov)
    if preset.report:
        from .report import build_report

        build_report(folder, preset.report, console)
    failed = [r for r in rows if r["status"] == "failed"]
    console.print(f"results: [bold]{folder}[/] (results.csv, results.json)")
    if failed or input_errors:
        console.print(f"[bold red]{len(failed)} row(s) failed, {len(input_errors)} input(s) skipped[/]")
        return 1
    return 0
