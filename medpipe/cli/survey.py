"""``medpipe survey SOURCE... [--codecs LIST] [--sample F | --per-stratum N] [--seed S] [--out DIR] [--jobs N]
[--scheduler ADDR] [--resume]``: what re-encoding an archive would save (README "RQ1: surveying an archive").
A preset with a ``survey:`` section runs the same (``medpipe presets/survey.yaml``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..codecs import parse_codec
from ..errors import PresetError
from .common import add_pacs_arguments, pacs_options, parse_codec_arg


HELP = "what re-encoding an archive would save, projected from a sample with 95 %% intervals"
DESCRIPTION = ("Inventory an archive (metadata only), measure a seeded sample of its series with every codec "
               "(bit-exact, as DICOM files), and project what re-encoding everything would save, with 95 %% "
               "intervals.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", help="folder trees (a PACS export), DICOMweb URLs or DIMSE addresses")
    p.add_argument("--codecs", help="semicolon-separated codec entries as presets name them, e.g. "
                   "'jpegls;htj2k;jpegxl:effort=9' (default: JPEG-LS, HTJ2K, JPEG XL, lossless3d)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sample", type=float, help="fraction of each stratum's series to measure (default 0.1; 1: all)")
    g.add_argument("--per-stratum", type=int, help="series to measure per stratum")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--out", type=Path, default=Path("results"), help="folder for the survey folder")
    p.add_argument("--name", default="survey", help="name of the survey folder (default survey)")
    p.add_argument("--jobs", type=int, help="series measured in parallel (default: every core, as memory allows)")
    p.add_argument("--scheduler", help="measure series on this Dask scheduler (address)")
    p.add_argument("--resume", action="store_true", help="continue the newest survey of this name; measured "
                   "series are kept")
    p.add_argument("--strata", default="modality,syntax,bits", help="what makes a stratum (default "
                   "modality,syntax,bits)")
    p.add_argument("--ffmpeg", help="ffmpeg binary (video codecs only)")
    p.add_argument("--lossy", metavar="GUIDELINE", help="also rows for lossy settings within this clinical "
                   "guideline's limits (a source of the limits file, e.g. DRG or CAR), flagged lossy")
    p.add_argument("--limits", type=Path, help="clinical limits file for --lossy (default: the shipped "
                   "medpipe/report/clinical_limits.yaml)")
    p.add_argument("--lossy-codecs", help="the lossy settings tried per series, as --codecs (default: JPEG-LS "
                   "NEAR=1, 2; JPEG XL distance 0.1, 0.25, 0.5, 1, 2)")
    add_pacs_arguments(p)


def _say(console):
    return lambda text: console.print(str(text), highlight=False, markup=False)


def make_specs(entries, default=None, where: str = "codecs") -> tuple:
    from ..survey import DEFAULT_CODECS

    specs = tuple(parse_codec(e, f"{where}[{i}]") for i, e in enumerate(entries or default or DEFAULT_CODECS))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise PresetError(f"codec labels must be unique; repeated: {twice} (add 'label:' to tell them apart)")
    return specs


def strata_keys(value) -> tuple:
    from ..survey.sample import STRATA_KEYS

    keys = tuple(k.strip() for k in (value.split(",") if isinstance(value, str) else value) if k.strip())
    bad = [k for k in keys if k not in STRATA_KEYS] + ([] if keys else ["(none)"])
    if bad or "modality" not in keys:
        raise PresetError(f"strata {','.join(keys)}: use modality plus any of syntax, bits")
    return keys


def lossy_plan(guideline: str | None, limits, entries, lossless: tuple) -> dict:
    """SurveyPlan's lossy fields: the guideline (checked before any work: one line when it is not in the file)
    and its ladder of lossy settings."""
    from ..survey.lossy import DEFAULT_LADDER, open_guideline

    if not guideline:
        if entries or limits:
            raise PresetError("--lossy-codecs and --limits need --lossy GUIDELINE (e.g. --lossy DRG)")
        return {}
    specs = make_specs(entries, DEFAULT_LADDER, "lossy_codecs")
    clash = sorted({s.label for s in specs} & {s.label for s in lossless})
    if clash:
        raise PresetError(f"lossy_codecs: labels {clash} are also lossless codecs' labels (add 'label:')")
    return {"guideline": open_guideline(guideline, limits), "lossy_specs": specs}


def main(args: argparse.Namespace, console) -> int:
    from ..survey import open_sources
    from ..survey.run import SurveyPlan, run_survey

    entries = [parse_codec_arg(t) for t in args.codecs.split(";") if t.strip()] if args.codecs else None
    fraction = args.sample if args.sample is not None or args.per_stratum is not None else 0.1
    lossy = [parse_codec_arg(t) for t in args.lossy_codecs.split(";") if t.strip()] if args.lossy_codecs else None
    specs = make_specs(entries)
    plan = SurveyPlan(specs=specs, fraction=fraction, per_stratum=args.per_stratum, seed=args.seed,
                      out=args.out, name=args.name, jobs=args.jobs, scheduler=args.scheduler, resume=args.resume,
                      ffmpeg=args.ffmpeg, strata_keys=strata_keys(args.strata),
                      **lossy_plan(args.lossy, args.limits, lossy, specs))
    run_survey(open_sources(args.sources, pacs_settings(args, None, plan.out), say=_say(console)), plan, console)
    return 0


def pacs_settings(args, given: dict | None, out: Path):
    """How PACS sources are read: the preset's pacs: section with --aet/--port/--insecure/--pacs-requests on top."""
    from ..sources.settings import source_settings

    return source_settings(pacs_options(args, given, out) if args is not None else given, "pacs",
                           default_cache=Path(out) / ".medpipe-cache")


def run_preset_survey(preset, console, out: Path | None = None, jobs: int | None = None, resume: bool = False,
                      scheduler: str | None = None, ffmpeg: str | None = None, args=None) -> int:
    """A preset's ``survey:`` section (sources relative to the preset file; codecs: the preset's, else the
    default lossless set)."""
    from ..survey import open_sources
    from ..survey.run import SurveyPlan, run_survey

    sv = preset.survey
    fraction = sv["sample"] if sv["sample"] is not None or sv["per_stratum"] is not None else 0.1
    specs = preset.codecs or make_specs(None)
    plan = SurveyPlan(specs=specs, fraction=fraction, per_stratum=sv["per_stratum"],
                      seed=sv["seed"], out=out or preset.output, name=preset.name, jobs=jobs,
                      scheduler=scheduler, resume=resume, ffmpeg=ffmpeg or preset.ffmpeg,
                      strata_keys=strata_keys(sv["strata"]),
                      **lossy_plan(sv.get("lossy"), sv.get("limits"), sv.get("lossy_codecs"), specs))
    settings = pacs_settings(args, preset.input_options.get("pacs"), plan.out)
    run_survey(open_sources(list(sv["sources"]), settings, say=_say(console)), plan, console)
    return 0
