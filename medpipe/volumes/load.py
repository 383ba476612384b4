"""Inputs -> volume sources -> volumes, with every message said once on the console.

``discover_inputs`` reads headers only and returns one :class:`VolumeSource` per volume; ``load_inputs`` loads
each in turn. One bad file, series or input gives its messages and never stops the others: a foreseeable problem
is a MedpipeError line, and anything else is caught per file/source too and named as a medpipe bug, so one odd
series cannot end the run. Inputs are only ever read.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import InputError, MedpipeError, described
from ..sources import fetch_address, is_address
from ..sources.cache import transcoded
from ..sources.settings import source_settings
from .discover import READS, discover
from .input_options import input_settings
from .source import VolumeSource
from .volume import Volume


class _Quiet:
    def print(self, *args, **kwargs) -> None:
        pass


STYLES = {"skipped:": "red", "": ""}  # everything else that loading says is worth a look: yellow


def _say(console, prefix: str, message: str) -> None:
    """One line; markup off, since file names may hold '[...]'."""
    console.print(f"{prefix} {message}" if prefix else message, markup=False, highlight=False,
                  style=STYLES.get(prefix, "yellow") or None)


def _skip(console, errors: list[str], message: str) -> None:
    errors.append(message)
    _say(console, "skipped:", message)


def print_events(console, events: list[dict]) -> None:
    """Each event as one line ('split: ...', 'duplicate: ...')."""
    for ev in events:
        _say(console, f"{ev['kind']}:", ev["message"])


def discover_inputs(paths, console=None, options: dict | None = None) -> tuple[list[VolumeSource], list[str]]:
    """Every input path -> the volumes it holds (headers only) and one message per file or input left out."""
    console = console or _Quiet()
    input_settings(options)  # a bad option fails here, before any input is read
    paths = list(paths)
    sources: list[VolumeSource] = []
    errors: list[str] = []
    taken: set[str] = set()
    if not paths:
        errors.append(f"no input given; {READS}")
    for item in paths:
        if not is_address(item):
            _discover_one(Path(item), options, taken, console, sources, errors)
            continue
        try:  # a PACS address: its series are retrieved into the cache, then read exactly as folders
            pacs = source_settings(input_settings(options)["pacs"], "pacs")
            folders, failed = fetch_address(str(item), pacs, lambda line: _say(console, "", line))
        except MedpipeError as exc:
            _skip(console, errors, str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - a medpipe bug must not end the run for the other inputs
            _skip(console, errors, f"{item}: could not be read ({type(exc).__name__}); this is a medpipe bug, "
                  "please report")
            continue
        errors += failed
        for folder in folders:
            _discover_one(folder, options, taken, console, sources, errors)
    return sources, errors


def _discover_one(path: Path, options, taken: set[str], console, sources: list, errors: list) -> None:
    """One input path -> its volume sources (appended), its messages said and appended."""
    try:
        found = discover(path, options, taken)
    except MedpipeError as exc:
        _skip(console, errors, str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - a medpipe bug must not end the run for the other inputs
        _skip(console, errors, f"{path}: could not be examined ({described(exc)}); this is a medpipe "
              "bug, please report")
        return
    for msg in found.errors:
        _say(console, "skipped:", msg)
    for note in found.notes:
        _say(console, "note:", note)
    seen: set[int] = set()  # a series split in three carries its split event three times: say it once
    for src in found.sources:
        print_events(console, [ev for ev in src.events if id(ev) not in seen])
        seen.update(id(ev) for ev in src.events)
    if found.files or found.sources:
        _say(console, "", f"{path}: {found.summary()}")
    sources += found.sources
    errors += found.errors


def load_source(src: VolumeSource, console=None, errors: list[str] | None = None) -> Volume:
    """Load one source, printing what loading did (damage left out, colour converted, lossy source). Raises
    MedpipeError when the volume cannot be read or is refused."""
    console = console or _Quiet()
    errors = [] if errors is None else errors
    before = len(errors)
    t0 = time.perf_counter()
    try:
        vol = src.load(errors)
    except MedpipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a medpipe bug must not end the run for the other volumes
        raise InputError(f"{src.label or src.name}: could not be loaded ({described(exc)}); this is a "
                         "medpipe bug, please report it with the file") from None
    for msg in errors[before:]:
        _say(console, "skipped:", msg)
    print_events(console, [ev for ev in vol.events[len(src.events):] if ev["kind"] != "damaged"])
    if vol.color:
        _say(console, "colour:", f"{vol.name}: {vol.color}")
    if vol.lossy_source:
        _say(console, "lossy source:", f"{vol.name}: {vol.lossy_source}")
    vol.source_transcoded = transcoded(vol.files) if vol.files else ""
    if vol.source_transcoded:
        _say(console, "transcoded source:", f"{vol.name}: {vol.source_transcoded} (every CR is relative to it)")
    vol.notes.append(f"load_ms={(time.perf_counter() - t0) * 1000:.0f}")
    return vol


def load_inputs(paths, console=None, options: dict | None = None) -> tuple[list[Volume], list[str]]:
    """Every input path -> volumes; returns (volumes, one message per file, series or input left out)."""
    console = console or _Quiet()
    sources, errors = discover_inputs(paths, console, options)
    volumes = []
    for src in sources:
        try:
            volumes.append(load_source(src, console, errors))
        except MedpipeError as exc:
            errors.append(str(exc))
            _say(console, "skipped:", str(exc))
    return volumes, errors


def load_volume(path: Path | str, name: str | None = None, options: dict | None = None) -> Volume:
    """Exactly one volume from ``path`` (a series folder, a file, a PNG slice folder); InputError otherwise,
    naming the first problem."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: does not exist; check the preset's 'input' or --input")
    sources, errors = discover_inputs([path], None, options)
    if len(sources) != 1:
        if not sources:
            raise InputError(errors[0] if errors else f"{path}: no volume found; medpipe reads {READS}")
        raise InputError(f"{path}: holds {len(sources)} volumes ({', '.join(s.name for s in sources[:5])}); give "
                         "one series, or use load_inputs for all of them")
    if name:
        sources[0].name = name
    return sources[0].load([])


def load_dicom_files(paths: list[Path], name: str | None = None, source: Path | None = None,
                     options: dict | None = None) -> Volume:
    """The given DICOM files as one volume, assembled by the series rules (sorted, duplicates removed)."""
    from .dicom import read_dicom
    from .series import Member, assemble

    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError(f"{source}: no DICOM files")
    groups = assemble([Member(p, read_dicom(p, defer_size=4096)) for p in paths],
                      input_settings(options)["duplicate_tolerance"])
    if len(groups) != 1:
        raise InputError(f"{source or paths[0].parent}: the files make {len(groups)} volumes, not one")
    group = groups[0]
    src = VolumeSource("dicom", group.paths, name or (source or paths[0].parent).name, dict(options or {}),
                       label=group.label, source=source or paths[0].parent, events=group.events,
                       alternates=group.alternates)
    return src.load()
