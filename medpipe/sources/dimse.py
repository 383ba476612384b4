"""DIMSE: C-FIND (study, series, image level) to list; C-GET to retrieve, with the SCP role negotiated for every
storage SOP class the query found, one presentation context per (SOP class, transfer syntax) so the peer can send
each instance in the syntax it stores it in (never a transcoded copy); split over several associations when more
than 128 contexts are needed. When the peer refuses C-GET, C-MOVE to a storage SCP medpipe runs itself."""
from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pydicom.dataset import Dataset

from medpipe.association import associate, is_rejection

from . import InstanceInfo, SourceError, as_int, check_part10
from .address import Address
from .cache import SeriesCache
from .dicomweb import note_syntax
from .dimse_get import retrieve
from .progress import Progress
from .settings import SourceSettings

FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND
IMAGE_KEYS = ("SOPClassUID", "Rows", "Columns", "BitsStored", "NumberOfFrames", "AvailableTransferSyntaxUID")
SERIES_KEYS = ("Modality", "Manufacturer")


def _value(ds: Dataset, key: str, default=None):
    v = ds.get(key)
    return default if v in (None, "") else v


def _int_of(ds, key: str) -> int | None:
    return as_int(_value(ds, key))


class DimseSource:
    def __init__(self, address: Address, settings: SourceSettings, say=print):
        self.address, self.settings, self.say = address, settings, say
        self.label = address.label
        self.progress = Progress(self.label, say)
        self.transcoded: dict[str, tuple[str, str]] = {}
        self.vanished: list[str] = []
        self.lock = threading.Lock()
        self.associations = 0
        self.method = ""  # "C-GET" or "C-MOVE", once retrieval has started
        self.oversized = ""  # the line for a series whose instance was over the size limit (dimse_get)
        self._host_checked = False

    # ------------------------------------------------------------------ associations
    def _ae(self):
        from pynetdicom import AE

        ae = AE(ae_title=self.settings.aet)
        for attr in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
            setattr(ae, attr, self.settings.timeout)
        ae.maximum_associations = self.settings.requests
        return ae

    def _check_host(self) -> None:
        if self._host_checked:
            return
        try:
            socket.getaddrinfo(self.address.host, self.address.port)
        except OSError:
            raise SourceError(f"{self.label}: unknown host {self.address.host!r}") from None
        self._host_checked = True

    @contextmanager
    def _association(self, ae, what: str, **kw):
        self._check_host()
        self.associations += 1
        assoc, answer = associate(ae, self.address.host, self.address.port, self.address.aet, **kw)
        if not assoc.is_established:
            if is_rejection(answer):
                raise SourceError(f"{self.label}: association rejected (is {self.settings.aet!r} known to the peer "
                                  f"as a modality, and is its AE title {self.address.aet!r}?)")
            raise SourceError(f"{self.label}: no association for {what} (connection refused, aborted or timed "
                              "out)")
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    # ------------------------------------------------------------------ listing
    def _find(self, assoc, level: str, keys: dict) -> list[Dataset]:
        query = Dataset()
        query.QueryRetrieveLevel = level
        for k, v in keys.items():
            setattr(query, k, v if v != "" else None)  # None: an empty return key of any VR (US too)
        out = []
        for status, answer in assoc.send_c_find(query, FIND):
            code = getattr(status, "Status", None)
            if code is None:
                raise SourceError(f"{self.label}: C-FIND at {level} level got no answer (timed out or aborted)")
            if code in (0xFF00, 0xFF01) and answer is not None:
                out.append(answer)
            elif code not in (0x0000, 0xFF00, 0xFF01):
                raise SourceError(f"{self.label}: C-FIND at {level} level refused (status 0x{code:04X})")
        return out

    def series_list(self) -> Iterator[tuple[str, str, list[InstanceInfo]]]:
        a = self.address
        ae = self._ae()
        ae.add_requested_context(FIND)
        with self._association(ae, "C-FIND") as assoc:
            if not any(c.abstract_syntax == FIND for c in assoc.accepted_contexts):
                raise SourceError(f"{self.label}: the peer refused C-FIND (Study Root)")
            query = dict(a.query)
            studies = [a.study] if a.study else [
                str(d.StudyInstanceUID) for d in self._find(assoc, "STUDY", {"StudyInstanceUID": "", **query})
                if d.get("StudyInstanceUID")]
            for study in studies:
                self.progress.studies += 1
                keys = {"StudyInstanceUID": study, "SeriesInstanceUID": a.series or "", "StudyDate": "",
                        **{k: "" for k in SERIES_KEYS}, **(query if a.study else {})}
                for series in self._find(assoc, "SERIES", keys):
                    uid = str(series.get("SeriesInstanceUID", ""))
                    if not uid:
                        continue
                    found = self._instances(assoc, study, uid, series, query if a.series else {})
                    self.progress.series += 1
                    self.progress.found += len(found)
                    yield study, uid, found

    def _instances(self, assoc, study: str, series: str, meta: Dataset, query: dict) -> list[InstanceInfo]:
        keys = {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": "",
                **{k: "" for k in IMAGE_KEYS}, **query}
        out = []
        for d in self._find(assoc, "IMAGE", keys):
            sop = str(d.get("SOPInstanceUID", ""))
            if sop:
                out.append(InstanceInfo(
                    study_uid=study, series_uid=series, sop_uid=sop, sop_class=str(_value(d, "SOPClassUID", "")),
                    modality=str(_value(meta, "Modality", "")), manufacturer=str(_value(meta, "Manufacturer", "")),
                    transfer_syntax=str(_value(d, "AvailableTransferSyntaxUID", "")),
                    bits_stored=_int_of(d, "BitsStored"), rows=_int_of(d, "Rows"), columns=_int_of(d, "Columns"),
                    frames=_int_of(d, "NumberOfFrames") or 1, study_date=str(_value(meta, "StudyDate", ""))))
        return out

    def instances(self) -> Iterator[InstanceInfo]:
        for _, _, found in self.series_list():
            yield from found

    # ------------------------------------------------------------------ retrieval
    def fetch_series(self, study_uid: str, series_uid: str, dest: Path,
                     instances: list[InstanceInfo] | None = None) -> list[Path]:
        if instances is None:
            instances = next((f for s, r, f in self._one_series(study_uid, series_uid)), [])
        if not instances:
            raise SourceError(f"{self.label}: series {series_uid} lists no instances")
        cache = SeriesCache(dest)
        cache.prune({i.sop_uid for i in instances})
        todo = []
        for info in instances:
            if cache.get(info.sop_uid):
                self.progress.add(cached=True)
            else:
                todo.append(info)
        if todo:
            retrieve(self, todo, cache, whole=len(todo) == len(instances))
        paths = [p for p in (cache.get(i.sop_uid) for i in instances) if p]
        missing = [i.sop_uid for i in instances if not cache.get(i.sop_uid)]
        if missing:
            self.vanished += missing
            self.say(f"{self.label}: series {series_uid}: {len(missing)} of {len(instances)} instance(s) did not "
                     f"arrive (gone from the PACS while being read?); left out, first {missing[0]}")
        if not paths:
            raise SourceError(f"{self.label}: series {series_uid}: none of its {len(instances)} instance(s) could "
                              "be retrieved")
        return sorted(paths)

    def _one_series(self, study: str, series: str):
        from dataclasses import replace

        saved = self.address
        self.address = replace(saved, study=study, series=series, query=())
        try:
            yield from self.series_list()
        finally:
            self.address = saved

    def received(self, data: bytes, sop: str, cache: SeriesCache, expected: dict[str, InstanceInfo]) -> bool:
        """A C-STORE sub-operation's instance (Part 10 bytes): checked and cached. False when not ours."""
        info = expected.get(sop)
        if info is None:
            return False
        sent = check_part10(data, f"{self.label}: instance {sop}")
        cache.put(sop, data)
        note_syntax(self, info, sent, cache)
        self.progress.add(1, len(data))
        return True
