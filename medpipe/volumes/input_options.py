"""The input options as data (one schema, checked by medpipe.options like every other section of a preset)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError, PresetError, described
from ..options import Option, check_section

INPUT_OPTIONS: dict[str, Option] = {
    "color": Option(str, "gray", "colour images: 'gray' (BT.601 luma, as the thesis) or 'components' (each colour "
                    "component coded as its own grey plane)", choices=("gray", "components")),
    # Off by default, by measurement: on every damaged dev codestream tried, the second decoder gave the same wrong
    # values as the first (the header and series checks caught them), while all dev data loaded 2.4x slower with
    # it (18.1 s vs 7.6 s, bench/load_inputs.py); it guards against a decoder bug, not against damage.
    "cross_check": Option(bool, False, "decode compressed lossless DICOM a second time with an independent decoder "
                          "(imagecodecs) when installed, and treat a disagreement as damage"),
    "on_damage": Option(str, "refuse_series", "a slice that cannot be read, decodes to values its header or its "
                        "series rule out, or that two decoders disagree on: 'refuse_series' leaves its whole "
                        "series out, 'drop_slice' processes the series without it (said so)",
                        choices=("refuse_series", "drop_slice")),
    "duplicate_tolerance": Option(float, 0.1, "two slice positions closer than this fraction of the slice spacing "
                                  "are the same slice", range=(0.0, 0.5)),
    "damage_check": Option(bool, True, "check each decoded slice against its series (values far outside its "
                           "neighbours' range, rows of decoder noise)"),
    "max_picture_megapixels": Option(float, 256.0, "largest picture (TIFF/SVS level 0, PNG, JPEG) read, in "
                                     "millions of samples; a whole-slide image beyond it is refused with one line",
                                     range=(1.0, None)),
    "pacs": Option(dict, None, "how PACS addresses among the inputs are read (the preset's 'pacs:' key: aet, port, "
                   "requests, timeout, retries, insecure, cache)"),
}


def input_settings(options: dict | None) -> dict:
    """``options`` (a plain dict, possibly partial or None) with every input option filled from its default.

    The preset loader checks a preset's keys against :data:`INPUT_OPTIONS` itself; here a caller's dict gets the
    same check, so a typo in code fails as loudly as one in a preset.
    """
    return check_section(dict(options or {}), INPUT_OPTIONS, "inputs")


def read_json_sidecar(side: Path, schema: dict[str, Option], must_be: str) -> dict:
    """A JSON sidecar's keys, each checked against ``schema``; InputError naming the file (and the key), ending in
    ``must_be`` (what the file should be) where the file itself is unusable."""
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except RecursionError:  # JSON nested thousands deep: the parser recurses once a level
        raise InputError(f"{side}: nested too deeply; {must_be}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: unreadable sidecar ({described(exc)}); {must_be}") from None
    if not isinstance(meta, dict):  # checked here: the option checker would print the whole value
        raise InputError(f"{side}: a JSON {type(meta).__name__}, not an object of keys; {must_be}")
    try:
        return check_section(meta, schema, str(side), fill=False)
    except PresetError as exc:
        raise InputError(str(exc)) from None
