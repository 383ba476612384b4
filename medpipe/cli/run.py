"""``medpipe PRESET [options]``: run a preset (the thesis matrix, DICOM output, report, or an archive)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..codecs import REGISTRY, CodecContext
from ..errors import MedpipeError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medpipe", description="medpipe: compress medical volumes with every codec "
                                "an archive could use, and measure what each saves and loses.",
                                epilog="subcommands: 'medpipe archive -h', 'medpipe report -h', 'medpipe codecs'")
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
    return p


def add_pacs_arguments(p: argparse.ArgumentParser) -> None:
    """How a PACS address is read; credentials never come from here (environment or netrc only)."""
    g = p.add_argument_group("PACS inputs (credentials: MEDPIPE_PACS_USER/MEDPIPE_PACS_PASSWORD, "
                             "MEDPIPE_PACS_TOKEN or netrc)")
    g.add_argument("--aet", help="medpipe's AE title towards a DIMSE peer (default MEDPIPE, or the preset's pacs.aet)")
    g.add_argument("--port", type=int, help="port of the storage SCP medpipe runs for C-MOVE when the peer refuses "
                   "C-GET (default 11112, or the preset's pacs.port)")
    g.add_argument("--pacs-requests", type=int, help="at most this many requests in flight to a PACS (default 4)")
    g.add_argument("--insecure", action="store_true", help="do not verify the PACS's TLS certificate")


def pacs_options(args, given: dict | None, output: Path) -> dict:
    """The preset's pacs: mapping with the command line's choices on top; the cache under the output folder."""
    out = dict(given or {})
    for key, value in (("aet", args.aet), ("port", args.port), ("requests", args.pacs_requests)):
        if value is not None:
            out[key] = value
    if args.insecure:
        out["insecure"] = True
    out.setdefault("cache", str(Path(output) / ".medpipe-cache"))
    return out


def input_arg(text: str | None):
    """--input as given: a PACS address stays text, anything else is a path."""
    from ..sources import is_address

    return None if text is None else text.strip() if is_address(text) else Path(text)


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


def main(argv: list[str], console) -> int:
    args = build_parser().parse_args(argv)
    if args.list_codecs:
        return list_codecs(console, args.ffmpeg)
    if args.preset is None:
        build_parser().print_usage()
        console.print("error: give a preset, e.g. medpipe presets/headct.yaml (or python run.py ...)")
        return 2
    from ..preset import load_preset
    from ..runner import run_preset

    preset = load_preset(args.preset)
    pacs = pacs_options(args, preset.input_options.get("pacs"), args.out or preset.output)
    preset = dataclasses.replace(preset, input_options={**preset.input_options, "pacs": pacs})
    return run_preset(preset, console, input_override=input_arg(args.input), out=args.out, ffmpeg=args.ffmpeg,
                      jobs=args.jobs, resume=args.resume, scheduler=args.scheduler, send=args.send)
