"""How honest are the survey's intervals? Many seeded samples of a fully measured archive, each projected as the
survey projects it, compared with the full figure.

    python bench/survey_coverage.py --survey results/dev-<stamp>   (a survey run with --sample 1)
    python bench/survey_coverage.py --run [DATA]                     (runs that survey first, JPEG-LS + HTJ2K;
                                                                     default: the dev data)
        [--seeds 400] [--out bench/measured/survey_coverage-<date>]

Every series is measured once (the full survey's measurements); each seed then draws a sample exactly as
``medpipe survey --sample F --seed S`` would and projects from the drawn series' measurements alone, so no series
is encoded again. Per design (sampling fraction or series per stratum, strata keys) it reports, over every
projected (modality, codec) figure (rows measured whole are left out: their interval is zero width and exact):
coverage = share of 95 % intervals of bytes after re-encoding that hold the full figure (goal >= 90 %), the same
for the saving, the median relative error of the point estimate and the median interval half-width.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import fields
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medpipe.files import atomic_write_text, make_dirs  # noqa: E402
from medpipe.results import write_csv  # noqa: E402
from medpipe.survey.inventory import SeriesInfo  # noqa: E402
from medpipe.survey.run import survey_rows  # noqa: E402
from medpipe.survey.sample import draw, strata  # noqa: E402

DESIGNS = [("fraction 0.3", 0.3, None), ("fraction 0.5", 0.5, None), ("2 per stratum", None, 2)]
STRATA = [("modality,syntax,bits", ("modality", "syntax", "bits")), ("modality", ("modality",))]
CODECS = "jpegls;htj2k"  # the fast lossless pair: the intervals' behaviour, not the codecs, is measured here
COLUMNS = ["design", "strata", "seeds", "projected_figures", "coverage_bytes", "coverage_saving",
           "coverage_all_rows", "median_error_pct", "p90_error_pct", "median_halfwidth_pct", "median_sampled_pct"]


def dev_data() -> Path:
    if os.environ.get("MEDPIPE_DEV_DATA"):
        return Path(os.environ["MEDPIPE_DEV_DATA"])
    return next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
                ROOT.parent / "shared" / "data")


def load_survey(folder: Path) -> tuple[list[SeriesInfo], dict, list[str]]:
    doc = json.loads((folder / "survey.json").read_text(encoding="utf-8"))
    names = {f.name for f in fields(SeriesInfo)}
    series = [SeriesInfo(**{k: v for k, v in s.items() if k in names}) for s in doc["series"]]
    measured = doc["measured"]
    missing = [s.series_uid for s in series if s.series_uid not in measured]
    if missing:
        raise SystemExit(f"{folder}: {len(missing)} of {len(series)} series not measured; run the survey with "
                         "--sample 1 (or --resume it) first")
    labels = [c["label"] for c in doc["provenance"]["codecs"]]
    if doc.get("lossy"):  # a --lossy survey: its lossy row is one more "codec" (each series' choice is its own)
        from medpipe.survey.lossy import open_guideline, with_lossy

        g = open_guideline(doc["lossy"]["guideline"], doc["lossy"]["limits_file"])
        measured, _ = with_lossy(g, measured, [c["label"] for c in doc["lossy"]["ladder"]])
        labels.append(g.label)
    return series, measured, labels


def run_full(data: Path, out: Path) -> Path:
    name = "coverage-full"
    cmd = [sys.executable, str(ROOT / "run.py"), "survey", str(data), "--sample", "1", "--out", str(out),
           "--name", name, "--codecs", CODECS]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return max(p for p in out.iterdir() if p.name.startswith(name))


def evaluate(series, measured, labels, fraction, per_stratum, keys, seeds: int) -> dict:
    groups = strata(series, keys)
    full = {(r["modality"], r["codec"]): r for r in survey_rows(series, groups, measured, labels)}
    hits = hits_saving = hits_all = n_all = 0
    errors, widths, sampled, n = [], [], [], 0
    for seed in range(seeds):
        picks = {u for uids in draw(groups, seed, fraction, per_stratum).values() for u in uids}
        rows = survey_rows(series, groups, {u: measured[u] for u in picks}, labels)
        sampled.append(len(picks) / len(series))
        for r in rows:
            if r["series_sampled"] >= r["series_total"]:
                continue  # measured whole: exact
            f = full[(r["modality"], r["codec"])]
            n += 1
            ok = r["ci_low"] <= f["bytes_projected"] <= r["ci_high"]
            hits += ok
            hits_saving += r["saving_low"] - 1e-12 <= f["saving"] <= r["saving_high"] + 1e-12
            if r["modality"] == "ALL":
                n_all += 1
                hits_all += ok
            errors.append(abs(r["bytes_projected"] / f["bytes_projected"] - 1))
            widths.append((r["ci_high"] - r["ci_low"]) / 2 / f["bytes_projected"])
    pct = (lambda x: round(100 * x, 2))
    return {"seeds": seeds, "projected_figures": n,
            "coverage_bytes": pct(hits / n) if n else None, "coverage_saving": pct(hits_saving / n) if n else None,
            "coverage_all_rows": pct(hits_all / n_all) if n_all else None,
            "median_error_pct": pct(statistics.median(errors)) if errors else None,
            "p90_error_pct": pct(sorted(errors)[int(0.9 * (len(errors) - 1))]) if errors else None,
            "median_halfwidth_pct": pct(statistics.median(widths)) if widths else None,
            "median_sampled_pct": pct(statistics.median(sampled))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--survey", type=Path, help="a survey folder measured with --sample 1")
    src.add_argument("--run", nargs="?", const=dev_data(), type=Path, metavar="DATA",
                     help="run the full survey of DATA first (default: the dev data, $MEDPIPE_DEV_DATA or "
                     "../shared/data)")
    ap.add_argument("--seeds", type=int, default=400)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "measured" / f"survey_coverage-{date.today()}")
    args = ap.parse_args()
    folder = args.survey or run_full(args.run, make_dirs(args.out / "full"))
    series, measured, labels = load_survey(folder)
    t0 = time.perf_counter()
    rows = []
    for design, fraction, per_stratum in DESIGNS:
        for keys_name, keys in STRATA:
            res = evaluate(series, measured, labels, fraction, per_stratum, keys, args.seeds)
            rows.append({"design": design, "strata": keys_name, **res})
            print(f"{design:14s} strata {keys_name:22s} coverage {res['coverage_bytes']}% (saving "
                  f"{res['coverage_saving']}%, ALL rows {res['coverage_all_rows']}%) over "
                  f"{res['projected_figures']} projected figures; median error {res['median_error_pct']}%, "
                  f"p90 {res['p90_error_pct']}%; median half-width {res['median_halfwidth_pct']}%; "
                  f"{res['median_sampled_pct']}% of series measured", flush=True)
    make_dirs(args.out)
    write_csv(args.out / "coverage.csv", rows, COLUMNS)
    atomic_write_text(args.out / "coverage.json", json.dumps({
        "survey": str(folder), "series": len(series), "codecs": labels, "seeds": args.seeds,
        "seconds": round(time.perf_counter() - t0, 1), "rows": rows}, indent=1))
    print(f"written: {args.out}/coverage.csv, coverage.json ({len(series)} series, {args.seeds} seeds per design)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
