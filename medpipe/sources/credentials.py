"""Credentials for a DICOMweb server, from the environment or a netrc file only (never the command line or a
preset, which end up in shell history, results and provenance). Nothing here is ever printed or logged."""
from __future__ import annotations

import netrc
import os
from pathlib import Path

TOKEN = "MEDPIPE_PACS_TOKEN"  # a bearer token
USER, PASSWORD = "MEDPIPE_PACS_USER", "MEDPIPE_PACS_PASSWORD"  # HTTP basic


def http_auth(host: str) -> tuple[dict, tuple[str, str] | None, str]:
    """(extra headers, basic-auth pair or None, where they came from: 'env', 'netrc' or '') for ``host``."""
    token = os.environ.get(TOKEN)
    if token:
        return {"Authorization": f"Bearer {token}"}, None, "env"
    user = os.environ.get(USER)
    if user:
        return {}, (user, os.environ.get(PASSWORD, "")), "env"
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        found = netrc.netrc(str(path)).authenticators(host) if path.is_file() else None
    except (OSError, netrc.NetrcParseError):
        found = None  # an unreadable netrc gives no credentials; the server's 401 then says what to do
    if found and found[0]:
        return {}, (found[0], found[2] or ""), "netrc"
    return {}, None, ""
