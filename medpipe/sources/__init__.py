"""Sources: where instances live before the readers see them. A source turns an address (a PACS over DICOMweb or
DIMSE) into instance metadata (for listing and the survey's inventory) and into local Part 10 files (for the
readers, which then read them exactly as they read an exported folder). Sources never store, change or delete
anything at the address: they only query and retrieve.

This module is the contract between the sources and their users (the readers' input resolution, the archive, the
survey); the protocols themselves live in ``dicomweb`` and ``dimse``.

    address.py      parse an address (one line for a malformed one; credentials refused, never echoed)
    settings.py     SOURCE_OPTIONS (preset key ``pacs:``, --aet/--port/--insecure/--pacs-requests)
    credentials.py  HTTP credentials from the environment or netrc only
    http.py         bounded, retried, time-limited HTTP
    dicomweb.py     QIDO-RS listing (paged), WADO-RS retrieval of stored bytes
    dimse.py        C-FIND listing, C-GET retrieval (C-MOVE to our own storage SCP when C-GET is refused)
    cache.py        retrieved instances under the output folder, checked by content hash (resume)
    progress.py     the progress line
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from ..errors import InputError
from ..memory import free_memory


@dataclass(frozen=True)
class InstanceInfo:
    """One stored instance, from metadata alone (QIDO-RS, C-FIND at image level, or a header read that stops
    before Pixel Data). ``stored_bytes`` is None when the source does not say (then the survey retrieves or
    estimates it, and says which)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str = ""
    modality: str = ""
    transfer_syntax: str = ""  # as stored ("" when the source does not say)
    manufacturer: str = ""
    bits_stored: int | None = None
    rows: int | None = None
    columns: int | None = None
    frames: int = 1
    stored_bytes: int | None = None
    study_date: str = ""


class Source(Protocol):
    """What every source offers. ``label`` names it in messages without credentials."""

    label: str

    def instances(self) -> Iterator[InstanceInfo]:
        """Every instance the address selects (its study/series path and query), metadata only."""

    def fetch_series(self, study_uid: str, series_uid: str, dest: Path,
                     instances: list[InstanceInfo] | None = None) -> list[Path]:
        """Retrieve one series' stored instances (never a transcoded copy) as Part 10 files under ``dest``
        (a cache: what is there already and checks out by content hash is not fetched again); returns them.
        ``instances``: the series' listing when the caller has it (else it is queried again)."""

    def series_list(self) -> Iterator[tuple[str, str, list[InstanceInfo]]]:
        """(study UID, series UID, its instances) for every series the address selects, one series at a time;
        counts them in ``self.progress`` (a :class:`medpipe.sources.progress.Progress`)."""


def as_int(value) -> int | None:
    """A metadata value as a whole number, None when absent or not a number (a peer's answer is not trusted)."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class SourceError(InputError):
    """A PACS could not be queried or read (unknown host, refused, not authorised, a garbled answer, ...)."""


def instance_limit(requests_in_flight: int) -> int:
    """The most one retrieved instance may take: the memory free here, shared by the requests (or associations) in flight and a
    copy each (the cache write); 2 GiB each where free memory is not known."""
    free = free_memory()
    return 2 << 30 if free is None else max(free // (2 * (requests_in_flight + 1)), 16 << 20)


def check_part10(data: bytes, what: str) -> str:
    """The transfer syntax of a Part 10 file held in ``data``; SourceError when it is not one."""
    import io

    import pydicom

    if len(data) < 132 or data[128:132] != b"DICM":
        head = data[:40].lstrip().lower()
        kind = "HTML" if head.startswith((b"<!doctype html", b"<html")) else f"{len(data)} bytes that are not DICOM"
        raise SourceError(f"{what}: answered {kind}, not a DICOM file")
    try:
        meta = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).file_meta
    except Exception as exc:  # noqa: BLE001 - any parse failure of foreign bytes is a bad answer, said in one line
        raise SourceError(f"{what}: answered a DICOM file whose meta information cannot be read "
                          f"({type(exc).__name__})") from None
    return str(meta.get("TransferSyntaxUID", ""))


def is_address(text) -> bool:
    """True when ``text`` is a PACS address (http://, https://, dicom://) rather than a path."""
    from .address import is_address as _is

    return _is(text)


def open_source(address: str, settings=None, say=print) -> Source:
    """The source for a PACS address (DICOMweb for http/https, DIMSE for dicom://); InputError when malformed.
    ``settings``: a SourceSettings, a ``pacs:`` mapping (checked), or None for the defaults."""
    from .address import parse_address
    from .settings import SourceSettings, source_settings

    parsed = parse_address(address)
    settings = source_settings(settings) if isinstance(settings, dict) else settings or SourceSettings()
    if parsed.dimse:
        from .dimse import DimseSource

        return DimseSource(parsed, settings, say)
    from .dicomweb import DicomWebSource

    return DicomWebSource(parsed, settings, say)


def fetch_address(address: str, settings=None, say=print) -> tuple[list[Path], list[str]]:
    """Every series an address selects, retrieved into the cache one series at a time: (the series folders,
    one message per series left out). SourceError when nothing at all can be read (a bad peer, a query that
    matches nothing)."""
    from .address import parse_address
    from .cache import series_folder
    from .settings import SourceSettings, source_settings

    settings = source_settings(settings) if isinstance(settings, dict) else settings or SourceSettings()
    source = open_source(address, settings, say)
    key = parse_address(address).key
    folders, errors = [], []
    listing = source.series_list()
    while True:
        try:
            study, series, found = next(listing)
        except StopIteration:
            break
        except SourceError as exc:  # the peer failed part-way through the listing: keep what was read
            if not folders:
                raise
            errors.append(f"{exc} (after {len(folders)} series; the rest not read)")
            say(f"skipped: {errors[-1]}")
            break
        if not found:  # a series without instances (or one the address names that is not there)
            continue
        folder = series_folder(settings.cache, key, study, series)
        try:
            source.fetch_series(study, series, folder, instances=found)
            folders.append(folder)
        except SourceError as exc:
            errors.append(str(exc))
            say(f"skipped: {exc}")
    progress = source.progress
    if not progress.found:
        a = parse_address(address)
        raise SourceError(f"{source.label}: " + (f"series {a.series} not found (no instances)" if a.series else
                                                 f"study {a.study} not found (no series)" if a.study else
                                                 "the query matched nothing (no series)"))
    say(progress.line(final=True))
    return folders, errors
