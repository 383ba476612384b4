"""HTTP for DICOMweb, polite and bounded: every request has a time limit, at most N are in flight, a timeout, 429
or 503 is retried with backoff (honouring Retry-After), and every failure becomes one line naming the server (never
its credentials). Plain ``requests`` rather than dicomweb-client: that client parses every answer into pydicom
datasets and checks transfer syntaxes against its own list (it refuses some, e.g. JPEG XL), while medpipe must keep
the stored bytes as they come."""
from __future__ import annotations

import json
import threading
import time

import requests

from . import SourceError
from .address import Address
from .credentials import http_auth
from .settings import SourceSettings

RETRY_STATUS = (429, 503)
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
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # said once, above
        self.slots = threading.BoundedSemaphore(settings.requests)
        self.bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str, params: dict | list | None = None, accept: str = "application/dicom+json",
            what: str = "") -> requests.Response | None:
        """GET base_url + path; the answer (status 200/204), None for 404; SourceError for anything else."""
        url = self.address.base_url + path
        what = what or path
        for attempt in range(self.settings.retries + 1):
            wait = self.settings.backoff * 2 ** attempt
            try:
                with self.slots:
                    answer = self.session.get(url, params=params, headers={"Accept": accept},
                                              timeout=self.settings.timeout)
                    answer.content  # read the body inside the slot: a slot is a request in flight
            except requests.exceptions.Timeout:
                why = f"no answer within {self.settings.timeout:g} s"
            except requests.exceptions.SSLError as exc:
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    raise SourceError(f"{self._label()}: TLS certificate not verified; fix the certificate (or "
                                      "pass --insecure)") from None
                raise SourceError(f"{self._label()}: TLS handshake failed (is it https at this port?)") from None
            except requests.exceptions.ConnectionError as exc:
                raise SourceError(f"{self._label()}: cannot connect ({_reason(exc)})") from None
            except requests.exceptions.RequestException as exc:
                raise SourceError(f"{self._label()}: request failed ({type(exc).__name__})") from None
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


def _snippet(answer: requests.Response) -> str:
    kind = answer.headers.get("Content-Type", "").split(";")[0]
    return f" ({kind})" if kind else ""


def _retry_after(answer: requests.Response) -> float:
    try:
        return float(answer.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0
