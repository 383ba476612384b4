"""The result store behind ``--resume``: ``cells.jsonl`` in the results folder, one JSON line per finished cell.

Appended by the client only, one write per line, flushed to disk before the next cell is counted done, so a crash
loses at most the cells in flight; a torn last line is ignored on reading. A failed append (disk full) raises one
OutputError line and leaves the store readable: ``--resume`` continues from what it holds.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..files import make_dirs, os_error

STORE = "cells.jsonl"


class ResultStore:
    """``cells.jsonl``: one JSON object per line, ``{"cell_id", "volume", "label", "settings", "session",
    "executor", "jobs", "peak_rss_mb", "cell_s", "commands", "row"}``. Appended by the client only, one write
    per line, flushed to disk before the next cell is counted done; a torn last line (a crash mid-write) is
    ignored on reading."""

    def __init__(self, folder: Path, settings: dict):
        self.path = Path(folder) / STORE
        self.settings = settings

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        with open(self.path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # the line being written when the run stopped
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("cell_id") and isinstance(rec.get("row"), dict):
                    out.append(rec)
        return out

    def done(self) -> dict[str, dict]:
        """cell_id -> the last record of each cell that needs no rerun (ok or skipped, same settings)."""
        out = {}
        for rec in self.records():
            if rec.get("settings") != self.settings:
                continue
            if rec["row"].get("status") in ("ok", "skipped"):
                out[rec["cell_id"]] = rec
            else:
                out.pop(rec["cell_id"], None)  # a later failure replaces an earlier success
        return out

    def append(self, record: dict) -> None:
        line = (json.dumps(record, default=str, allow_nan=True) + "\n").encode()
        make_dirs(self.path.parent)
        if self.path.is_file() and self.path.stat().st_size:  # a torn last line (crash): this record starts anew
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
            try:
                written = os.write(fd, line)  # one write of the whole line: O_APPEND never interleaves it
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise os_error(exc, self.path, "record the finished cell") from None
        if written != len(line):  # a short write is a torn line: the reader ignores it, resume reruns the cell
            raise os_error(OSError(28, "short write (disk full?)"), self.path, "record the finished cell")


def find_resume_folder(output: Path, name: str) -> Path | None:
    """The newest ``<output>/<name>-<YYYYmmdd-HHMMSS>[-n]`` folder holding a result store, or None."""
    pattern = re.compile(re.escape(name) + r"-(\d{8}-\d{6})(?:-(\d+))?$")
    found = []
    if Path(output).is_dir():
        for p in Path(output).iterdir():
            m = pattern.match(p.name)
            if m and (p / STORE).is_file():
                found.append((m.group(1), int(m.group(2) or 1), p))
    return max(found)[2] if found else None
