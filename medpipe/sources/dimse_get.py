"""Retrieval over DIMSE for :class:`medpipe.sources.dimse.DimseSource`: C-GET with the SCP role negotiated per
storage SOP class (one context per (SOP class, transfer syntax), several associations when more than 128 are
needed), and C-MOVE to medpipe's own storage SCP when the peer refuses C-GET."""
from __future__ import annotations

from collections import defaultdict

from pydicom import uid

from ..syntaxes import JPEGXL, DeflatedImageFrameCompression, JPEGXLJPEGRecompression, JPEGXLLossless
from . import InstanceInfo, SourceError, instance_limit
from .cache import SeriesCache

MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are the odd numbers 1-255
# Every transfer syntax a stored instance may be in (PS3.6 Table A-1 image syntaxes, video ones aside): each is
# proposed in its own context, so the peer never has to transcode to a syntax it was offered instead
SYNTAXES = (uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian,
            uid.DeflatedExplicitVRLittleEndian, uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless,
            uid.JPEGLosslessSV1, uid.JPEGLSLossless, uid.JPEGLSNearLossless, uid.JPEG2000Lossless, uid.JPEG2000,
            uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K, JPEGXLLossless, JPEGXLJPEGRecompression, JPEGXL,
            uid.RLELossless, DeflatedImageFrameCompression)
GET = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve Information Model - GET
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
CLASSES_PER_ASSOCIATION = (MAX_CONTEXTS - 1) // len(SYNTAXES)  # one context is the C-GET model's own
SUCCESS, WARNING = 0x0000, 0xB000


class Refused(Exception):
    """The peer will not do C-GET (context rejected, or a failure status before any instance arrived)."""


def retrieve(source, todo: list[InstanceInfo], cache: SeriesCache, whole: bool) -> None:
    """Every instance of ``todo`` (one series; ``whole``: all of it) into ``cache``: C-GET, else C-MOVE (said
    once). A whole series is one request; part of one (resumed) is asked for instance by instance. An instance
    over the size one answer may take aborts its association; that, not the abort, is the series' line."""
    source.oversized = ""
    try:
        _retrieve(source, todo, cache, whole)
    except (Refused, SourceError):
        if source.oversized:
            raise SourceError(source.oversized) from None
        raise


def _retrieve(source, todo: list[InstanceInfo], cache: SeriesCache, whole: bool) -> None:
    if source.method != "C-MOVE" and all(i.sop_class for i in todo):
        try:
            _c_get(source, todo, cache, whole)
            source.method = "C-GET"
            return
        except Refused as exc:
            if source.oversized:
                raise
            source.say(f"{source.label}: C-GET refused ({exc}); retrieving by C-MOVE to {source.settings.aet} on "
                       f"port {source.settings.port} instead")
    source.method = "C-MOVE"
    _c_move(source, todo, cache, whole)


def _handler(source, cache: SeriesCache, expected: dict[str, InstanceInfo]):
    """C-STORE sub-operations into the cache, and a bound on each: pynetdicom gathers a DIMSE message in memory
    until its last fragment, whatever its size, so the PDUs of the message being received are counted (per
    association) and the association is aborted past the size one answer may take (as DICOMweb's)."""
    from pynetdicom import evt

    limit = instance_limit(source.settings.requests)
    receiving: dict[int, int] = {}  # id(association) -> bytes of the message in progress

    def on_pdu(event):
        key = id(event.assoc)
        receiving[key] = receiving.get(key, 0) + len(event.data)
        if receiving[key] > limit and not source.oversized:
            source.oversized = (f"{source.label}: an instance is over the {limit / 2**20:,.0f} MiB one answer may "
                                "take here; its association was aborted")
            event.assoc.abort()  # from a handler: queued, not waited for (pynetdicom 3)

    def on_message(event):
        receiving[id(event.assoc)] = 0

    def on_store(event):
        sop = str(event.request.AffectedSOPInstanceUID)
        try:
            source.received(event.encoded_dataset(include_meta=True), sop, cache, expected)
        except SourceError as exc:
            source.say(str(exc))
            return 0xC000  # "cannot understand": the peer logs it; nothing is stored on its side either way
        return SUCCESS

    return [(evt.EVT_C_STORE, on_store), (evt.EVT_DATA_RECV, on_pdu), (evt.EVT_DIMSE_RECV, on_message)]


def _query(level: str, study: str, series: str, sop: str | None = None):
    from pydicom.dataset import Dataset

    q = Dataset()
    q.QueryRetrieveLevel = level
    q.StudyInstanceUID, q.SeriesInstanceUID = study, series
    if sop:
        q.SOPInstanceUID = sop
    return q


def _statuses(source, responses, what: str) -> tuple[int | None, int]:
    """(the final status, sub-operations completed) of a C-GET / C-MOVE response stream."""
    final, completed = None, 0
    for status, _ in responses:
        code = getattr(status, "Status", None)
        if code is None:
            raise SourceError(f"{source.label}: {what} got no answer (timed out or aborted)")
        final = code
        completed = int(getattr(status, "NumberOfCompletedSuboperations", completed) or completed)
    return final, completed


def _c_get(source, todo: list[InstanceInfo], cache: SeriesCache, whole: bool) -> None:
    from pynetdicom import build_role

    by_class: dict[str, list[InstanceInfo]] = defaultdict(list)
    for info in todo:
        by_class[info.sop_class].append(info)
    classes = sorted(by_class)
    for start in range(0, len(classes), CLASSES_PER_ASSOCIATION):
        group = classes[start:start + CLASSES_PER_ASSOCIATION]
        members = [i for c in group for i in by_class[c]]
        ae = source._ae()
        ae.add_requested_context(GET)
        for cls in group:
            for ts in SYNTAXES:
                ae.add_requested_context(cls, ts)
        roles = [build_role(cls, scp_role=True) for cls in group]
        expected = {i.sop_uid: i for i in members}
        with source._association(ae, "C-GET", ext_neg=roles, evt_handlers=_handler(source, cache, expected)) as a:
            if not any(c.abstract_syntax == GET for c in a.accepted_contexts):
                raise Refused("the peer rejected the C-GET presentation context")
            first = members[0]
            if whole and len(classes) <= CLASSES_PER_ASSOCIATION:  # the whole series in one request
                queries = [_query("SERIES", first.study_uid, first.series_uid)]
            else:  # part of a series (resumed, or SOP classes over several associations): instance by instance
                queries = [_query("IMAGE", i.study_uid, i.series_uid, i.sop_uid) for i in members]
            got_any = False
            for q in queries:
                try:
                    final, completed = _statuses(source, a.send_c_get(q, GET), "C-GET")
                except SourceError:
                    if got_any:
                        raise
                    raise Refused("the peer aborted the association") from None
                got_any = got_any or completed > 0 or source.progress.fetched > 0
                if final not in (SUCCESS, WARNING) and not got_any:
                    raise Refused(f"status 0x{final:04X}" if final is not None else "no status")


def _c_move(source, todo: list[InstanceInfo], cache: SeriesCache, whole: bool) -> None:
    from pynetdicom import AE, AllStoragePresentationContexts

    s = source.settings
    expected = {i.sop_uid: i for i in todo}
    scp = AE(ae_title=s.aet)
    for ctx in AllStoragePresentationContexts:
        scp.add_supported_context(ctx.abstract_syntax, list(SYNTAXES))
    scp.maximum_associations = s.requests
    local = source.address.host in ("127.0.0.1", "localhost", "::1")
    bind = "127.0.0.1" if local else ""  # a remote peer must reach us; a local one need not
    try:
        server = scp.start_server((bind, s.port), block=False, evt_handlers=_handler(source, cache, expected))
    except OSError as exc:
        raise SourceError(f"{source.label}: cannot run medpipe's storage SCP on port {s.port} for C-MOVE "
                          f"({exc.strerror or exc}); choose another with --port") from None
    try:
        ae = source._ae()
        ae.add_requested_context(MOVE)
        with source._association(ae, "C-MOVE") as a:
            if not any(c.abstract_syntax == MOVE for c in a.accepted_contexts):
                raise SourceError(f"{source.label}: the peer refuses both C-GET and C-MOVE")
            queries = ([_query("SERIES", todo[0].study_uid, todo[0].series_uid)] if whole else
                       [_query("IMAGE", i.study_uid, i.series_uid, i.sop_uid) for i in todo])
            final = None
            for q in queries:
                final, _ = _statuses(source, a.send_c_move(q, s.aet, MOVE), "C-MOVE")
            if final not in (SUCCESS, WARNING) and not any(cache.get(i.sop_uid) for i in todo):
                raise SourceError(f"{source.label}: C-MOVE to {s.aet} failed (status 0x{final or 0:04X}); the peer "
                                  f"must know {s.aet} as a modality at this host, port {s.port}")
    finally:
        server.shutdown()
