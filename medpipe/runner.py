"""A preset run: load volumes, check the codecs, run every cell with progress, write and show results."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .bench import Context, run_cell
from .errors import MedpipeError
from .preset import Preset
from .results import provenance, render_table, run_folder, write_results
from .inputs import load_inputs
from .volume import Volume, dump_png


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


def run_matrix(preset: Preset, volumes: list[Volume], ctx: Context, console, sink=None) -> list[dict]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    rows: list[dict] = []
    cells = [(v, s) for v in volumes for s in preset.codecs]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("cells", total=len(cells))
        for vol, spec in cells:
            progress.update(task, description=f"{vol.name} · {spec.label}")
            rows.append(run_cell(vol, spec, ctx, sink=sink))
            progress.advance(task)
    return rows


def run_preset(preset: Preset, console, *, input_override: Path | None = None, out: Path | None = None,
               ffmpeg: str | None = None, jobs: int | None = None, resume: bool = False,
               scheduler: str | None = None) -> int:
    """Run a preset; returns the exit code (0 all ok or skipped, 1 a row or input failed)."""
    if preset.archive:  # an intertwined-archive preset (thesis chapter 4)
        from .archive_cli import run_archive_preset

        return run_archive_preset(preset, console, input_override=input_override, out=out, ffmpeg=ffmpeg)
    started = datetime.now(timezone.utc)
    ctx = Context(ffmpeg_path=ffmpeg or preset.ffmpeg, repeat=preset.repeat, ssim=preset.ssim)
    inputs = [input_override] if input_override else list(preset.inputs)
    if not inputs:
        raise MedpipeError("the preset names no input; add 'input:' or pass --input PATH")
    check_codecs(preset, ctx, console)
    volumes, input_errors = load_inputs(inputs, console, preset.color)
    if not volumes:
        raise MedpipeError("no input could be loaded: " + "; ".join(input_errors))
    list_volumes(volumes, console)
    folder = run_folder(out or preset.output, preset.name, started)
    if preset.dump_png:
        for vol in volumes:
            base = folder if preset.dump_png is True else Path(str(preset.dump_png))
            dump_png(vol, base / "png" / vol.name)
    sink = None
    if preset.dicom_out:
        from .dicom_out import make_sink

        sink = make_sink(preset, folder, console)
    rows = run_matrix(preset, volumes, ctx, console, sink=sink)
    render_table(rows, console)
    write_results(folder, rows, [v.describe() for v in volumes], provenance(preset, ctx, started))
    if preset.report:
        from .report import build_report

        build_report(folder, preset.report, console)
    failed = [r for r in rows if r["status"] == "failed"]
    console.print(f"results: [bold]{folder}[/] (results.csv, results.json)")
    if failed or input_errors:
        console.print(f"[bold red]{len(failed)} row(s) failed, {len(input_errors)} input(s) skipped[/]")
        return 1
    return 0
