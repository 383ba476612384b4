"""The survey (floor 3, beside the matrix and the archive): what re-encoding an archive would save, projected
from a seeded sample of its series with 95 % intervals (README "RQ1: surveying an archive").

    inventory.py  every instance's metadata (folder header reads, or a PACS source) -> series
    sample.py     strata (modality x stored syntax x depth class) and the seeded draw
    measure.py    one sampled series through every codec (matrix cell + DICOM writer)
    lossy.py      --lossy: the ladder of lossy settings, each series' best one within a clinical limit
    estimate.py   ratio estimators, stratified totals, intervals
    run.py        the survey from start to end (executors, --resume store)
    output.py     survey.csv, survey.json;  table.py: columns, formats, console table;  page.py: survey.html
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import MedpipeError
from ..options import Option

DEFAULT_CODECS = ({"codec": "jpegls", "label": "JPEG-LS"}, {"codec": "htj2k", "label": "HTJ2K"},
                  {"codec": "jpegxl", "label": "JPEG XL"}, {"codec": "lossless3d", "label": "lossless3d"})

SURVEY_OPTIONS: dict[str, Option] = {
    "sources": Option(list, None, "folder trees (relative to the preset), DICOMweb URLs or DIMSE addresses",
                      item=str),
    "sample": Option((int, float), None, "fraction of the series of each stratum to measure, in (0, 1]",
                     range=(0, 1)),
    "per_stratum": Option(int, None, "series to measure per stratum (instead of a fraction)", range=(1, 10 ** 6)),
    "seed": Option(int, 0, "seed of the sample (same seed, same series)"),
    "strata": Option(list, ["modality", "syntax", "bits"], "what makes a stratum", item=str),
    "lossy": Option(str, None, "also lossy rows within this clinical guideline (a source of the limits file: DRG, "
                    "CAR)"),
    "limits": Option(str, None, "clinical limits file (relative to the preset; default: the shipped one)"),
    "lossy_codecs": Option(list, None, "the lossy settings tried per series (codec entries; default: "
                           "survey.lossy.DEFAULT_LADDER)", item=(dict, str)),
}


def looks_like_address(text: str) -> bool:
    """A DICOMweb URL or a DIMSE address (AET@HOST:PORT), as opposed to a folder path."""
    from .. import sources

    is_address = getattr(sources, "is_address", None)
    if is_address is not None:
        return bool(is_address(str(text)))
    return "://" in str(text) or bool(re.fullmatch(r"[^@/\\]+@[^@/\\]+:\d+", str(text)))


def resolve_sources(texts: list[str], base: Path) -> list[str]:
    """A preset's sources: folder paths resolved against the preset's folder, addresses as they are."""
    return [t if looks_like_address(t) or Path(t).expanduser().is_absolute() else str(base / Path(t).expanduser())
            for t in texts]


def open_sources(texts: list[str], settings=None, say=None) -> list:
    """Folder paths -> FolderSource; DICOMweb URLs and DIMSE addresses -> the PACS source (medpipe.sources)."""
    from .. import sources
    from .inventory import FolderSource

    out = []
    for text in texts:
        if not looks_like_address(str(text)):
            out.append(FolderSource(Path(text)))
        elif getattr(sources, "open_source", None) is None:
            raise MedpipeError(f"{text}: PACS addresses need medpipe.sources.open_source, not in this build")
        else:
            out.append(sources.open_source(str(text), settings, say=say or print))
    return out
