"""Requesting a DICOM association (PS3.8 7.1), and reading the peer's answer to it: the one place both C-STORE
(dicom.send) and the DIMSE sources (sources.dimse, sources.dimse_get) ask for one."""
from __future__ import annotations


def associate(ae, host: str, port: int, called_aet: str, evt_handlers=(), **kw):
    """`ae.associate(...)`, and the peer's answer to the A-ASSOCIATE request: an A-ASSOCIATE (AC or RJ) or A-ABORT
    primitive, or None when nothing came back (no connection, silence until the timeout, or a provider abort).

    pynetdicom 3.0 can abort an association without reading an answer that did arrive: when the peer closes the
    connection right after its A-ASSOCIATE-RJ (PS3.8 9.3.4; Orthanc does), the transport can be marked closed
    before the requesting thread checks it. The rejection then still waits in the DUL's queue, unread, and
    `is_rejected` is False (tests/test_pacs.py provokes it)."""
    from pynetdicom import evt
    from pynetdicom.pdu_primitives import A_ABORT, A_ASSOCIATE

    seen = []
    handlers = [*evt_handlers, (evt.EVT_ACSE_RECV, lambda event: seen.append(event.primitive))]
    assoc = ae.associate(host, port, ae_title=called_aet, evt_handlers=handlers, **kw)
    if not seen:  # a look at the queue, taking nothing from it; an A-P-ABORT there is pynetdicom's own
        seen = [p for p in list(assoc.dul.to_user_queue.queue) if isinstance(p, (A_ASSOCIATE, A_ABORT))]
    return assoc, (seen[0] if seen else None)


def is_rejection(answer) -> bool:
    """An A-ASSOCIATE-RJ: result 1 (permanent) or 2 (transient), PS3.8 Table 9-21."""
    from pynetdicom.pdu_primitives import A_ASSOCIATE

    return isinstance(answer, A_ASSOCIATE) and answer.result in (0x01, 0x02)
