"""The survey's outputs in its folder: survey.csv (one row per (modality, codec), modality ALL for the whole
archive), survey.json (the rows, the inventory summary, the strata, the sample, every measured series, the seed
and provenance), the HTML page with its figures, and the console table. Every file is written under a temporary
name and renamed."""
from __future__ import annotations

import json

from ..files import atomic_write_text
from ..results import _json_safe, machine, write_csv
from .table import COLUMNS, METHOD, render


def _clean(value):
    if isinstance(value, float):
        return _json_safe(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_outputs(folder, doc: dict, plan, console) -> None:
    from .page import write_page

    doc["provenance"] = {"machine": machine(), "method": METHOD, "codecs": [s.describe() for s in plan.specs],
                         "jobs": plan.jobs, "scheduler": plan.scheduler}
    write_csv(folder / "survey.csv", doc["rows"], COLUMNS)
    atomic_write_text(folder / "survey.json", json.dumps(_clean(doc), indent=1, default=str))
    write_page(folder, doc)
    render(doc["rows"], console)
    console.print(f"survey written to {folder} (survey.csv, survey.json, survey.html)", highlight=False,
                  markup=False)
