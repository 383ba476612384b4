"""What the input checks cost: loading real series with and without the decoder cross-check and series check.

    python bench/load_inputs.py [PATH ...] [--repeat 3]

Default PATH: ../shared/data (every dev scan). For each setting it loads every input once per repeat in this
process and prints, per volume and in total, the best wall time (discovery + reading + decoding + checks), so
the cost of ``cross_check`` (a second decoder per compressed lossless frame) and ``damage_check`` (the series
check) can be weighed against loading alone. Timings on a shared machine are noisy: repeat and compare.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medpipe.volumes import discover_inputs, load_source  # noqa: E402

SETTINGS = {
    "no checks": {"cross_check": False, "damage_check": False},
    "series check": {"cross_check": False, "damage_check": True},
    "series + cross-check (default)": {"cross_check": True, "damage_check": True},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path, default=[ROOT.parent / "shared" / "data"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    best: dict[str, dict[str, float]] = {}
    sizes: dict[str, float] = {}
    sources, _ = discover_inputs(args.paths, None, SETTINGS["no checks"])
    for src in sources:  # warm the page cache, so the first setting does not pay the disk reads
        load_source(src, None, [])
    for label, options in SETTINGS.items():
        for _ in range(args.repeat):
            sources, errors = discover_inputs(args.paths, None, options)
            for src in sources:
                t0 = time.perf_counter()
                vol = load_source(src, None, [])
                took = time.perf_counter() - t0
                sizes[vol.name] = vol.raw_bytes / 2**20
                row = best.setdefault(vol.name, {})
                row[label] = min(row.get(label, float("inf")), took)
    labels = list(SETTINGS)
    print(f"{'volume':48s} {'MiB':>7s} " + " ".join(f"{lab[:30]:>31s}" for lab in labels))
    for name, row in sorted(best.items()):
        print(f"{name[:48]:48s} {sizes[name]:7.1f} " + " ".join(f"{row[lab]:29.2f} s" for lab in labels))
    totals = {lab: sum(row[lab] for row in best.values()) for lab in labels}
    print(f"{'total':48s} {sum(sizes.values()):7.1f} " + " ".join(f"{totals[lab]:29.2f} s" for lab in labels))
    base = totals[labels[0]]
    for lab in labels[1:]:
        print(f"{lab}: {totals[lab] / base:.2f} x the time of loading without checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
