"""The one place that runs ffmpeg.

Which binary: ``--ffmpeg`` / the preset's ``ffmpeg`` key, else ``MEDPIPE_FFMPEG``, else the static build shipped in
the imageio-ffmpeg wheel (libx264, libx265 with 12-bit, ffv1, libjxl), so a pip-only install has every video codec.
Commands are argv lists, never shell strings; each one run is logged so it can be pasted into a shell.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from . import interrupt
from .errors import CodecUnavailable, FfmpegError

ENV_VAR = "MEDPIPE_FFMPEG"
# ffmpeg exits 255 when it was stopped by a signal (fftools: ``received_nb_signals ? 255 : ret``)
SIGNALLED_EXIT = 255
# Children in a process group of their own: a terminal's Ctrl-C reaches medpipe only, which stops them (so an
# ffmpeg that saw the signal first can never be mistaken for a failing codec).
_OWN_GROUP = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt"
              else {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True})


def find_ffmpeg(explicit: str | os.PathLike | None = None) -> str:
    """Resolve the ffmpeg binary: explicit > $MEDPIPE_FFMPEG > imageio-ffmpeg's wheel binary > PATH."""
    for candidate in (explicit, os.environ.get(ENV_VAR)):
        if candidate:
            found = shutil.which(str(candidate)) or (str(candidate) if Path(candidate).is_file() else None)
            if not found:
                raise CodecUnavailable(f"ffmpeg '{candidate}' not found; fix --ffmpeg / ${ENV_VAR} / the preset")
            return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        pass
    found = shutil.which("ffmpeg")
    if not found:
        raise CodecUnavailable("ffmpeg not available: pip install imageio-ffmpeg (or set MEDPIPE_FFMPEG)")
    return found


# A call's time limit: generous against the slowest configuration measured here (x265 veryslow 4:4:4 at about
# 4 microseconds a voxel, cost 52 in the codec tables), so only a hung process reaches it.
TIMEOUT_BASE_S = 120.0
TIMEOUT_S_PER_COST_VOXEL = 2e-6


@dataclass
class Ffmpeg:
    """A resolved ffmpeg binary, what it supports, and the log of commands run through it."""

    exe: str
    log: list[str] = field(default_factory=list)
    threads: int = 0  # 0 = ffmpeg's choice (archives); a matrix run always gives 1 (matrix.workers.CODEC_THREADS)
    timeout_factor: float = 1.0  # preset 'ffmpeg_timeout' scales every call's limit

    @classmethod
    def locate(cls, explicit=None, threads: int = 0, timeout_factor: float = 1.0) -> "Ffmpeg":
        return cls(find_ffmpeg(explicit), threads=threads, timeout_factor=timeout_factor)

    def timeout_for(self, voxels: int, cost: float) -> float:
        """Seconds a call coding ``voxels`` at relative ``cost`` may take before it counts as hung."""
        return (TIMEOUT_BASE_S + voxels * max(cost, 1.0) * TIMEOUT_S_PER_COST_VOXEL) * self.timeout_factor

    @property
    def version(self) -> str:
        return _version(self.exe)

    @property
    def encoders(self) -> frozenset[str]:
        return _encoders(self.exe)

    def pixel_formats(self, encoder: str) -> frozenset[str]:
        return _encoder_pix_fmts(self.exe, encoder)

    def require(self, encoder: str, pix_fmt: str | None = None) -> None:
        """Raise CodecUnavailable naming exactly what this binary lacks."""
        if encoder not in self.encoders:
            raise CodecUnavailable(f"ffmpeg at {self.exe} has no encoder '{encoder}'; use the imageio-ffmpeg "
                                   "wheel's build (pip install imageio-ffmpeg) or set MEDPIPE_FFMPEG")
        if pix_fmt and pix_fmt not in self.pixel_formats(encoder):
            raise CodecUnavailable(f"ffmpeg encoder '{encoder}' at {self.exe} does not take pixel format "
                                   f"'{pix_fmt}' (it takes {', '.join(sorted(self.pixel_formats(encoder)))})")

    # Kept over imageio-ffmpeg's read_frames/write_frames: a hung ffmpeg is killed at a work-sized limit, none is left
    # running (tests/test_codec_families.py::test_a_hung_ffmpeg_is_stopped_with_a_clear_error).
    def run(self, args: list[str], stdin=None, read_stdout=None, timeout: float | None = None):
        """Run ``ffmpeg -nostdin -y -hide_banner -loglevel error ARGS``; return stdout or raise FfmpegError.

        Streaming, so a volume never sits in memory twice: ``stdin`` may be bytes or an iterable of bytes chunks
        (e.g. one frame each), written as ffmpeg reads them; ``read_stdout(stream)`` consumes stdout as it arrives
        and its result is returned instead of the bytes. ``timeout`` (seconds, default: a fixed generous limit)
        kills a hung ffmpeg and raises FfmpegError saying so.
        """
        argv = [self.exe, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args]
        if stdin is not None:  # -nostdin would refuse pipe:0 input; it only disables interaction
            argv.remove("-nostdin")
        self.log.append(quote(argv))
        return self._stream(argv, stdin, read_stdout, timeout or TIMEOUT_BASE_S * self.timeout_factor)

    def _stream(self, argv: list[str], stdin, read_stdout, timeout: float):
        """A feeder thread for stdin, a thread collecting stderr, stdout read here, a watchdog for the timeout.
        Whatever ends the call (error, timeout, Ctrl-C), the ffmpeg process is not left running."""
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, **_OWN_GROUP)
        except OSError as exc:
            raise FfmpegError(f"cannot start ffmpeg ({exc}): {quote(argv)}")
        errors: list = []
        stderr: list[bytes] = []
        finished = threading.Event()
        hung = threading.Event()

        def watchdog():
            if not finished.wait(timeout) and proc.poll() is None:
                hung.set()
                proc.kill()

        def feed():
            try:
                for chunk in ([stdin] if isinstance(stdin, (bytes, bytearray, memoryview)) else stdin):
                    proc.stdin.write(chunk)
            except OSError:
                pass  # ffmpeg stopped reading; its exit status and stderr say why
            except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread below
                errors.append(exc)
            finally:
                try:
                    proc.stdin.close()
                except OSError:
                    pass

        threads = [threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)]
        if stdin is not None:
            threads.append(threading.Thread(target=feed, daemon=True))
        for t in threads:
            t.start()
        threading.Thread(target=watchdog, daemon=True).start()
        result = None
        try:
            result = read_stdout(proc.stdout) if read_stdout else proc.stdout.read()
        except Exception as exc:  # noqa: BLE001 - an ffmpeg failure explains it better, see below
            errors.append(exc)
        finally:
            if proc.poll() is None and (errors or sys.exc_info()[0] is not None):
                proc.kill()  # our side failed or was interrupted: do not leave ffmpeg running
            proc.wait()
            finished.set()
            for t in threads:
                t.join()
            proc.stdout.close()
        if proc.returncode != 0 and not hung.is_set():
            _stopped_by_signal(proc.returncode)
        if hung.is_set():
            raise FfmpegError(f"ffmpeg did not finish within {timeout:.0f} s and was stopped (the limit grows with "
                              "the work; raise it with the preset key ffmpeg_timeout: FACTOR)\n"
                              f"  command: {quote(argv)}")
        if proc.returncode != 0 and not (errors and proc.returncode < 0):
            tail = b"".join(stderr).decode(errors="replace").strip().splitlines()[-6:]
            raise FfmpegError(f"ffmpeg failed (exit {proc.returncode}): {' | '.join(tail) or 'no message'}\n"
                              f"  command: {quote(argv)}")
        if errors:
            raise errors[0]
        return result


def _stopped_by_signal(returncode: int) -> None:
    """After SIGINT, or when ffmpeg itself was stopped by SIGINT/SIGTERM from outside, its exit is the run's
    interrupt, not a codec failure: raise KeyboardInterrupt (the run stops, removes its temporary streams, exits
    130)."""
    interrupt.check()
    by_signal = {-getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)}
    if returncode == SIGNALLED_EXIT or returncode in by_signal:
        interrupt.received()


def quote(argv: list[str]) -> str:
    """A command line that can be pasted into a POSIX shell (Windows users: cmd quoting differs)."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def _probe(exe: str, *args: str) -> str:
    try:
        return subprocess.run([exe, "-hide_banner", *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CodecUnavailable(f"ffmpeg at {exe} does not run ({exc}); set MEDPIPE_FFMPEG to a working binary")


@lru_cache(maxsize=None)
def _version(exe: str) -> str:
    first = _probe(exe, "-version").splitlines()
    return first[0] if first else "unknown"


@lru_cache(maxsize=None)
def _encoders(exe: str) -> frozenset[str]:
    names = set()
    for line in _probe(exe, "-encoders").splitlines():
        m = re.match(r"\s*[VAS][F.][S.][X.][B.][D.]\s+(\S+)", line)
        if m:
            names.add(m.group(1))
    return frozenset(names)


@lru_cache(maxsize=None)
def _encoder_pix_fmts(exe: str, encoder: str) -> frozenset[str]:
    text = _probe(exe, "-h", f"encoder={encoder}")
    m = re.search(r"Supported pixel formats:\s*(.*)", text)
    return frozenset(m.group(1).split()) if m else frozenset()
