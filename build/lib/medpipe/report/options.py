"""Report options (preset ``report: {...}`` or ``true``), declared as data like every other part's."""
from __future__ import annotations

from typing import Any

from ..errors import PresetError
from ..options import Option, on_off

REPORT_OPTIONS: dict[str, Option] = {
    "reference": Option(str, None, "curve BD-rates are measured against: a row label, a curve name or a codec name "
                                   "(default: the first swept curve)"),
    "rate": Option(str, "bpv", "rate axis of rate-distortion figures: bits per voxel or compression ratio",
                   ("bpv", "cr")),
    "heatmaps": Option(bool, True, "draw |error| and local SSIM heatmaps from the slices the run kept"),
    "slices": Option((list, int, str), "middle", "slice indices for heatmaps, or 'middle'", item=int),
    "heatmap_volumes": Option((list, int), 1, "volume names, or how many volumes (the first N), that get heatmaps",
                              item=str),
    "heatmap_labels": Option(list, None, "configurations (row labels) shown in heatmaps (default: a spread of the "
                                         "lossy rows)", item=str),
    "heatmap_max": Option(int, 6, "at most this many lossy configurations in heatmaps (one page)", range=(1, 60)),
    "clinical_limits": Option(str, None, "YAML file of maximum compression ratios (default: the one shipped in "
                                         "medpipe/report/clinical_limits.yaml)"),
    "regions": Option(dict, {}, "limit rule id per volume name ('*': every volume) when BodyPartExamined is "
                                "missing or wrong, e.g. {'*': ct_head}"),
    "flagged_csv": Option(bool, True, "write results_flagged.csv with the clinical columns"),
    "folder": Option(str, "report", "sub-folder of the results folder for the report"),
    "dpi": Option(int, 110, "figure resolution in dots per inch", range=(30, 600)),
}


def check_options(options: Any, where: str = "report") -> dict | None:
    """``true`` / ``{...}`` -> the full options dict; ``false`` -> None (off)."""
    opts = on_off(options, REPORT_OPTIONS, where)
    if opts is None:
        return None
    sl = opts["slices"]
    if isinstance(sl, str) and sl != "middle":
        raise PresetError(f"{where}.slices: {sl!r}: give slice indices, e.g. [10, 14], or 'middle'")
    if isinstance(opts["heatmap_volumes"], int) and opts["heatmap_volumes"] < 0:
        raise PresetError(f"{where}.heatmap_volumes: expected a count >= 0 or a list of volume names")
    return opts
