"""How medpipe talks to a PACS, as data (one schema, checked like every other preset section): the preset key
``pacs:`` and the run's --aet, --port, --insecure, --pacs-requests."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..options import Option, check_section

SOURCE_OPTIONS: dict[str, Option] = {
    "aet": Option(str, "MEDPIPE", "medpipe's own AE title towards a DIMSE peer (C-FIND, C-GET, C-MOVE)"),
    "port": Option(int, 11112, "port of the storage SCP medpipe runs for C-MOVE (when the peer refuses C-GET); "
                   "the peer must know medpipe's AE title at this port", range=(1, 65535)),
    "requests": Option(int, 4, "at most this many requests (or DIMSE associations) in flight at once",
                       range=(1, 64)),
    "timeout": Option(float, 60.0, "seconds allowed for each request or DIMSE exchange (after them, a DICOMweb "
                      "body must keep coming at 256 KiB/s or more)", range=(1.0, 3600.0)),
    "retries": Option(int, 3, "retries of a request that timed out or was answered 429/503 (with backoff)",
                      range=(0, 10)),
    "insecure": Option(bool, False, "do not verify TLS certificates (https); said once when used"),
    "cache": Option(str, None, "folder for retrieved instances (default: .medpipe-cache under the output folder)"),
}


@dataclass(frozen=True)
class SourceSettings:
    aet: str = "MEDPIPE"
    port: int = 11112
    requests: int = 4
    timeout: float = 60.0
    retries: int = 3
    insecure: bool = False
    cache: Path = Path(".medpipe-cache")
    backoff: float = 1.0  # seconds before the first retry; doubled for each further one


def source_settings(data: dict | None, where: str = "pacs", default_cache: Path | None = None) -> SourceSettings:
    """A ``pacs:`` mapping (possibly partial or None) -> SourceSettings; PresetError naming the key if bad."""
    opts = check_section(dict(data or {}), SOURCE_OPTIONS, where)
    cache = Path(opts["cache"]) if opts["cache"] else (default_cache or Path(".medpipe-cache"))
    return SourceSettings(aet=opts["aet"], port=opts["port"], requests=opts["requests"], timeout=opts["timeout"],
                          retries=opts["retries"], insecure=opts["insecure"], cache=cache)
