#!/usr/bin/env python3
"""Two runs' results.csv compared row by row, timing columns left out: proof that a refactor changes no result.

    python bench/compare_results.py BEFORE/results.csv AFTER/results.csv

Rows are matched by (volume, label); every other column must be equal as text, except the timings (``*_ms``) and
the columns that name where or when a run happened (dicom_dir). Prints each difference and exits 1 when any.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

IGNORED = {"encode_ms", "decode_ms", "map_ms", "prepare_ms", "metrics_ms", "dicom_dir"}


def rows(path: Path) -> dict[tuple[str, str], dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {(r["volume"], r["label"]): r for r in csv.DictReader(fh)}


def differences(before: Path, after: Path) -> list[str]:
    a, b = rows(before), rows(after)
    out = [f"only before: {k}" for k in a.keys() - b.keys()] + [f"only after: {k}" for k in b.keys() - a.keys()]
    for key in sorted(a.keys() & b.keys()):
        for col in sorted((a[key].keys() | b[key].keys()) - IGNORED):
            if a[key].get(col) != b[key].get(col):
                out.append(f"{key} {col}: {a[key].get(col)!r} -> {b[key].get(col)!r}")
    return out


def main(argv: list[str]) -> int:
    before, after = (Path(p) for p in argv[1:3])
    diff = differences(before, after)
    n = len(rows(before))
    print(f"{n} rows before, {len(rows(after))} after; columns compared: all but {', '.join(sorted(IGNORED))}")
    print("\n".join(diff) if diff else "identical, row by row")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
