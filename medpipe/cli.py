"""Command line: ``run.py PRESET [options]``, ``run.py --list-codecs``, ``run.py archive ...``,
``run.py report RESULTS_DIR``. medpipe errors become one line and exit code 2; no traceback for what a user
can fix."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MedpipeError

SUBCOMMANDS = {"archive": "medpipe.archive_cli", "report": "medpipe.report"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py", description="medpipe: compress medical volumes with every codec "
                                "an archive could use, and measure what each saves and loses.",
                                epilog="subcommands: 'run.py archive -h', 'run.py report -h'")
    p.add_argument("preset", nargs="?", type=Path, help="YAML preset (see presets/)")
    p.add_argument("--input", type=Path, help="volume to use instead of the preset's inputs")
    p.add_argument("--out", type=Path, help="folder for the results folder (default: the preset's output)")
    p.add_argument("--ffmpeg", help="ffmpeg binary (default: $MEDPIPE_FFMPEG, then the imageio-ffmpeg wheel's)")
    p.add_argument("--jobs", type=int, help="cells run in parallel (default: the preset's, else all cores)")
    p.add_argument("--resume", action="store_true", help="skip cells already in the output's result store")
    p.add_argument("--scheduler", help="run cells on this Dask scheduler (address)")
    p.add_argument("--list-codecs", action="store_true", help="show which codecs are available here")
    return p


def list_codecs(console, ffmpeg: str | None) -> int:
    from rich.table import Table

    from .bench import Context
    from .codecs import REGISTRY

    ctx = Context(ffmpeg_path=ffmpeg)
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


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    if not console.is_terminal:  # piped or logged: wide enough that the table does not fold
        console = Console(width=160)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            import importlib

            return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
        args = build_parser().parse_args(argv)
        if args.list_codecs:
            return list_codecs(console, args.ffmpeg)
        if args.preset is None:
            build_parser().print_usage()
            console.print("error: give a preset, e.g. python run.py presets/headct.yaml")
            return 2
        from .preset import load_preset
        from .runner import run_preset

        preset = load_preset(args.preset)
        return run_preset(preset, console, input_override=args.input, out=args.out, ffmpeg=args.ffmpeg,
                          jobs=args.jobs, resume=args.resume, scheduler=args.scheduler)
    except MedpipeError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
