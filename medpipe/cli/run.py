"""``medpipe PRESET [options]``: run a preset (the thesis matrix, DICOM output, report, or an archive)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..codecs import REGISTRY, CodecContext
from ..errors import MedpipeError
from .common import add_pacs_arguments, input_arg, pacs_options


HELP = "run a preset (the default: 'medpipe PRESET' is 'medpipe run PRESET')"
DESCRIPTION = "Compress medical volumes with every codec an archive could use, and measure what each saves and loses."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", nargs="?", type=Path, help="YAML preset (see presets/)")
    p.add_argument("--input", help="input to use instead of the preset's inputs: a path, or a PACS address "
                   "(http(s)://HOST:PORT/ROOT[/studies/UID[/series/UID]][?Key=value], "
                   "dicom://AET@HOST:PORT[/studies/UID[/series/UID]])")
    p.add_argument("--out", type=Path, help="folder for the results folder (default: the preset's output)")
    p.add_argument("--ffmpeg", help="ffmpeg binary (default: $MEDPIPE_FFMPEG, then the imageio-ffmpeg wheel's)")
    p.add_argument("--jobs", type=int, help="cells run in parallel (default: the preset's, else all cores)")
    p.add_argument("--resume", action="store_true", help="skip cells already in the output's result store (instances "
                   "retrieved from a PACS are never fetched again while their cached content checks out)")
    p.add_argument("--scheduler", help="run cells on this Dask scheduler (address)")
    p.add_argument("--send", metavar="AET@HOST:PORT", help="after the run, send the lossless DICOM series it wrote "
                   "to this DICOM node by C-STORE (turns DICOM output on; default: the preset's dicom_out.send)")
    add_pacs_arguments(p)
    p.add_argument("--list-codecs", action="store_true", help="show which codecs are available here")


def list_codecs(console, ffmpeg: str | None) -> int:
    from rich.table import Table

    ctx = CodecContext(ffmpeg)
    t = Table(title="codecs", title_justify="left")
    for col in ("codec", "family", "available", "what it is / what to install"):
        t.add_column(col, overflow="fold")
    for name, cls in sorted(REGISTRY.items()):
        try:
            codec = cls()
            codec.check(ctx)
            t.add_row(name, cls.family, "[green]yes[/]", f"{cls.description} [{codec.version(ctx)}]")
        except MedpipeError as exc:
            t.add_row(name, cls.family, "[red]no[/]", str(exc))
    console.print(t)
    return 0


def main(args: argparse.Namespace, console) -> int:
    if args.list_codecs:
        return list_codecs(console, args.ffmpeg)
    if args.preset is None:
        console.print("error: give a preset, e.g. medpipe presets/headct.yaml (or python run.py ...)")
        return 2
    from ..preset import load_preset
    from ..runner import run_preset

    preset = load_preset(args.preset)
    if preset.survey is not None:  # a survey preset (README "RQ1: surveying an archive")
        from .survey import run_preset_survey

        return run_preset_survey(preset, console, out=args.out, jobs=args.jobs, resume=args.resume,
                                 scheduler=args.scheduler, ffmpeg=args.ffmpeg, args=args)
    pacs = pacs_options(args, preset.input_options.get("pacs"), args.out or preset.output)
    preset = dataclasses.replace(preset, input_options={**preset.input_options, "pacs": pacs})
    return run_preset(preset, console, input_override=input_arg(args.input), out=args.out, ffmpeg=args.ffmpeg,
                      jobs=args.jobs, resume=args.resume, scheduler=args.scheduler, send=args.send)
