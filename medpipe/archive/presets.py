"""An archive preset's run (``archive:`` in a preset): build the archive from the preset's inputs, and with
``compare: true`` code each multi-scan group intertwined and separately with the same codec (thesis figs
5.10-5.13) and write the comparison beside it. The runner (floor 4) hands such presets here."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ..codecs import CodecContext
from ..errors import MedpipeError
from ..files import check_writable, make_dirs
from ..results import run_folder, write_csv
from ..volumes import discover_inputs
from .build import build_archive
from .candidates import CANDIDATES
from .compare import COLUMNS, measure

STREAM_CANDIDATE = next(c for c in CANDIDATES if c.layout == "stream")  # x265 lossless: the thesis's stream


def archive_sources(inputs, console, options=None) -> tuple[list, list[str]]:
    """DICOM volumes found under ``inputs`` (folders are walked recursively: a PACS export), not yet loaded."""
    sources, errors = discover_inputs(list(inputs), console, options)
    dicom = [s for s in sources if s.kind == "dicom"]
    for s in sources:
        if s.kind != "dicom":
            msg = f"{s.label or s.name}: not DICOM ({s.kind}); an archive restores DICOM series, left out"
            errors.append(msg)
            console.print(f"skipped: {msg}", markup=False, highlight=False, style="yellow")
    return dicom, errors


def run_archive_preset(preset, console, *, input_override: Path | None = None, out: Path | None = None,
                       ffmpeg: str | None = None) -> int:
    """Build an archive from a preset's inputs into ``<output>/<name>-<stamp>/archive``; returns the exit code."""
    inputs = [input_override] if input_override else list(preset.inputs)
    if not inputs:
        raise MedpipeError("the preset names no input; add 'inputs:' (the series to archive) or pass --input")
    output = Path(out or preset.output)
    check_writable(output)
    started = datetime.now(timezone.utc)
    ctx = CodecContext(ffmpeg or preset.ffmpeg, timeout_factor=float(preset.matrix["ffmpeg_timeout"]))
    sources, errors = archive_sources(inputs, console, preset.input_options)
    if not sources:
        raise MedpipeError("no DICOM series could be found: " + ("; ".join(errors) or "nothing found"))
    folder = make_dirs(run_folder(output, preset.name, started))
    index = build_archive(sources, folder / "archive", preset.archive, ctx, console)
    if preset.archive.compare:
        compare_groups(sources, index, folder, ctx, console)
    console.print(f"archive: [bold]{folder / 'archive'}[/]")
    return 1 if errors else 0


def compare_groups(sources, index: dict, folder: Path, ctx, console) -> list[dict]:
    """Each multi-scan group of a built archive: one stream vs each scan apart, same codec settings."""
    from rich.table import Table

    settings = index["settings"]
    entry = dict(settings["codec"]) if settings["codec"].get("codec") != "auto" else dict(STREAM_CANDIDATE.codec)
    by_id = {s["id"]: src for s, src in zip(index["scans"], sources)}
    rows = []
    for g in index["groups"]:
        if len(g["scans"]) < 2:
            continue
        gv = [by_id[sid] if not hasattr(by_id[sid], "load") else by_id[sid].load() for sid in g["scans"]]
        for mode in ("separate", "intertwined"):
            r = measure(gv, entry, ctx, mode, settings["order"], harmonize=settings["harmonize"])
            r["group"] = g["id"]
            rows.append(r)
        rows[-1]["gain"] = rows[-2]["compressed_bytes"] / rows[-1]["compressed_bytes"]
        del gv
    if not rows:
        console.print("[yellow]compare: no group holds two or more scans; nothing to compare[/]")
        return rows
    write_csv(folder / "results.csv", rows, COLUMNS)
    t = Table(title=f"intertwined vs separate ({entry['codec']}, same settings)", title_justify="left")
    for c in ("group", "mode", "order", "bytes", "CR", "PSNR dB", "encode ms", "gain"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["group"], r["mode"], r["order"] or "-", f"{r['compressed_bytes']:,}", f"{r['cr']:.2f}",
                  "inf" if r["exact"] else f"{r['psnr_db']:.2f}", f"{r['encode_ms']:.0f}",
                  f"{r['gain']:.3f}" if r.get("gain") else "")
    console.print(t)
    return rows
