"""The survey's inventory: every instance's metadata (never its pixels), and the series they make.

A folder tree is read by header reads that stop before Pixel Data (pydicom ``stop_before_pixels``) plus the file
size; a PACS by its source (QIDO-RS or C-FIND, :mod:`medpipe.sources`). Both give the same
:class:`~medpipe.sources.InstanceInfo` records, which :func:`series_of` gathers into one :class:`SeriesInfo` per
series -- the survey's sampling unit. Sources are only read, never written.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError, described
from ..sources import InstanceInfo

UNKNOWN = "?"


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _int(ds, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def read_instance(path: Path) -> InstanceInfo | None:
    """One file's metadata (header read stopped before Pixel Data), or None when it is not a DICOM image
    instance (no SOP Instance UID or no Pixel Data is announced by Rows). A file that fails in any other way while
    its header is read or its elements are converted (pydicom parses values lazily: an unknown VR, a deflated data
    set that does not inflate, sequences nested past Python's recursion limit) raises one InputError line naming
    it, so one bad file never ends the survey."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from ..volumes.dicom import read_deflated

    try:
        ds = read_deflated(path, stop_before_pixels=True)  # bounded inflation (PS3.5 A.5), else None
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - a file read_deflated cannot judge is read below as any other
        ds = None
    try:
        if ds is None:
            with open(path, "rb") as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True, defer_size=1024)
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, AttributeError):
        return None
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom and zlib raise many types on a damaged header
        raise InputError(f"{path}: damaged DICOM header ({described(exc)}); left out of the inventory") from None
    try:
        return _instance(path, ds)
    except Exception as exc:  # noqa: BLE001 - an element converted lazily may raise anything
        raise InputError(f"{path}: damaged DICOM header ({described(exc)}); left out of the inventory") from None


def _instance(path: Path, ds) -> InstanceInfo | None:
    sop = _text(ds, "SOPInstanceUID")
    if not sop or _int(ds, "Rows") is None:
        return None
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return InstanceInfo(
        study_uid=_text(ds, "StudyInstanceUID"), series_uid=_text(ds, "SeriesInstanceUID") or f"file:{path}",
        sop_uid=sop, sop_class=_text(ds, "SOPClassUID"), modality=_text(ds, "Modality"),
        transfer_syntax=syntax, manufacturer=_text(ds, "Manufacturer"), bits_stored=_int(ds, "BitsStored"),
        rows=_int(ds, "Rows"), columns=_int(ds, "Columns"), frames=_int(ds, "NumberOfFrames") or 1,
        stored_bytes=path.stat().st_size, study_date=_text(ds, "StudyDate"))


class FolderSource:
    """A folder tree (a PACS export) as a survey source: header reads, and its own files as a series' instances
    (nothing is copied: the files are read where they are)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.label = str(self.root)
        self.skipped: list[str] = []  # files that are not DICOM image instances (counted, named in survey.json)
        self.damaged: list[str] = []  # of those, the ones that could not be read: one line each, also printed
        self._paths: dict[str, list[Path]] = {}

    def instances(self) -> Iterator[InstanceInfo]:
        if not self.root.exists():
            raise InputError(f"{self.root}: does not exist; give a folder tree, a DICOMweb URL or a DIMSE address")
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(f for f in files if not f.startswith(".")):
                path = Path(folder) / name
                try:
                    info = read_instance(path)
                except OSError as exc:
                    self.skipped.append(f"{path}: cannot be read ({exc.strerror or exc})")
                    continue
                except InputError as exc:
                    self.skipped.append(str(exc))
                    self.damaged.append(str(exc))
                    continue
                if info is None:
                    self.skipped.append(f"{path}: not a DICOM image instance")
                    continue
                self._paths.setdefault(info.series_uid, []).append(path)
                yield info

    def fetch_series(self, study_uid: str, series_uid: str, dest: Path) -> list[Path]:
        if series_uid not in self._paths:
            list(self.instances())
        return list(self._paths.get(series_uid, []))


def bits_class(bits: int | None) -> str:
    """A coarse depth class: the strata split on it, since 8-bit, 12-bit and 16-bit data compress differently."""
    if bits is None:
        return UNKNOWN
    return "<=8" if bits <= 8 else "9-12" if bits <= 12 else "13-16"


@dataclass
class SeriesInfo:
    """One series from its instances' metadata: the sampling unit."""

    study_uid: str
    series_uid: str
    modality: str
    transfer_syntax: str
    bits_stored: int | None
    manufacturer: str = ""
    sop_class: str = ""
    study_date: str = ""
    instances: int = 0
    frames: int = 0
    raw_bytes: int | None = 0  # rows x columns x frames x bytes per sample (None when a header lacks them)
    stored_bytes: int | None = 0  # None when the source does not report every instance's size
    syntaxes: list[str] = field(default_factory=list)  # every stored syntax seen (mixed series are noted)

    @property
    def bits_class(self) -> str:
        return bits_class(self.bits_stored)

    def as_dict(self) -> dict:
        return {**asdict(self), "bits_class": self.bits_class}


def series_of(instances: Iterable[InstanceInfo]) -> list[SeriesInfo]:
    """Instances -> series (first-seen order); a series' stored bytes are known only when every instance's is."""
    out: dict[str, SeriesInfo] = {}
    for inst in instances:
        s = out.get(inst.series_uid)
        if s is None:
            s = out[inst.series_uid] = SeriesInfo(
                inst.study_uid, inst.series_uid, inst.modality or UNKNOWN, inst.transfer_syntax or UNKNOWN,
                inst.bits_stored, inst.manufacturer, inst.sop_class, inst.study_date)
        s.instances += 1
        s.frames += inst.frames or 1
        if (inst.transfer_syntax or UNKNOWN) not in s.syntaxes:
            s.syntaxes.append(inst.transfer_syntax or UNKNOWN)
        if s.raw_bytes is not None and inst.rows and inst.columns and inst.bits_stored:
            per_sample = 1 if inst.bits_stored <= 8 else 2
            s.raw_bytes += inst.rows * inst.columns * (inst.frames or 1) * per_sample
        else:
            s.raw_bytes = None
        s.stored_bytes = None if s.stored_bytes is None or inst.stored_bytes is None else \
            s.stored_bytes + inst.stored_bytes
        if inst.bits_stored and (s.bits_stored or 0) < inst.bits_stored:
            s.bits_stored = inst.bits_stored
    return list(out.values())


def take_inventory(source, console=None) -> tuple[list[SeriesInfo], dict]:
    """Every instance of ``source`` -> (series, facts: instances, seconds, instances/s, skipped files)."""
    t0 = time.perf_counter()
    count = 0

    def counted():
        nonlocal count
        for inst in source.instances():
            count += 1
            for line in _new_damage(source, console):
                console.print(f"skipped: {line}", highlight=False, markup=False)
            if console is not None and count % 5000 == 0:
                console.print(f"inventory: {count} instances ...", highlight=False)
            yield inst

    series = series_of(counted())
    for line in _new_damage(source, console):
        console.print(f"skipped: {line}", highlight=False, markup=False)
    seconds = time.perf_counter() - t0
    skipped = list(getattr(source, "skipped", []))
    return series, {"source": source.label, "instances": count, "series": len(series),
                    "seconds": round(seconds, 3), "instances_per_s": round(count / seconds, 1) if seconds else None,
                    "skipped_files": len(skipped), "skipped": skipped[:200],
                    "sizes": "file sizes" if all(s.stored_bytes is not None for s in series) else
                    "not reported by the source: retrieved for the sampled series, estimated for the rest"}


def _new_damage(source, console) -> list[str]:
    """The damaged files' lines the source found since the last call (printed as they come)."""
    damaged = getattr(source, "damaged", None)
    if console is None or not damaged:
        return []
    done = getattr(source, "_printed", 0)
    source._printed = len(damaged)
    return damaged[done:]


def summary(series: list[SeriesInfo]) -> list[dict]:
    """Bytes now by modality x stored transfer syntax (the inventory summary of survey.json)."""
    table: dict[tuple, dict] = {}
    for s in series:
        row = table.setdefault((s.modality, s.transfer_syntax), {
            "modality": s.modality, "transfer_syntax": s.transfer_syntax, "series": 0, "instances": 0,
            "stored_bytes": 0, "raw_bytes": 0})
        row["series"] += 1
        row["instances"] += s.instances
        row["stored_bytes"] = None if row["stored_bytes"] is None or s.stored_bytes is None else \
            row["stored_bytes"] + s.stored_bytes
        row["raw_bytes"] = None if row["raw_bytes"] is None or s.raw_bytes is None else row["raw_bytes"] + s.raw_bytes
    return sorted(table.values(), key=lambda r: (r["modality"], r["transfer_syntax"]))
