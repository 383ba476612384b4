"""Reports from a results folder (floor 3): bar charts, rate-distortion curves, Bjøntegaard deltas, heatmaps,
clinical flags. Everything comes from the files a run wrote (results.json/csv and the slices it kept); the report
imports no codec.

Output, in ``<results>/report/``: ``report.html`` (self-contained, figures embedded), ``summary.md`` (links the
PNGs), ``figures/*.png``, ``figures.json`` (what each figure shows: size, panels) and ``results_flagged.csv``.

- :mod:`.options` the options schema; :mod:`.load` results and configurations; :mod:`.bd` Bjøntegaard deltas;
  :mod:`.clinical` limits and flags; :mod:`.figures` bars, RD curves, the lossless ratio/speed Pareto plot;
  :mod:`.heatmaps`; :mod:`.pages`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import MedpipeError
from ..files import atomic_write_text
from .bd import bd_table
from .clinical import beyond_counts, clinical_flags, load_limits
from .figures import Figures, bar_figure, pareto_figure, rd_figure, report_groups
from .heatmaps import heatmap_figures, heatmap_plan
from .load import families, load_results
from .options import REPORT_OPTIONS, check_options
from .pages import write_flagged_csv, write_pages


def build_report(results_folder: Path | str, options: Any = True, console=None) -> Path:
    """Write the report for a results folder; returns the path of report.html."""
    t0 = time.perf_counter()
    opts = check_options(options) or check_options(True)
    results = load_results(Path(results_folder))
    notes: list[str] = list(results.problems)  # malformed rows left out: said, the rest is reported
    if not results.rows and results.problems:
        more = f" (and {len(results.problems) - 1} more)" if len(results.problems) > 1 else ""
        raise MedpipeError(f"nothing to report: {results.problems[0]}{more}")
    if not results.rows:
        raise MedpipeError(f"{results_folder}: the results hold no rows; nothing to report")
    limits = load_limits(opts["clinical_limits"])
    out = results.folder / str(opts["folder"])
    figs = Figures(out / "figures", int(opts["dpi"]))
    for old in figs.folder.glob("*.png"):  # a report written again must not keep figures of the last one
        old.unlink()
    curves, of_label = families(results)
    flags = clinical_flags(results.rows, limits, opts["regions"])
    table, ref_key, bd_notes = bd_table(results, curves, of_label, opts["reference"])
    notes += bd_notes
    for vol in dict.fromkeys(r["volume"] for r in results.rows):
        vflags = [f for f, r in zip(flags, results.rows) if r["volume"] == vol and f["clinical_rule"]]
        vlimits = {s: float(vflags[0][f"max_cr_{s}"]) for s in limits.sources
                   if vflags and vflags[0].get(f"max_cr_{s}")}
        rd_figure(figs, results, vol, curves, opts["rate"], vlimits)
        pareto_figure(figs, results, vol)
    for title, name, vols in report_groups(results):
        bar_figure(figs, [r for r in results.rows if r["volume"] in vols], title, name)
    if opts["heatmaps"]:
        notes += heatmap_figures(figs, results, opts, console)
    else:
        notes.append("heatmaps: off (report.heatmaps: false)")
    if opts["flagged_csv"]:
        write_flagged_csv(out / "results_flagged.csv", results, flags)
    atomic_write_text(out / "figures.json", json.dumps(figs.items, indent=1))
    html_path, md_path = write_pages(out, results, opts, figs, flags, limits, table, ref_key, notes)
    if console is not None:
        for n in notes:
            console.print(f"[yellow]report:[/] {n}", highlight=False)
        console.print(f"report: [bold]{html_path}[/] ({len(figs.items)} figures, {md_path.name}; "
                      f"{beyond_counts(flags, limits).summary()}; {time.perf_counter() - t0:.0f} s)",
                      highlight=False)
    return html_path


__all__ = ["REPORT_OPTIONS", "build_report", "check_options", "heatmap_plan"]
