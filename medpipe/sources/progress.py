"""One progress line, on a terminal and in logs alike, at most every few seconds: studies, series and instances
found, instances and bytes fetched, the rate, and the time left at that rate."""
from __future__ import annotations

import threading
import time


class Progress:
    def __init__(self, label: str, say=print, every: float = 5.0):
        self.label, self.say, self.every = label, say, every
        self.studies = self.series = self.found = 0
        self.fetched = self.cached = self.bytes = 0
        self.t0 = time.monotonic()
        self._last = self.t0
        self._lock = threading.Lock()

    def add(self, n: int = 1, nbytes: int = 0, cached: bool = False) -> None:
        with self._lock:
            if cached:
                self.cached += n
            else:
                self.fetched += n
                self.bytes += nbytes
            now = time.monotonic()
            if now - self._last >= self.every:
                self._last = now
                self.say(self.line())

    def line(self, final: bool = False) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        done = self.fetched + self.cached
        rate = self.bytes / elapsed / 2**20
        text = (f"{self.label}: {self.studies} stud{'y' if self.studies == 1 else 'ies'}, {self.series} series, "
                f"{self.found} instances found; {self.fetched} fetched ({self.bytes / 2**20:.1f} MiB, "
                f"{rate:.1f} MiB/s)" + (f", {self.cached} already cached" if self.cached else ""))
        if final:
            return text + f" in {elapsed:.1f} s"
        left = self.found - done
        if self.fetched and left > 0:
            text += f", about {left * elapsed / max(self.fetched, 1):.0f} s left"
        return text
