"""Command line (the top floor): one argparse parser with a subparser per command; each command's arguments and
work live in this package, one module each.

    medpipe [run] PRESET [options]    (python run.py PRESET, python -m medpipe PRESET): run a preset
    medpipe codecs                    (or --list-codecs): what is available here, what to install otherwise
    medpipe archive build|list|extract|verify ...
    medpipe report RESULTS_DIR ...
    medpipe survey SOURCE... [--sample F] ...   what re-encoding an archive would save (a sample, with intervals)

medpipe errors become one line and exit code 2; Ctrl-C exits 130; no traceback for what a user can fix.
"""
from __future__ import annotations

import sys

from .. import interrupt
from ..errors import MedpipeError

INTERRUPTED = "[yellow]interrupted[/] (temporary files removed; with a preset run, --resume continues)"

def make_console():
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped or logged: wide enough that the table does not fold
        console = Console(width=160)
    return console


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = make_console()
    interrupt.install()
    try:
        code = _dispatch(argv, console)
    except MedpipeError as exc:
        if interrupt.interrupted():  # a child's failure after Ctrl-C is the interrupt, not an error
            return _interrupted(console)
        from rich.markup import escape  # a message may hold '[...]' (file names, address syntax)

        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return _interrupted(console)
    except OSError as exc:  # a file-system fault no layer below turned into a message: still one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        console.print(f"[bold red]error:[/] {where}{exc.strerror or exc}; check the disk and the folder's "
                      "permissions, then run again", highlight=False, soft_wrap=True)
        return 2
    if interrupt.interrupted():  # SIGINT arrived but its KeyboardInterrupt was swallowed on the way up
        return _interrupted(console)
    return code


def _interrupted(console) -> int:
    interrupt.settled()
    console.print(INTERRUPTED)
    return 130


COMMANDS = ("run", "archive", "report", "survey", "codecs")


def build_parser():
    """One argparse parser, a subparser per command (each module adds its own arguments)."""
    import argparse

    from . import archive, report, run, survey

    p = argparse.ArgumentParser(prog="medpipe", description=run.DESCRIPTION,
                                epilog="'medpipe PRESET' is 'medpipe run PRESET'; 'medpipe COMMAND -h' for each")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in (("run", run), ("archive", archive), ("report", report), ("survey", survey)):
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION))
    c = sub.add_parser("codecs", help="which codecs are available here, and what to install otherwise")
    c.add_argument("ffmpeg", nargs="?", help="ffmpeg binary to check (default: as a run finds it)")
    return p


def _dispatch(argv: list[str], console) -> int:
    if not argv or argv[0] not in COMMANDS + ("-h", "--help"):
        argv = ["run", *argv]  # the default command: medpipe PRESET [options]
    args = build_parser().parse_args(argv)
    if args.command == "codecs":
        from .run import list_codecs

        return list_codecs(console, args.ffmpeg)
    from importlib import import_module

    return import_module(f".{args.command}", __name__).main(args, console)
