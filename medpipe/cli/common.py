"""What several subcommands share: how a PACS address is given and read (run, archive build, survey), and how a
codec entry is written on the command line (archive build --codec, survey --codecs)."""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ..errors import PresetError
from ..yamlsafe import load_text


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


def parse_codec_arg(text: str) -> dict:
    """``NAME[:key=value,...]`` (values parsed as YAML scalars: true, 22, slow) or a YAML flow mapping."""
    text = text.strip()
    if text.startswith("{"):
        entry = load_text(text, f"--codec {text!r}")
        if not isinstance(entry, dict) or "codec" not in entry:
            raise PresetError(f"--codec {text!r}: a mapping needs a 'codec' key, e.g. {{codec: x265, crf: 22}}")
        return entry
    name, _, rest = text.partition(":")
    entry: dict = {"codec": name}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise PresetError(f"--codec {text!r}: '{item}' is not key=value (e.g. x265:lossless=true,preset=slow)")
        entry[key.strip()] = yaml.safe_load(value)
    return entry
