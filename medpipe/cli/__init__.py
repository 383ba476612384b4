"""Command line (the top floor): every subcommand's CLI lives in this package, one module each.

    medpipe PRESET [options]          (python run.py PRESET, python -m medpipe PRESET): run a preset
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


def _dispatch(argv: list[str], console) -> int:
    if argv and argv[0] == "archive":
        from .archive import main as archive_main

        return archive_main(argv[1:], console)
    if argv and argv[0] == "report":
        from .report import main as report_main

        return report_main(argv[1:], console)
    if argv and argv[0] == "survey":
        from .survey import main as survey_main

        return survey_main(argv[1:], console)
    if argv and argv[0] == "codecs":
        from .run import list_codecs

        return list_codecs(console, argv[1] if len(argv) > 1 else None)
    from .run import main as run_main

    return run_main(argv, console)
