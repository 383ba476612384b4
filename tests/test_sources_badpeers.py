"""Bad peers: each gives one line naming the address and what went wrong, and the other inputs go on. Real servers
throughout: Orthanc (tests/pacs.py) where it can misbehave on request (unknown study, wrong AE title, a query that
matches nothing), and a small http.server on 127.0.0.1 for what Orthanc never does (HTML, garbage, 429/503,
401, instances that vanish, a server that does not answer in time)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import pacs
from conftest import ROOT, SAMPLE
from medpipe.errors import InputError
from medpipe.sources import SourceError, fetch_address
from medpipe.sources.settings import SourceSettings
from medpipe.volumes import load_inputs

STUDY, SERIES = "1.2.3.4", "1.2.3.4.5"
SOPS = ("1.2.3.4.5.1", "1.2.3.4.5.2")


def fast(tmp_path, **kw) -> SourceSettings:
    return SourceSettings(cache=tmp_path / "cache", timeout=kw.pop("timeout", 5.0), backoff=0.01, **kw)


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


class Peer:
    """A DICOMweb look-alike answering by rule: {path prefix: callable(handler) -> (status, headers, body)}."""

    def __init__(self, rules):
        self.rules, self.hits = rules, []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                peer.hits.append((path, dict(self.headers)))
                rule = next((r for p, r in peer.rules.items() if path.startswith(p)), None)
                status, headers, body = rule(self) if rule else (404, {}, b"")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def qido(*datasets):
    return lambda h: (200, {"Content-Type": "application/dicom+json"}, json.dumps(list(datasets)).encode())


def instance_json(sop: str) -> dict:
    return {"00080018": {"vr": "UI", "Value": [sop]}, "0020000D": {"vr": "UI", "Value": [STUDY]},
            "0020000E": {"vr": "UI", "Value": [SERIES]}}


def multipart(data: bytes):
    body = b"--XyZ\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--XyZ--\r\n"
    return lambda h: (200, {"Content-Type": 'multipart/related; type="application/dicom"; boundary=XyZ'}, body)


SERIES_PATH = f"/dicom-web/studies/{STUDY}/series/{SERIES}"
LISTING = {f"{SERIES_PATH}/instances/": None, f"{SERIES_PATH}/instances": qido(*map(instance_json, SOPS))}


def test_html_answer(tmp_path):
    html = lambda h: (200, {"Content-Type": "text/html"}, b"<!DOCTYPE html><html>login</html>")  # noqa: E731
    with Peer({"/dicom-web/studies": html}) as url:
        with pytest.raises(SourceError) as exc:
            fetch_address(url, fast(tmp_path), lambda _: None)
    assert "answered text/html, not DICOM JSON" in one_line(exc)


def test_garbage_instead_of_dicom(tmp_path):
    with Peer({**LISTING, f"{SERIES_PATH}/instances/": multipart(b"\x00garbage" * 40)}) as url:
        folders, errors = fetch_address(f"{url}/studies/{STUDY}/series/{SERIES}", fast(tmp_path), lambda _: None)
    assert not folders and len(errors) == 1 and "not DICOM" in errors[0]


def test_instances_that_vanish_mid_read_are_left_out_and_the_rest_is_kept(tmp_path):
    real = sorted(SAMPLE.glob("*.dcm"))[0].read_bytes()
    gone = lambda h: (404, {}, b"")  # noqa: E731
    with Peer({f"{SERIES_PATH}/instances/{SOPS[1]}": gone, f"{SERIES_PATH}/instances/": multipart(real),
               f"{SERIES_PATH}/instances": LISTING[f"{SERIES_PATH}/instances"]}) as url:
        lines: list[str] = []
        folders, errors = fetch_address(f"{url}/studies/{STUDY}/series/{SERIES}", fast(tmp_path), lines.append)
    assert len(folders) == 1 and len(list(folders[0].glob("*.dcm"))) == 1 and not errors
    assert sum(SOPS[1] in line and "gone" in line for line in lines) == 1


def test_429_and_503_are_retried_with_backoff_then_given_up(tmp_path):
    calls = {"n": 0}

    def busy_then_ok(h):
        calls["n"] += 1
        if calls["n"] <= 2:
            return (503 if calls["n"] == 1 else 429), {"Retry-After": "0"}, b""
        return qido(instance_json(SOPS[0]))(h)

    with Peer({"/dicom-web/studies": busy_then_ok}) as url:
        assert fetch_address.__name__  # the listing succeeds on the third attempt
        from medpipe.sources import open_source

        found = list(open_source(f"{url}/studies/{STUDY}/series/{SERIES}", fast(tmp_path), lambda _: None)
                     .instances())
    assert [i.sop_uid for i in found] == [SOPS[0]] and calls["n"] == 3
    with Peer({"/dicom-web/studies": lambda h: (429, {}, b"")}) as url:
        with pytest.raises(SourceError) as exc:
            fetch_address(url, fast(tmp_path, retries=2), lambda _: None)
    assert "HTTP 429, 3 attempt(s)" in one_line(exc)


def test_a_server_that_does_not_answer_in_time(tmp_path):
    def slow(h):
        time.sleep(2)
        return 200, {}, b"[]"

    with Peer({"/dicom-web/studies": slow}) as url:
        t0 = time.monotonic()
        with pytest.raises(SourceError) as exc:
            fetch_address(url, fast(tmp_path, timeout=1.0, retries=1), lambda _: None)
    assert "no answer within 1 s, 2 attempt(s)" in one_line(exc) and time.monotonic() - t0 < 10


def test_401_names_where_credentials_come_from_and_never_shows_them(tmp_path, monkeypatch):
    deny = lambda h: (401, {"WWW-Authenticate": "Basic"}, b"")  # noqa: E731
    with Peer({"/dicom-web/studies": deny}) as url:
        with pytest.raises(SourceError) as exc:
            fetch_address(url, fast(tmp_path), lambda _: None)
        assert "not authorised (HTTP 401)" in one_line(exc) and "MEDPIPE_PACS_USER" in str(exc.value)
        monkeypatch.setenv("MEDPIPE_PACS_USER", "alice")
        monkeypatch.setenv("MEDPIPE_PACS_PASSWORD", "pw-Zq81-secret")
        with pytest.raises(SourceError) as exc:
            fetch_address(url, fast(tmp_path), lambda _: None)
    assert "refused" in one_line(exc) and "pw-Zq81-secret" not in str(exc.value) and "alice" not in str(exc.value)


def test_bearer_token_from_the_environment_is_sent(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDPIPE_PACS_TOKEN", "tok-123")
    peer = Peer({"/dicom-web/studies": qido()})
    with peer as url:
        with pytest.raises(SourceError):
            fetch_address(url, fast(tmp_path), lambda _: None)  # no studies: matched nothing
    assert peer.hits[0][1].get("Authorization") == "Bearer tok-123"


@pytest.mark.parametrize("scheme", ["http", "dicom"])
def test_unknown_host_and_refused_connection(tmp_path, scheme):
    who = "PACS@" if scheme == "dicom" else ""
    root = "" if scheme == "dicom" else "/dicom-web"
    with pytest.raises(SourceError) as exc:
        fetch_address(f"{scheme}://{who}no-such-host.invalid:4242{root}", fast(tmp_path), lambda _: None)
    assert "unknown host" in one_line(exc)
    with pytest.raises(SourceError) as exc:
        fetch_address(f"{scheme}://{who}127.0.0.1:{pacs.free_port()}{root}", fast(tmp_path), lambda _: None)
    assert ("connection refused" if scheme == "http" else "no association") in one_line(exc)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    medpipe = {"AET": "MEDPIPE", "Host": "127.0.0.1", "Port": pacs.free_port(), "AllowFind": True}
    with pacs.orthanc(tmp_path_factory.mktemp("pacs"), ("dicomweb",), {"DicomModalities": {"m": medpipe}}) as server:
        for f in sorted(SAMPLE.glob("*.dcm"))[:2]:
            server.upload(f.read_bytes())
        yield server


def test_unknown_study_query_matching_nothing_wrong_aet(orthanc, tmp_path):
    for address, words in ((f"{orthanc.url}/dicom-web/studies/1.2.3.999", ("study 1.2.3.999 not found",)),
                           (f"{orthanc.url}/dicom-web/studies/1.2.3.999/series/1.2", ("series 1.2 not found",)),
                           (f"{orthanc.url}/no-dicomweb-here", ("no DICOMweb service",)),
                           (f"{orthanc.url}/dicom-web?PatientID=nobody-here", ("matched nothing",)),
                           (f"dicom://{orthanc.node.aet}@127.0.0.1:{orthanc.node.port}?PatientID=nobody-here",
                            ("matched nothing",)),
                           (f"dicom://WRONGAET@127.0.0.1:{orthanc.node.port}", ("association rejected",))):
        with pytest.raises(SourceError) as exc:
            fetch_address(address, fast(tmp_path), lambda _: None)
        assert all(w in one_line(exc) for w in words), (address, str(exc.value))


def test_a_bad_address_among_inputs_is_one_line_and_the_rest_goes_on(orthanc, tmp_path):
    inputs = ["http://h:1/dicom-web/studies/not-a-uid", f"http://127.0.0.1:{pacs.free_port()}/dicom-web",
              orthanc.url + "/dicom-web"]
    volumes, errors = load_inputs(inputs, None, {"pacs": {"cache": str(tmp_path / "cache"), "retries": 0}})
    assert len(volumes) == 1 and len(errors) == 2
    assert "not a DICOM UID" in errors[0] and "connection refused" in errors[1]


@pytest.mark.parametrize("address", ["http://127.0.0.1:{port}/dicom-web", "dicom://X@127.0.0.1:{port}",
                                     "http://h/dicom-web/studies/1.2/series", "http://u:pw@h/dicom-web"])
def test_the_command_line_says_one_line_and_exits_2(tmp_path, address):
    argv = [sys.executable, str(ROOT / "run.py"), str(ROOT / "presets" / "quick.yaml"), "--input",
            address.format(port=pacs.free_port()), "--out", str(tmp_path / "out")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=tmp_path)
    text = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in text, text
    assert "error:" in text and ":pw@" not in text


def test_a_server_that_sends_other_than_it_stores_is_said_and_marked(tmp_path):
    real = sorted(SAMPLE.glob("*.dcm"))[0]  # Explicit VR Little Endian
    listed = {**instance_json(SOPS[0]), "00083002": {"vr": "UI", "Value": ["1.2.840.10008.1.2.4.80"]}}
    with Peer({f"{SERIES_PATH}/instances/": multipart(real.read_bytes()),
               f"{SERIES_PATH}/instances": qido(listed)}) as url:
        lines: list[str] = []

        class Console:
            def print(self, text, **kw):
                lines.append(text)

        (vol,), errors = load_inputs([f"{url}/studies/{STUDY}/series/{SERIES}"], Console(),
                                     {"pacs": {"cache": str(tmp_path / "cache")}})
    assert vol.source_transcoded == ("1 of 1 instance(s) sent in 1.2.840.10008.1.2.1 though stored in "
                                     "1.2.840.10008.1.2.4.80")
    assert sum("transcoded source" in line for line in lines) == 2  # the source's line, the volume's line
    from medpipe.codecs import parse_codec
    from medpipe.matrix.cell import new_row

    assert new_row(vol, parse_codec({"codec": "jpegls"}, "t")).source_transcoded == vol.source_transcoded


def test_paged_listing_and_at_most_n_requests_in_flight(tmp_path, monkeypatch):
    """QIDO-RS is read page by page (limit/offset); retrieval never has more than `requests` in flight."""
    import medpipe.sources.dicomweb as dw

    monkeypatch.setattr(dw, "PAGE", 3)
    sops = [f"1.2.3.4.5.{i}" for i in range(1, 9)]
    real = sorted(SAMPLE.glob("*.dcm"))[0].read_bytes()
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def page(h):
        from urllib.parse import parse_qs, urlsplit

        q = parse_qs(urlsplit(h.path).query)
        start, limit = int(q["offset"][0]), int(q["limit"][0])
        return qido(*map(instance_json, sops[start:start + limit]))(h)

    def wado(h):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return multipart(real)(h)

    peer = Peer({f"{SERIES_PATH}/instances/": wado, f"{SERIES_PATH}/instances": page})
    with peer as url:
        from medpipe.sources import open_source

        source = open_source(f"{url}/studies/{STUDY}/series/{SERIES}", fast(tmp_path, requests=2), lambda _: None)
        (study, series, found), = source.series_list()
        assert [i.sop_uid for i in found] == sops
        source.fetch_series(study, series, tmp_path / "s", instances=found)
    assert sum(p.endswith("/instances") for p, _ in peer.hits) == 3  # pages of 3, 3, 2
    assert state["most"] == 2


def self_signed(tmp_path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_is_verified_unless_insecure_which_is_said_once(tmp_path):
    import ssl

    import medpipe.sources.http as http
    from medpipe.sources import open_source

    cert, key = self_signed(tmp_path)
    peer = Peer({"/dicom-web/studies": qido(instance_json(SOPS[0]))})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    peer.server.socket = context.wrap_socket(peer.server.socket, server_side=True)
    with peer as url:
        url = url.replace("http://", "https://") + f"/studies/{STUDY}/series/{SERIES}"
        with pytest.raises(SourceError) as exc:
            list(open_source(url, fast(tmp_path), lambda _: None).instances())
        assert "TLS certificate not verified" in one_line(exc) and "--insecure" in str(exc.value)
        http._warned_insecure.discard("127.0.0.1")
        lines: list[str] = []
        for _ in range(2):
            found = list(open_source(url, fast(tmp_path, insecure=True), lines.append).instances())
            assert [i.sop_uid for i in found] == [SOPS[0]]
    assert lines == ["127.0.0.1: TLS certificates are NOT verified (--insecure)"]


def test_a_peer_failing_part_way_through_the_listing_keeps_what_was_read(tmp_path):
    real = sorted(SAMPLE.glob("*.dcm"))[0].read_bytes()
    study = {"0020000D": {"vr": "UI", "Value": [STUDY]}}
    other = {"0020000D": {"vr": "UI", "Value": ["1.2.3.9"]}}
    with Peer({f"{SERIES_PATH}/instances/": multipart(real),
               f"{SERIES_PATH}/instances": qido(instance_json(SOPS[0])),
               f"/dicom-web/studies/{STUDY}/series": qido({"0020000E": {"vr": "UI", "Value": [SERIES]}}),
               "/dicom-web/studies/1.2.3.9/series": lambda h: (500, {"Content-Type": "text/plain"}, b"oops"),
               "/dicom-web/studies": qido(study, other)}) as url:
        lines: list[str] = []
        folders, errors = fetch_address(url, fast(tmp_path), lines.append)
    assert len(folders) == 1 and len(errors) == 1
    assert "study 1.2.3.9 answered HTTP 500" in errors[0] and "the rest not read" in errors[0]
