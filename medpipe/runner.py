"""A preset run: check the outputs can be written, load volumes, run every cell with progress, write and show
results, keep the heatmap slices, write the report (and DICOM output): the matrix hands each finished cell to the
DICOM sink and to the heatmaps' :class:`KeptSlices` here, at the client."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .codecs import CodecContext
from .errors import MedpipeError
from .files import check_writable, clean_stale, make_dirs

from .matrix import (CODEC_THREADS, STAGE_DIR, STORE, CellSettings, Outcome, default_jobs, find_resume_folder,
                     peak_rss_mb, render_table, run_matrix, timing_note)
from .preset import Preset
from .report import build_report, heatmap_plan
from .report.heatmaps import MIDDLE
from .results import METRICS_NOTE, TIMING_NOTE, machine, run_folder, write_results, write_slices
from .volumes import dump_png, load_inputs


def check_codecs(preset: Preset, ctx: CodecContext, console) -> None:
    """Say before the matrix starts which configurations cannot run here, and why (ffmpeg checked once)."""
    for spec in preset.codecs:
        try:
            spec.codec.check(ctx)
        except MedpipeError as exc:
            console.print(f"[yellow]{spec.label}: {exc}[/] (row will be skipped)")


def list_volumes(volumes: list, console) -> None:
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


def provenance(preset: Preset, ctx: CodecContext, started: datetime, outcome: Outcome) -> dict:
    ff = ctx.ffmpeg_used
    commands = list(dict.fromkeys([*outcome.commands, *ctx.commands]))
    return {
        "tool": "medpipe", "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **machine(),
        "ffmpeg": {"binary": ff.exe, "version": ff.version, "commands": commands} if ff or commands else None,
        "timing": f"{TIMING_NOTE} Parallel runs: {timing_note(outcome)}.", "repeat": preset.matrix["repeat"],
        "metrics": METRICS_NOTE, "codec_prepare_ms": prepare_times(outcome.rows),
        "preset": {"path": str(preset.path) if preset.path else None, "as_run": preset.raw},
        "parallel": {"executor": outcome.executor, "jobs": outcome.jobs, "codec_threads": CODEC_THREADS,
                     "cells": len(outcome.rows), "from_store": outcome.from_store, "ran": outcome.ran,
                     "shared": outcome.shared, "wall_s": round(outcome.wall_seconds, 3),
                     "cells_s": round(outcome.cell_seconds, 3), "peak_cell_rss_mb": outcome.peak_rss_mb,
                     "client_peak_rss_mb": peak_rss_mb() if outcome.jobs > 1 else None, "store": STORE,
                     "timings": timing_note(outcome)},
    }


def prepare_times(rows: list) -> dict:
    """Each codec's one-time preparation (JIT compile or cache load), the largest any worker reported: it is
    kept out of encode_ms, so it is stated here once."""
    out: dict[str, float] = {}
    for row in rows:
        ms = row.get("prepare_ms") or 0.0
        if ms > 0:
            out[row["codec"]] = round(max(ms, out.get(row["codec"], 0.0)), 1)
    return out


def keep_plan(preset: Preset, volumes: list) -> dict[str, tuple[int, ...]]:
    """Slices each volume's lossy cells keep for the report's heatmaps (the middle one resolved per volume)."""
    plan = heatmap_plan(preset.report, [v.name for v in volumes])
    shapes = {v.name: v.shape[0] for v in volumes}
    out = {}
    for name, idx in plan.items():
        n = shapes[name]
        out[name] = tuple(sorted({n // 2 if i == MIDDLE else i % n for i in idx if i == MIDDLE or -n <= i < n}))
    return out


class KeptSlices:
    """A matrix sink: the restored slices lossy cells keep for the report's heatmaps, by (volume name, label)."""

    needs_streams = False

    def __init__(self):
        self.slices: dict[tuple[str, str], dict] = {}  # (volume name, label) -> {slice index: restored slice}

    def __call__(self, volume, spec, result) -> None:
        if result.kept:
            self.slices[(volume.name, spec.label)] = result.kept


def save_kept(folder: Path, volumes: list, keep: dict, kept: KeptSlices) -> None:
    by_name = {v.name: v for v in volumes}
    entries, facts = [], {}
    for name, idx in keep.items():
        vol = by_name[name]
        facts[name] = {"shape": list(vol.shape), "modality": vol.modality, "rescale_slope": vol.rescale_slope,
                       "value_min": vol.value_range[0], "span_bits": vol.span_bits, "slices": list(idx)}
        entries += [(name, None, k, np.asarray(vol.pixels[k])) for k in idx]
    for (name, label), slices in kept.slices.items():
        entries += [(name, label, k, arr) for k, arr in slices.items()]
    if facts:
        write_slices(folder, facts, entries)


def results_folder(preset: Preset, output: Path, started, resume: bool, volumes, console) -> Path:
    """The run's results folder: with ``resume`` the newest of this preset name (medpipe/matrix/store.py), else a
    new one; the inputs dumped as PNG there when the preset asks."""
    folder = None
    if resume:
        folder = find_resume_folder(output, preset.name)
        console.print(f"resuming {folder}" if folder else f"--resume: no earlier '{preset.name}' run under "
                      f"{output}; starting a new one", highlight=False)
    folder = make_dirs(folder or run_folder(output, preset.name, started))
    if preset.dump_png:
        for vol in volumes:
            base = folder if preset.dump_png is True else Path(str(preset.dump_png))
            dump_png(vol, base / "png" / vol.name)
    return folder


def run_preset(preset: Preset, console, *, input_override: Path | None = None, out: Path | None = None,
               ffmpeg: str | None = None, jobs: int | None = None, resume: bool = False,
               scheduler: str | None = None, send: str | None = None) -> int:
    """Run a preset; returns the exit code (0 all ok or skipped, 1 a row or input failed; sending to a DICOM node
    is reported, not counted: see medpipe.dicom.deliver)."""
    if preset.archive is not None:  # an archive preset (medpipe/archive/presets.py)
        from .archive.presets import run_archive_preset

        return run_archive_preset(preset, console, input_override=input_override, out=out, ffmpeg=ffmpeg)
    started = datetime.now(timezone.utc)
    m = preset.matrix
    jobs = jobs if jobs is not None else m["jobs"] if m["jobs"] is not None else default_jobs()
    if jobs < 1:
        raise MedpipeError(f"--jobs / jobs: must be at least 1, got {jobs}")
    inputs = [input_override] if input_override else list(preset.inputs)
    if not inputs:
        raise MedpipeError("the preset names no input; add 'input:' or pass --input PATH")
    from .dicom.deliver import send_node, with_send_defaults

    node = send_node(send, preset.dicom_out)  # a malformed node is said before any work
    dicom_out = with_send_defaults(preset.dicom_out, node)
    output = Path(out or preset.output)
    check_writable(output)  # before any input is read: a read-only or full disk is said at once
    clean_stale(output)
    ctx = CodecContext(ffmpeg or preset.ffmpeg, threads=CODEC_THREADS, timeout_factor=float(m["ffmpeg_timeout"]))
    settings = CellSettings(repeat=m["repeat"], ssim=m["ssim"], fill_depth=m["fill_depth"],
                            codec_threads=CODEC_THREADS)
    check_codecs(preset, ctx, console)
    volumes, input_errors = load_inputs(inputs, console, preset.input_options)
    if not volumes:
        raise MedpipeError("no input could be loaded: " + ("; ".join(input_errors) or "nothing found under "
                           + ", ".join(map(str, inputs))))
    list_volumes(volumes, console)
    folder = results_folder(preset, output, started, resume, volumes, console)
    sink = None
    if dicom_out:
        from .dicom.writer import DicomSink

        root = folder / dicom_out["folder"]
        console.print(f"DICOM output: {root}", highlight=False)
        sink = DicomSink.from_options(root, ctx, dicom_out, console)
    keep = keep_plan(preset, volumes)
    kept = KeptSlices()
    try:
        outcome = run_matrix(volumes, preset.codecs, ctx, settings, console, jobs=jobs, executor=m["executor"],
                             scheduler=scheduler or m["scheduler"], folder=folder,
                             sinks=[s for s in (sink, kept) if s is not None],
                             color=preset.input_options["color"],
                             session=started.isoformat(timespec="seconds"), keep=keep)
    finally:
        import shutil

        shutil.rmtree(folder / STAGE_DIR, ignore_errors=True)  # the workers' shared copies of the pixels
    rows = outcome.rows
    render_table(rows, console)
    prov = provenance(preset, ctx, started, outcome)
    if sink is not None:
        from .dicom.deliver import send_outputs, show_written

        prov["dicom"] = {"extra_series": sink.finish(volumes)}
        show_written(rows, prov["dicom"]["extra_series"], console)
        if node is not None:
            prov["dicom"]["send"] = send_outputs(node, rows, prov["dicom"]["extra_series"], dicom_out, console)
    write_results(folder, rows, [v.describe() for v in volumes], prov, [spec.describe() for spec in preset.codecs])
    save_kept(folder, volumes, keep, kept)
    if preset.report:
        build_report(folder, preset.report, console)
    failed = [r for r in rows if r["status"] == "failed"]
    console.print(f"results: [bold]{folder}[/] (results.csv, results.json)")
    if failed or input_errors:
        console.print(f"[bold red]{len(failed)} row(s) failed, {len(input_errors)} input(s) skipped[/]")
        return 1
    return 0
