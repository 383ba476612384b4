"""DICOMweb: QIDO-RS to list (paged with limit/offset, so a 100,000-instance archive is never one answer), WADO-RS
to retrieve each instance as stored (``transfer-syntax=*``), at most N requests in flight, into the cache."""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from . import InstanceInfo, SourceError, as_int, check_part10, instance_limit
from .address import Address
from .cache import SeriesCache
from .http import Http
from .progress import Progress
from .settings import SourceSettings

PAGE = 500
# Asked of QIDO-RS at instance level; (0008,3002) Available Transfer Syntax is how a server may say what it stores
FIELDS = ("00080016", "00080060", "00080070", "00280101", "00280010", "00280011", "00280008", "00080020",
          "00083002", "00020010")
STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def value(ds: dict, tag: str, default=None):
    v = ds.get(tag, {}).get("Value")
    if not v:
        return default
    first = v[0]
    return first.get("Alphabetic", default) if isinstance(first, dict) else first


def _int_of(ds, key: str) -> int | None:
    return as_int(value(ds, key))


class DicomWebSource:
    def __init__(self, address: Address, settings: SourceSettings, say=print):
        self.address, self.settings, self.say = address, settings, say
        self.label = address.label
        self.http = Http(address, settings, say)
        self.progress = Progress(self.label, say)
        self.transcoded: dict[str, tuple[str, str]] = {}  # sop -> (stored, sent)
        self.vanished: list[str] = []
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ listing
    def _qido(self, path: str, params: list, what: str) -> Iterator[dict]:
        offset = 0
        while True:
            page = self.http.get_json(path, params + [("limit", PAGE), ("offset", offset)], what)
            if page is None and path == "/studies":
                raise SourceError(f"{self.label}: no DICOMweb service at {self.address.base_url} (HTTP 404 for "
                                  "/studies); check the service root (Orthanc: /dicom-web)")
            if page is None:
                raise SourceError(f"{self.label}: {what} not found (HTTP 404)")
            yield from page
            if len(page) < PAGE:
                return
            offset += len(page)

    def studies(self) -> Iterator[str]:
        a = self.address
        if a.study:
            yield a.study
            return
        for ds in self._qido("/studies", list(a.query), "study query"):
            uid = value(ds, "0020000D")
            if uid:
                yield uid

    def series_of(self, study: str) -> Iterator[str]:
        a = self.address
        if a.series:
            yield a.series
            return
        query = list(a.query) if a.study else []
        for ds in self._qido(f"/studies/{study}/series", query, f"study {study}"):
            uid = value(ds, "0020000E")
            if uid:
                yield uid

    def instances_of(self, study: str, series: str) -> list[InstanceInfo]:
        query = list(self.address.query) if self.address.series else []
        params = query + [("includefield", f) for f in FIELDS]
        out = []
        for ds in self._qido(f"/studies/{study}/series/{series}/instances", params, f"series {series}"):
            sop = value(ds, "00080018")
            if not sop:
                continue
            out.append(InstanceInfo(
                study_uid=study, series_uid=series, sop_uid=sop, sop_class=value(ds, "00080016", ""),
                modality=value(ds, "00080060", ""), manufacturer=value(ds, "00080070", ""),
                transfer_syntax=value(ds, "00083002") or value(ds, "00020010") or "",
                bits_stored=_int_of(ds, "00280101"), rows=_int_of(ds, "00280010"), columns=_int_of(ds, "00280011"),
                frames=_int_of(ds, "00280008") or 1, stored_bytes=None,  # QIDO-RS has no size; Orthanc does not say one
                study_date=value(ds, "00080020", "")))
        return out

    def series_list(self) -> Iterator[tuple[str, str, list[InstanceInfo]]]:
        """(study, series, its instances) one series at a time: memory holds one series' metadata."""
        for study in self.studies():
            self.progress.studies += 1
            for series in self.series_of(study):
                found = self.instances_of(study, series)
                self.progress.series += 1
                self.progress.found += len(found)
                yield study, series, found

    def instances(self) -> Iterator[InstanceInfo]:
        for _, _, found in self.series_list():
            yield from found

    # ------------------------------------------------------------------ retrieval
    def fetch_series(self, study_uid: str, series_uid: str, dest: Path,
                     instances: list[InstanceInfo] | None = None) -> list[Path]:
        found = instances if instances is not None else self.instances_of(study_uid, series_uid)
        if not found:
            raise SourceError(f"{self.label}: series {series_uid} lists no instances")
        cache = SeriesCache(dest)
        cache.prune({i.sop_uid for i in found})
        paths, todo = [], []
        for info in found:
            hit = cache.get(info.sop_uid)
            if hit:
                paths.append(hit)
                self.progress.add(cached=True)
            else:
                todo.append(info)
        with ThreadPoolExecutor(max_workers=self.settings.requests) as pool:
            limit = instance_limit(self.settings.requests)  # once a series: reading free memory takes 0.4 ms
            for path in pool.map(lambda info: self._fetch_one(info, cache, limit), todo):
                if path is not None:
                    paths.append(path)
        if not paths:
            raise SourceError(f"{self.label}: series {series_uid}: none of its {len(found)} instance(s) could be "
                              "retrieved (they vanished while being read)")
        return sorted(paths)

    def _fetch_one(self, info: InstanceInfo, cache: SeriesCache, limit: int) -> Path | None:
        path = f"/studies/{info.study_uid}/series/{info.series_uid}/instances/{info.sop_uid}"
        answer = self.http.get(path, accept=STORED, what=f"instance {info.sop_uid}", limit=limit)
        if answer is None:
            self.vanished.append(info.sop_uid)
            self.say(f"{self.label}: instance {info.sop_uid} of series {info.series_uid} is gone (HTTP 404); "
                     "left out")
            return None
        data = single_part(answer.content, answer.headers.get("Content-Type", ""), self.label, info.sop_uid)
        sent = check_part10(data, f"{self.label}: instance {info.sop_uid}")
        self.progress.add(1, len(data))
        path = cache.put(info.sop_uid, data)
        note_syntax(self, info, sent, cache)
        return path


def note_syntax(source, info: InstanceInfo, sent: str, cache: SeriesCache) -> None:
    """A source that sends another syntax than it stores distorts every CR: said once, and recorded for the
    readers (results column source_transcoded)."""
    if info.transfer_syntax and sent != info.transfer_syntax:
        with source.lock:
            source.transcoded[info.sop_uid] = (info.transfer_syntax, sent)
            first = len(source.transcoded) == 1
        cache.note_transcoded(info.sop_uid, info.transfer_syntax, sent)
        if first:
            source.say(f"{source.label}: the server sent instance {info.sop_uid} in {sent}, but stores it in "
                       f"{info.transfer_syntax}: a transcoded source (results column source_transcoded)")


def single_part(body: bytes, content_type: str, label: str, sop: str) -> bytes:
    """The one DICOM part of a multipart/related answer (or the body, when a server answers application/dicom)."""
    if content_type.split(";")[0].strip().lower() == "application/dicom":
        return body
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/related") or not m:
        kind = content_type.split(";")[0] or "no content type"
        raise SourceError(f"{label}: instance {sop} answered {kind}, not multipart DICOM")
    delimiter = b"--" + m.group(1).encode("latin-1")
    parts = body.split(delimiter)
    for part in parts[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        return content
    raise SourceError(f"{label}: instance {sop} answered a multipart body without a part")

