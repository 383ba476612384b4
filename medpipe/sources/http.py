"""HTTP for DICOMweb, polite and bounded: at most N requests are in flight, each has a time limit, 429 or 503 is
retried with backoff (honouring Retry-After), and every failure becomes one line naming the server (never its
credentials). Bounded against the peer too: an answer is read in pieces, no bigger than the memory this run can give
it, and no slower than MIN_RATE once the time limit has passed (a per-read timeout alone lets a peer that sends a byte
a second hold a request open for ever). Plain ``requests`` rather than dicomweb-client: that client parses every answer into pydicom
datasets and checks transfer syntaxes against its own list (it refuses some, e.g. JPEG XL), while medpipe must keep
the stored bytes as they come."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import NamedTuple

import requests
import urllib3

from . import SourceError
from .address import Address
from .credentials import http_auth
from .settings import SourceSettings

RETRY_STATUS = (429, 503)
JSON_LIMIT = 256 << 20  # one QIDO-RS page (dicomweb.PAGE datasets) is a few MB; a JSON answer beyond this is refused
ERROR_LIMIT = 64 << 10  # of an answer that is an error, only the headers are used
MIN_RATE = 256 << 10  # bytes a second (2 Mbit/s) a body must average once the time limit has passed
PIECE = 1 << 20
_warned_insecure: set[str] = set()


class Http:
    def __init__(self, address: Address, settings: SourceSettings, say=print):
        self.address, self.settings, self.say = address, settings, say
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc lookups behind our back: credentials are ours to pick
        headers, basic, self.auth_from = http_auth(address.host)
        self.session.headers.update({"User-Agent": "medpipe", **headers})
        self.session.auth = basic
        self.session.verify = not settings.insecure
        if settings.insecure and address.scheme == "https" and address.host not in _warned_insecure:
            _warned_insecure.add(address.host)
            say(f"{address.host}: TLS certificates are NOT verified (--insecure)")
        if settings.insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # said once, above
        self.slots = threading.BoundedSemaphore(settings.requests)
        self.bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str, params: dict | list | None = None, accept: str = "application/dicom+json",
            what: str = "", limit: int | None = None) -> Answer | None:
        """GET base_url + path; the answer (status 200/204/206, a body of at most ``limit`` bytes, JSON_LIMIT
        when not given), None for 404; SourceError for anything else."""
        url = self.address.base_url + path
        what = what or path
        for attempt in range(self.settings.retries + 1):
            wait = self.settings.backoff * 2 ** attempt
            try:
                with self.slots:  # the body is read inside the slot: a slot is a request in flight
                    answer = self._request(url, params, accept, what, limit or JSON_LIMIT)
            except requests.exceptions.Timeout:
                why = f"no answer within {self.settings.timeout:g} s"
            except Stalled as exc:
                why = str(exc)
            except requests.exceptions.ChunkedEncodingError:
                why = "the answer was cut short (the connection closed before its end)"
            except requests.exceptions.SSLError as exc:
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    raise SourceError(f"{self._label()}: TLS certificate not verified; fix the certificate (or "
                                      "pass --insecure)") from None
                raise SourceError(f"{self._label()}: TLS handshake failed (is it https at this port?)") from None
            except requests.exceptions.ConnectionError as exc:
                raise SourceError(f"{self._label()}: cannot connect ({_reason(exc)})") from None
            except requests.exceptions.RequestException as exc:
                raise SourceError(f"{self._label()}: {what}: request failed ({type(exc).__name__})") from None
            else:
                with self._lock:
                    self.bytes += len(answer.content)
                if answer.status_code in (200, 204, 206):
                    return answer
                if answer.status_code == 404:
                    return None
                if answer.status_code in (401, 403):
                    how = f"the credentials from {self.auth_from} were refused" if self.auth_from else (
                        "set MEDPIPE_PACS_USER and MEDPIPE_PACS_PASSWORD (or MEDPIPE_PACS_TOKEN), or a netrc entry")
                    raise SourceError(f"{self._label()}: not authorised (HTTP {answer.status_code}); {how}")
                if answer.status_code not in RETRY_STATUS:
                    raise SourceError(f"{self._label()}: {what} answered HTTP {answer.status_code}"
                                      f"{_snippet(answer)}")
                why = f"HTTP {answer.status_code}"
                wait = max(wait, _retry_after(answer))
            if attempt < self.settings.retries:
                time.sleep(min(wait, 60.0))
        raise SourceError(f"{self._label()}: {what}: {why}, {self.settings.retries + 1} attempt(s); try later or "
                          "raise the timeout")

    def _request(self, url: str, params, accept: str, what: str, limit: int) -> Answer:
        start = time.monotonic()
        with self.session.get(url, params=params, headers={"Accept": accept}, timeout=self.settings.timeout,
                              stream=True) as answer:
            ok = answer.status_code in (200, 204, 206)
            body = self._body(answer, limit if ok else ERROR_LIMIT, start, what, strict=ok)
            return Answer(answer.status_code, answer.headers, body)

    def _body(self, answer: requests.Response, limit: int, start: float, what: str, strict: bool) -> bytes:
        """The body, read a piece at a time (read1: what has arrived, so a trickle cannot block one read for
        ever); SourceError past ``limit`` (when strict; otherwise it is cut there), Stalled when it comes slower
        than MIN_RATE after the time limit."""
        declared = answer.headers.get("Content-Length", "")
        if strict and declared.isdigit() and int(declared) > limit:
            raise SourceError(self._too_large(what, f"{int(declared) / 2**20:,.0f} MiB, more than", limit))
        pieces, got = [], 0
        while True:
            piece = _read1(answer.raw)
            if not piece:
                return b"".join(pieces)
            got += len(piece)
            if got > limit:
                if strict:
                    raise SourceError(self._too_large(what, "over", limit))
                pieces.append(piece[:limit - got + len(piece)])
                return b"".join(pieces)
            pieces.append(piece)
            took = time.monotonic() - start
            if took > self.settings.timeout + got / MIN_RATE:
                raise Stalled(f"stalled ({got:,} bytes in {took:.0f} s, under {MIN_RATE >> 10} KiB/s after "
                              f"{self.settings.timeout:g} s)")

    def _too_large(self, what: str, size: str, limit: int) -> str:
        return f"{self._label()}: {what} is {size} the {limit / 2**20:,.0f} MiB one answer may take here; refused"

    def get_json(self, path: str, params=None, what: str = "") -> list | None:
        """A QIDO-RS answer: a JSON array of datasets ([] for 204 No Content), None for 404."""
        answer = self.get(path, params, "application/dicom+json, application/json", what)
        if answer is None:
            return None
        if answer.status_code == 204 or not answer.content.strip():
            return []
        try:
            data = json.loads(answer.content)
        except ValueError:
            kind = answer.headers.get("Content-Type", "no content type").split(";")[0]
            raise SourceError(f"{self._label()}: {what or path} answered {kind}, not DICOM JSON; is "
                              f"{self.address.base_url} the DICOMweb service root?") from None
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise SourceError(f"{self._label()}: {what or path} answered JSON that is not a list of datasets")
        return data

    def _label(self) -> str:
        return self.address.label


def _read1(raw) -> bytes:
    """What has arrived of the body (up to PIECE, inflated); urllib3's errors as requests' (as iter_content
    would give them), a body that stops coming as a timeout (retried)."""
    try:
        return raw.read1(PIECE, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError:
        raise requests.exceptions.Timeout() from None
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from None
    except urllib3.exceptions.HTTPError as exc:
        raise requests.exceptions.RequestException(exc) from None


class Answer(NamedTuple):
    status_code: int
    headers: Mapping[str, str]
    content: bytes


class Stalled(Exception):
    """A body that came slower than MIN_RATE: retried like a timeout."""


def _reason(exc: Exception) -> str:
    """The root cause of a connection failure, in a few words (no URL, which requests repeats at length)."""
    text = str(exc)
    for marker, words in (("Name or service not known", "unknown host"), ("nodename nor servname", "unknown host"),
                          ("getaddrinfo failed", "unknown host"), ("Temporary failure in name resolution",
                                                                   "unknown host"),
                          ("Connection refused", "connection refused"), ("CERTIFICATE_VERIFY_FAILED",
                                                                          "certificate verify failed"),
                          ("timed out", "timed out"), ("RemoteDisconnected", "the server closed the connection")):
        if marker in text:
            return words
    return type(exc).__name__


def _snippet(answer: Answer) -> str:
    kind = answer.headers.get("Content-Type", "").split(";")[0]
    return f" ({kind})" if kind else ""


def _retry_after(answer: Answer) -> float:
    try:
        return float(answer.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0
