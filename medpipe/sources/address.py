"""PACS addresses: ``http(s)://HOST[:PORT]/ROOT[/studies/UID[/series/UID]][?KEY=VALUE...]`` (DICOMweb) and
``dicom://AET@HOST[:PORT][/studies/UID[/series/UID]][?KEY=VALUE...]`` (DIMSE). A malformed address is one line
naming what is wrong; credentials in an address are refused (they would land in shell history, logs and results),
and no message ever repeats them."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from pydicom.datadict import keyword_for_tag, tag_for_keyword

from ..errors import InputError

SCHEMES = {"http": 80, "https": 443, "dicom": 104}
_ADDRESS = re.compile(r"^(https?|dicom)://", re.I)
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_AET = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")  # PS3.5 VR AE: default repertoire, no backslash
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253}")


def is_address(text) -> bool:
    """True when ``text`` is a PACS address (http://, https://, dicom://) rather than a path."""
    return isinstance(text, str) and bool(_ADDRESS.match(text.strip()))


@dataclass(frozen=True)
class Address:
    scheme: str  # http, https or dicom
    host: str
    port: int
    root: str = ""  # DICOMweb service root ("/dicom-web"); "" for DIMSE
    aet: str = ""  # the peer's AE title (DIMSE)
    study: str | None = None
    series: str | None = None
    query: tuple[tuple[str, str], ...] = ()  # matching keys as keywords, e.g. (("ModalitiesInStudy", "CT"),)

    @property
    def dimse(self) -> bool:
        return self.scheme == "dicom"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.root}"

    @property
    def label(self) -> str:
        """The address as given, without credentials: safe in messages, logs and results."""
        who = f"{self.aet}@" if self.dimse else ""
        path = f"/studies/{self.study}" if self.study else ""
        path += f"/series/{self.series}" if self.series else ""
        query = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{self.scheme}://{who}{self.host}:{self.port}{self.root}{path}" + (f"?{query}" if query else "")

    @property
    def key(self) -> str:
        """A short stable name for the server (not the study or query): its cache folder."""
        server = f"{self.scheme}://{self.aet}@{self.host}:{self.port}{self.root}"
        return f"{self.host}-{self.port}-" + hashlib.sha256(server.encode()).hexdigest()[:10]


def _bad(shown: str, why: str) -> InputError:
    return InputError(f"{shown}: not a PACS address ({why}); give http(s)://HOST:PORT/ROOT or "
                      "dicom://AET@HOST:PORT, optionally followed by /studies/UID, /series/UID and ?Key=value")


def _path_parts(path: str, shown: str) -> tuple[str, str | None, str | None]:
    """'/dicom-web/studies/1.2/series/3.4' -> ('/dicom-web', '1.2', '3.4')."""
    parts = [unquote(p) for p in path.split("/") if p]
    if "studies" not in parts:
        return ("/" + "/".join(parts)) if parts else "", None, None
    i = parts.index("studies")
    rest = parts[i + 1:]
    root = ("/" + "/".join(parts[:i])) if i else ""
    if not rest or (len(rest) not in (1, 3)) or (len(rest) == 3 and rest[1] != "series"):
        raise _bad(shown, "after the root comes /studies/UID or /studies/UID/series/UID")
    for uid in (rest[0], rest[2] if len(rest) == 3 else "0"):
        if len(uid) > 64 or not _UID.fullmatch(uid):
            raise _bad(shown, f"{uid[:70]!r} is not a DICOM UID")
    return root, rest[0], (rest[2] if len(rest) == 3 else None)


def _query(text: str, shown: str) -> tuple[tuple[str, str], ...]:
    """QIDO-RS / C-FIND matching keys: DICOM keywords (StudyDate) or tags (00080020), each once."""
    out = []
    for key, value in parse_qsl(text, keep_blank_values=True):
        if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
            keyword = keyword_for_tag(int(key, 16))
        else:
            keyword = key if tag_for_keyword(key) is not None else ""
        if not keyword:
            raise _bad(shown, f"query key {key[:40]!r} is not a DICOM keyword or tag (e.g. ModalitiesInStudy, "
                       "StudyDate, 00080060)")
        if any(k == keyword for k, _ in out):
            raise _bad(shown, f"query key {keyword} given twice")
        out.append((keyword, value))
    return tuple(out)


def parse_address(text: str) -> Address:
    """The address -> Address; InputError (one line, credentials never echoed) when it is malformed."""
    text = str(text).strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _bad(_shown(text), str(exc)) from None
    shown = _shown(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise _bad(shown, f"scheme {scheme!r}")
    host = parts.hostname or ""
    if not host or not _HOST.fullmatch(host if ":" not in host else f"[{host}]"):
        raise _bad(shown, "no host")
    if parts.fragment:
        raise _bad(shown, "a '#' fragment")
    aet = ""
    if scheme == "dicom":
        if parts.password is not None or not parts.username:
            raise _bad(shown, "a DIMSE address names the peer's AE title: dicom://AET@HOST:PORT")
        aet = unquote(parts.username)
        if not _AET.fullmatch(aet) or not aet.strip():
            raise _bad(shown, f"AE title {aet[:20]!r} is 1-16 characters, no backslash or control character")
    elif parts.username is not None or parts.password is not None:
        raise _bad(shown, "credentials in the address are refused; set MEDPIPE_PACS_USER and "
                          "MEDPIPE_PACS_PASSWORD (or MEDPIPE_PACS_TOKEN), or use a netrc file")
    root, study, series = _path_parts(parts.path, shown)
    if scheme == "dicom" and root:
        raise _bad(shown, f"a DIMSE address has no service root ({root!r}); only /studies/UID[/series/UID]")
    return Address(scheme, host, port or SCHEMES[scheme], root, aet.strip(), study, series,
                   _query(parts.query, shown))


def _shown(text: str) -> str:
    """The address for a message: any 'user:password@' of an http(s) address replaced by '***@'."""
    if text.lower().startswith("dicom://"):
        return text[:300]
    return re.sub(r"^([A-Za-z]+://)[^/@]*@", r"\1***@", text)[:300]
