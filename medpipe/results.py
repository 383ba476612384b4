"""Results files (the schema other tools read) and the terminal table.

``results.csv``: one row per (volume, codec configuration), columns ``bench.COLUMNS``.
``results.json``: ``{"provenance": {...}, "volumes": [...], "rows": [...]}`` with the same rows.
Both are written to a temporary name and renamed when complete.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .bench import COLUMNS, TIMING_NOTE
from .files import atomic_write_bytes

LIBRARIES = ["medpipe", "numpy", "pydicom", "imagecodecs", "imageio-ffmpeg", "opencv-python-headless",
             "opencv-python", "pillow", "pillow-jpls", "pyjpegls", "pylibjpeg", "pylibjpeg-libjpeg",
             "pylibjpeg-openjpeg", "glymur", "rich", "pyyaml", "matplotlib", "dask", "distributed"]


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def provenance(preset, ctx, started: datetime) -> dict:
    ff = ctx._ffmpeg  # only if a video codec resolved it
    return {
        "tool": "medpipe", "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "libraries": library_versions(),
        "ffmpeg": {"binary": ff.exe, "version": ff.version, "commands": ff.log} if ff else None,
        "timing": TIMING_NOTE, "repeat": ctx.repeat,
        "metrics": "PSNR/SSIM peak 2^bits-1 with bits = span of the volume's stored values (max-min); SSIM: "
                   "Gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, 5-px border excluded, mean over slices",
        "preset": {"path": str(preset.path) if preset.path else None, "as_run": preset.raw},
    }


def _cell(v):
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        if math.isnan(v):
            return ""
        return f"{v:.6g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else v


def _json_safe(v):
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return None if math.isnan(v) else "inf"
    return v


def write_results(folder: Path, rows: list[dict], volumes: list[dict], prov: dict) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _cell(r.get(k)) for k in COLUMNS})
    csv_path, json_path = folder / "results.csv", folder / "results.json"
    atomic_write_text(csv_path, buf.getvalue())
    doc = {"provenance": prov, "volumes": volumes,
           "rows": [{k: _json_safe(r.get(k)) for k in COLUMNS} for r in rows]}
    atomic_write_text(json_path, json.dumps(doc, indent=1, default=str))
    return csv_path, json_path


def read_rows(path: Path) -> list[dict]:
    """Rows of a results.csv with numbers parsed back (for reports and tests)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            if v in ("true", "false"):
                r[k] = v == "true"
            elif v == "inf":
                r[k] = math.inf
            else:
                try:
                    r[k] = int(v) if v.lstrip("-").isdigit() else float(v) if v else None
                except ValueError:
                    pass
    return rows


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def render_table(rows: list[dict], console=None) -> None:
    """One rich table per volume; reasons (skips, failures, precision notes) as numbered notes below it."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    status_style = {"ok": "[green]ok[/]", "skipped": "[yellow]skipped[/]", "failed": "[bold red]FAILED[/]"}
    for volume in dict.fromkeys(r["volume"] for r in rows):
        vrows = [r for r in rows if r["volume"] == volume]
        first = vrows[0]
        t = Table(title=f"{volume}: {first['slices']} x {first['rows']} x {first['cols']}, values span "
                        f"{first['bits']} bits, {first['raw_bytes'] / 2**20:.1f} MiB stored", title_justify="left")
        t.add_column("codec / setting", no_wrap=True)
        for col in ("lossless", "bits", "CR", "bpv", "PSNR dB", "SSIM", "max err", "enc ms", "dec ms", "status"):
            t.add_column(col, justify="left" if col == "status" else "right", no_wrap=True)
        notes: list[str] = []
        for r in vrows:
            ok = r["status"] == "ok"
            status = status_style[r["status"]]
            if r["reason"]:
                notes.append(r["reason"])
                status += f" [dim]({len(notes)})[/]"
            lossless = ("[green]exact[/]" if r["exact"] else "[bold red]NOT EXACT[/]") if r["lossless"] else "no"
            t.add_row(
                r["label"], lossless if ok else "-",
                f"{r['codec_bits']}/{r['bits']}" if r["codec_bits"] else "-",
                _fmt(r["cr"], ".2f") if ok else "-", _fmt(r["bpv"], ".3f") if ok else "-",
                _fmt(r["psnr_db"], ".2f") if ok else "-", _fmt(r["ssim"], ".5f") if ok else "-",
                _fmt(r["max_abs_err"], "d") if ok else "-", _fmt(r["encode_ms"], ".0f") if ok else "-",
                _fmt(r["decode_ms"], ".0f") if ok else "-", status)
        console.print(t)
        for i, note in enumerate(notes, 1):
            console.print(f"  ({i}) {note}", highlight=False, soft_wrap=True)
    console.print("[dim]bits = codec input depth / bits the stored values span (PSNR and SSIM peak 2^bits-1). "
                  "lossless = configured lossless end to end, 'exact' verified bit-exact by this run. "
                  "CR = stored bytes / compressed bytes; bpv = bits per voxel. ms = codec call only.[/]")


def run_folder(output: Path, name: str, started: datetime) -> Path:
    stamp = started.astimezone().strftime("%Y%m%d-%H%M%S")
    folder = output / f"{name}-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = output / f"{name}-{stamp}-{n}"
    return folder
