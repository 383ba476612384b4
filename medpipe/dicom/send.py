"""Send DICOM files to a DICOM node (a PACS) by C-STORE, each file exactly as stored.

Negotiation follows PS3.8 / PS3.7: one presentation context per (SOP class, transfer syntax) found in the files,
each proposing only that file's own transfer syntax, so the peer either takes the encoding medpipe wrote or says
it will not; nothing is transcoded. At most 128 presentation contexts fit one association (PS3.8 9.3.2.2: context
IDs are odd numbers 1-255), so more pairs use several associations. The dataset bytes are streamed from the file
after its File Meta Information, unchanged.

Every foreseeable outcome is a line, not a traceback: a malformed node, an unreachable peer, a rejected association,
a refused transfer syntax, a failure status.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from medpipe.association import associate, is_rejection
from medpipe.errors import PresetError, described
from medpipe.syntaxes import row

MAX_CONTEXTS = 128
# PS3.8 Table 9-18: presentation context results
CONTEXT_RESULTS = {1: "user rejection", 2: "no reason", 3: "abstract syntax not supported",
                   4: "transfer syntaxes not supported"}
_NODE = re.compile(r"(?P<aet>[^@]{1,16})@(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class Node:
    aet: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


def parse_node(value: str | Mapping, key: str = "--send") -> Node:
    """'AET@HOST:PORT' (or a preset mapping {aet, host, port}) -> Node; PresetError naming `key` otherwise.
    An AE title is 1-16 characters of the default repertoire without backslash or control characters (PS3.5
    Table 6.2-1, VR AE); the port 1-65535."""
    if isinstance(value, Mapping):
        unknown = set(value) - {"aet", "host", "port"}
        if unknown or not {"aet", "host", "port"} <= set(value):
            raise PresetError(f"{key}: a node needs exactly aet, host and port (got {', '.join(sorted(value))})")
        value = f"{value['aet']}@{value['host']}:{value['port']}"
    text = str(value).strip()
    m = _NODE.fullmatch(text)
    problem = None
    if m is None:
        problem = "expected AET@HOST:PORT"
    elif not m["aet"].strip() or "\\" in m["aet"] or any(ord(c) < 32 or ord(c) > 126 for c in m["aet"]):
        problem = "the AE title must be 1-16 printable characters without backslash"
    elif not 1 <= int(m["port"]) <= 65535:
        problem = "the port must be 1-65535"
    if problem:
        raise PresetError(f"{key} {text!r}: {problem}, e.g. ORTHANC@127.0.0.1:4242")
    return Node(m["aet"].strip(), m["host"].strip("[]"), int(m["port"]))


@dataclass
class FileResult:
    path: Path
    sop_class: str = ""
    transfer_syntax: str = ""
    outcome: str = "failed"  # stored | refused | failed | unreadable | not sent
    status: int | None = None
    detail: str | tuple[str, str] = ""  # for "refused": (what was refused, the peer's stated reason)


@dataclass
class SendReport:
    node: Node
    results: list[FileResult] = field(default_factory=list)
    associations: int = 0  # associations requested (one per 128 presentation contexts)

    @property
    def stored(self) -> int:
        return sum(r.outcome == "stored" for r in self.results)

    @property
    def ok(self) -> bool:
        return all(r.outcome == "stored" for r in self.results)

    def negotiated(self) -> set[tuple[str, str]]:
        """(SOP class, transfer syntax) pairs the peer accepted and stored files in."""
        return {(r.sop_class, r.transfer_syntax) for r in self.results if r.outcome == "stored"}

    def lines(self) -> list[str]:
        """One line per outcome group, e.g. 'ORTHANC@127.0.0.1:4242 refused transfer syntax ... : 28 file(s) not
        sent'."""
        out = []
        if self.stored:
            syntaxes = sorted({syntax_name(r.transfer_syntax) for r in self.results if r.outcome == "stored"})
            out.append(f"{self.node}: {self.stored} file(s) stored ({', '.join(syntaxes)})")
        groups: dict[tuple, list[FileResult]] = defaultdict(list)
        for r in self.results:
            if r.outcome != "stored":
                groups[(r.outcome, r.detail, r.sop_class if r.outcome == "refused" else "")].append(r)
        for (outcome, detail, _), members in groups.items():
            first = members[0]
            if outcome == "refused":
                what, reason = detail
                out.append(f"{self.node} refused {what} for {sop_name(first.sop_class)}: {len(members)} file(s) "
                           f"not sent (its answer: {reason})")
            elif outcome == "unreadable":
                out.append(f"{first.path}: {detail}: not sent")
            else:
                out.append(f"{self.node}: {len(members)} file(s) {outcome}: {detail} (first: {first.path})")
        return out


def syntax_name(uid: str) -> str:
    r = row(uid)
    return r.short if r else _uid_name(uid)


def sop_name(uid: str) -> str:
    return _uid_name(uid)


def _uid_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name != uid else uid


def _read_meta(path: Path) -> FileResult:
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_file_meta_info

    result = FileResult(Path(path))
    try:
        meta = read_file_meta_info(path)
        result.sop_class = str(meta.MediaStorageSOPClassUID)
        result.transfer_syntax = str(meta.TransferSyntaxUID)
        _ = meta.MediaStorageSOPInstanceUID
    except (OSError, InvalidDicomError, AttributeError, ValueError) as exc:
        result.outcome = "unreadable"
        result.detail = f"not a DICOM Part 10 file with File Meta Information ({described(exc)})"
    return result


def send_files(paths: Iterable[Path], node: Node, calling_aet: str = "MEDPIPE", timeout: float = 30
               ) -> SendReport:
    """C-STORE every file to `node` in its own transfer syntax; a report with one outcome per file."""
    # pynetdicom 3.0 registers JPEG XL and Deflated Image Frame with pydicom on import (its own __init__), so
    # presentation contexts for them need nothing from medpipe.
    from pynetdicom import _config

    report = SendReport(node, [_read_meta(p) for p in paths])
    pending = [r for r in report.results if r.outcome != "unreadable"]
    pairs = sorted({(r.sop_class, r.transfer_syntax) for r in pending})
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the dataset bytes from the file, never re-encoded
    try:
        for start in range(0, len(pairs), MAX_CONTEXTS):
            batch = set(pairs[start:start + MAX_CONTEXTS])
            _send_batch([r for r in pending if (r.sop_class, r.transfer_syntax) in batch], sorted(batch),
                        node, calling_aet, timeout)
            report.associations += 1
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked
    return report


def _send_batch(results: list[FileResult], pairs: list[tuple[str, str]], node: Node, calling_aet: str,
                timeout: float) -> None:
    from pynetdicom import AE

    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    for sop_class, transfer_syntax in pairs:
        ae.add_requested_context(sop_class, [transfer_syntax])
    assoc, answer = associate(ae, node.host, node.port, node.aet)
    try:
        # A rejected context's transfer syntax in the A-ASSOCIATE-AC is not significant (PS3.8 9.3.3.2): match
        # it to what was proposed by its presentation context ID.
        proposed = {cx.context_id: (cx.abstract_syntax, cx.transfer_syntax[0])
                    for cx in assoc.requestor.requested_contexts}
        refused = {proposed[cx.context_id]: cx.result for cx in assoc.rejected_contexts
                   if cx.context_id in proposed}
        if not assoc.is_established and not refused:
            _mark(results, "not sent", _association_failure(answer, node))
            return
        for r in results:
            pair = (r.sop_class, r.transfer_syntax)
            if pair in refused:
                # Each context proposes one SOP class with one transfer syntax, so a refusal is of that pair,
                # whatever reason the peer gives (DCMTK-based peers answer "abstract syntax not supported").
                r.outcome = "refused"
                r.detail = (f"transfer syntax {r.transfer_syntax} ({syntax_name(r.transfer_syntax)})",
                            CONTEXT_RESULTS.get(refused[pair], f"result {refused[pair]}"))
            elif not assoc.is_established:
                r.outcome, r.detail = "not sent", "the association was aborted"
            else:
                _store(assoc, r)
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _association_failure(answer, node: Node) -> str:
    if answer is None:  # no A-ASSOCIATE-AC/RJ/ABORT came back: no TCP connection, or silence until the timeout
        return f"no association with {node}: connection refused, unreachable or timed out"
    if is_rejection(answer):  # PS3.8 Table 9-21: result, source and reason of the A-ASSOCIATE-RJ
        return f"{node} rejected the association ({answer.result_str}, {answer.source_str}: {answer.reason_str})"
    return f"{node} aborted the association"


def _mark(results: list[FileResult], outcome: str, detail: str) -> None:
    for r in results:
        r.outcome, r.detail = outcome, detail


def _store(assoc, r: FileResult) -> None:
    try:
        status = assoc.send_c_store(r.path)
    except (OSError, ValueError, AttributeError, RuntimeError) as exc:
        r.outcome, r.detail = "failed", f"could not send ({described(exc)})"
        return
    code = getattr(status, "Status", None)
    r.status = code
    if code is None:
        r.outcome, r.detail = "failed", "no C-STORE response (timeout or association aborted)"
    elif code == 0x0000 or code in (0xB000, 0xB006, 0xB007):  # PS3.4 B.2.3: success and warnings
        r.outcome = "stored"
        r.detail = "" if code == 0 else f"warning status 0x{code:04X}"
    else:
        comment = status.get("ErrorComment", "")
        r.outcome, r.detail = "failed", f"status 0x{code:04X}" + (f" ({comment})" if comment else "")
