"""``medpipe report RESULTS_DIR [--reference X] [--slices N ...] [--no-heatmaps] [--limits FILE]``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..report import build_report, check_options
from ..report.load import load_results


HELP = "the report of a results folder, again, from the files alone"
DESCRIPTION = ("Figures, rate-distortion curves, BD-rates, heatmaps and clinical flags for a results folder (written "
               "to RESULTS_DIR/report).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, help="results folder of a run (holds results.json / results.csv)")
    p.add_argument("--reference", help="BD-rate reference: row label, curve name or codec name")
    p.add_argument("--no-heatmaps", action="store_true", help="skip heatmaps")
    p.add_argument("--limits", help="clinical limits YAML (default: medpipe/report/clinical_limits.yaml)")
    p.add_argument("--rate", choices=["bpv", "cr"], help="rate axis of RD figures")


def main(args: argparse.Namespace, console) -> int:
    results = load_results(args.results)
    as_run = (((results.provenance or {}).get("preset") or {}).get("as_run") or {}).get("report")
    options = dict(as_run) if isinstance(as_run, dict) else {}
    check_options(options, "report (preset as run)")
    for key, value in (("reference", args.reference), ("clinical_limits", args.limits), ("rate", args.rate)):
        if value is not None:
            options[key] = value
    if args.no_heatmaps:
        options["heatmaps"] = False
    build_report(args.results if args.results.is_dir() else args.results.parent, options, console)
    return 0
