"""Ctrl-C as one decision, whichever process sees it first.

A terminal's Ctrl-C goes to its whole foreground process group. Children (ffmpeg) therefore run in a process group
of their own (see :mod:`medpipe.ffmpeg`): only medpipe's own processes receive SIGINT, and they stop the children.
SIGINT sets a process-wide flag before it raises KeyboardInterrupt, so even an interrupt that Python swallows
(raised inside a finaliser, say) is not lost: the ffmpeg runner, the executors and the CLI look at the flag, and a
child that exits while it is set (or that says it was stopped by a signal) never counts as a codec failure.
A second SIGINT (from the terminal, after ffmpeg saw the first) does not interrupt the clean-up.
"""
from __future__ import annotations

import signal
import threading

_RECEIVED = threading.Event()
_REPEATS = [0]  # SIGINTs after the first: ignored while the run unwinds (removing its temporary streams) ...
INSIST = 3  # ... unless the user insists


def install() -> None:
    """Route SIGINT through :func:`_on_sigint` (only the main thread may set handlers; elsewhere a no-op)."""
    if hasattr(signal, "SIGINT") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum, frame):
    if _RECEIVED.is_set():
        _REPEATS[0] += 1
        if _REPEATS[0] < INSIST:
            return  # the interrupt is already on its way up; let the clean-up finish
    _RECEIVED.set()
    raise KeyboardInterrupt


def interrupted() -> bool:
    return _RECEIVED.is_set()


def received() -> None:
    """Record an interrupt seen by other means (a child reporting it was stopped by a signal) and raise it."""
    _RECEIVED.set()
    raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if SIGINT was received, even if its first KeyboardInterrupt was lost."""
    if _RECEIVED.is_set():
        raise KeyboardInterrupt


def settled() -> None:
    """The run has stopped and cleaned up: a late SIGINT (the terminal's, after a child saw it first) must not turn
    exit code 130 into death by signal during interpreter shutdown."""
    if hasattr(signal, "SIGINT") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def reset() -> None:
    """Forget an interrupt (tests that run the CLI in-process more than once)."""
    _RECEIVED.clear()
    _REPEATS[0] = 0
