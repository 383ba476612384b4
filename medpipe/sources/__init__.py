"""Sources: where instances live before the readers see them. A source turns an address (a PACS over DICOMweb or
DIMSE) into instance metadata (for listing and the survey's inventory) and into local Part 10 files (for the
readers, which then read them exactly as they read an exported folder). Sources never store, change or delete
anything at the address: they only query and retrieve.

This module is the contract between the sources and their users (the readers' input resolution, the archive, the
survey); the protocols themselves live in ``dicomweb`` and ``dimse``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol


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

    def fetch_series(self, study_uid: str, series_uid: str, dest: Path) -> list[Path]:
        """Retrieve one series' stored instances (never a transcoded copy) as Part 10 files under ``dest``
        (a cache: what is there already and checks out by content hash is not fetched again); returns them."""
