"""A DICOMweb peer cannot make medpipe wait or allocate without bound: an answer that trickles is cut off once the
time limit has passed, one that never ends (or inflates without end) is refused at the size one answer may take,
and a declared size beyond it is refused before a byte of the body is read. A real http.server on 127.0.0.1 sends
each answer; no mock of the client."""
from __future__ import annotations

import gzip
import json
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medpipe import sources
from medpipe.sources import SourceError, fetch_address, http
from medpipe.sources.settings import SourceSettings
from test_sources_badpeers import SERIES, SOPS, STUDY, Peer, instance_json, one_line

MiB = 1 << 20


class Streamer(Peer):  # Peer's start and stop; answers of its own
    """An HTTP/1.1 peer whose answers are generators of body pieces: {path prefix: (headers, pieces())}; a body
    without Content-Length goes out chunked."""

    def __init__(self, rules):
        self.rules, self.sent = rules, 0
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                headers, pieces = next((r for p, r in peer.rules.items() if path.startswith(p)), ({}, None))
                if pieces is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                chunked = "Content-Length" not in headers
                for k, v in {**headers, **({"Transfer-Encoding": "chunked"} if chunked else {})}.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    for piece in pieces():
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                        self.wfile.flush()
                        peer.sent += len(piece)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client hung up: what these tests want
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


def settings(tmp_path, timeout=1.0, retries=0) -> SourceSettings:
    return SourceSettings(cache=tmp_path / "cache", timeout=timeout, retries=retries, backoff=0.01)


def trickle():
    while True:  # a byte every 0.2 s: each read is well inside the time limit, the whole never ends
        yield b" "
        time.sleep(0.2)


def endless():
    piece = b"[" + b" " * (MiB - 1)
    while True:
        yield piece


JSON = {"Content-Type": "application/dicom+json"}


def test_an_answer_that_trickles_is_cut_off_after_the_time_limit(tmp_path):
    rule = ({**JSON, "Content-Length": "100000"}, trickle)
    with Streamer({"/dicom-web/studies": rule}) as url:
        t0 = time.monotonic()
        with pytest.raises(SourceError) as exc:
            fetch_address(url, settings(tmp_path, timeout=1.0, retries=1), lambda _: None)
    took = time.monotonic() - t0
    msg = one_line(exc)
    assert "study query: stalled" in msg and "KiB/s after 1 s" in msg and "2 attempt(s)" in msg, msg
    assert took < 8, took  # two tries of about 1 s each, not the 5.5 hours the trickle would take


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_an_answer_without_end_is_refused_at_the_limit_with_bounded_memory(tmp_path, monkeypatch, encoding):
    monkeypatch.setattr(http, "JSON_LIMIT", 8 * MiB)
    if encoding == "gzip":  # 1 GiB of JSON in about 1 MB on the wire: the limit counts what it inflates to
        bomb = gzip.compress(b"[" + b" " * (1 << 30), compresslevel=9)
        rule = ({**JSON, "Content-Encoding": "gzip"}, lambda: (bomb[i:i + MiB] for i in range(0, len(bomb), MiB)))
    else:
        rule = (JSON, endless)
    with Streamer({"/dicom-web/studies": rule}) as url:
        tracemalloc.start()
        try:
            with pytest.raises(SourceError) as exc:
                fetch_address(url, settings(tmp_path, timeout=30.0), lambda _: None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert "study query is over the 8 MiB one answer may take here; refused" in one_line(exc)
    assert peak < 40 * MiB, peak


def test_an_instance_declaring_more_than_memory_allows_is_refused_before_its_body(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "free_memory", lambda: 200 * MiB)  # 4 requests in flight: 20 MiB an instance
    assert sources.instance_limit(4) == 20 * MiB
    huge = ({"Content-Type": "application/dicom", "Content-Length": str(1 << 40)}, endless)
    listing = {f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances": [instance_json(SOPS[0])],
               f"/dicom-web/studies/{STUDY}/series": [{"0020000E": {"vr": "UI", "Value": [SERIES]}}],
               "/dicom-web/studies": [{"0020000D": {"vr": "UI", "Value": [STUDY]}}]}
    peer = Streamer({f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/": huge,
                     **{path: (JSON, lambda d=d: iter([json.dumps(d).encode()])) for path, d in listing.items()}})
    with peer as url:
        folders, errors = fetch_address(url, settings(tmp_path, timeout=30.0), lambda _: None)
    assert folders == [] and len(errors) == 1, errors
    assert f"instance {SOPS[0]} is 1,048,576 MiB, more than the 20 MiB one answer may take here" in errors[0]
    assert peer.sent < 20 * MiB, peer.sent  # what the sockets buffered before medpipe hung up, not the body


def halfway(pause: float):
    def pieces():
        yield b"[" + b" " * 1000
        time.sleep(pause)  # then nothing more: silence (pause > 0), or a close short of Content-Length
    return pieces


@pytest.mark.parametrize("pause,expected", [(3.0, "study query: no answer within 1 s, 2 attempt(s)"),
                                            (0.0, "study query: the answer was cut short (the connection closed "
                                                  "before its end), 2 attempt(s)")])
def test_a_body_that_stops_halfway_is_one_line(tmp_path, pause, expected):
    close = {} if pause else {"Connection": "close"}  # http.server then closes the socket after the handler
    rule = ({**JSON, "Content-Length": "100000", **close}, halfway(pause))
    with Streamer({"/dicom-web/studies": rule}) as url:
        with pytest.raises(SourceError) as exc:
            fetch_address(url, settings(tmp_path, timeout=1.0, retries=1), lambda _: None)
    assert expected in one_line(exc)


@pytest.mark.parametrize("method", ["C-GET", "C-MOVE"])
def test_a_dimse_instance_over_the_limit_aborts_its_association_in_one_line(tmp_path, monkeypatch, method):
    """pynetdicom gathers a DIMSE message in memory whatever its size: medpipe counts the PDUs of the message in
    progress and aborts past the limit. A real Orthanc sends a real 32 MiB instance; medpipe may take 16 here."""
    import numpy as np
    import pydicom

    import pacs
    from conftest import SAMPLE

    ds = pydicom.dcmread(sorted(SAMPLE.glob("*.dcm"))[0])
    ds.Rows = ds.Columns = 4096
    ds.PixelData = np.random.default_rng(1).integers(0, 4096, (4096, 4096), dtype=np.uint16).tobytes()
    path = tmp_path / "big.dcm"
    ds.save_as(path)
    port = pacs.free_port()
    modality = {"medpipe": {"AET": "MEDPIPE", "Host": "127.0.0.1", "Port": port, "AllowGet": method == "C-GET",
                            "AllowMove": True, "AllowFind": True, "AllowStore": False}}
    monkeypatch.setattr(sources, "free_memory", lambda: 100 * MiB)  # 4 associations: the 16 MiB floor
    with pacs.orthanc(tmp_path / "pacs", (), {"DicomModalities": modality}) as server:
        server.upload(path.read_bytes())
        address = f"dicom://{server.node.aet}@127.0.0.1:{server.node.port}"
        tracemalloc.start()
        try:
            folders, errors = fetch_address(address, SourceSettings(cache=tmp_path / "cache", port=port,
                                                                    timeout=30.0), lambda _: None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(server.instances()) == 1  # read-only towards the source
    assert folders == [] and len(errors) == 1, errors
    assert "an instance is over the 16 MiB one answer may take here; its association was aborted" in errors[0]
    assert peak < 28 * MiB, peak  # the 32 MiB instance was never gathered whole
