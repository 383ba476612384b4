"""Errors a user can act on. The CLI prints them as one line; anything else is a bug."""


class MedpipeError(Exception):
    """A foreseeable problem with input, preset or environment; the message says what to do."""


class PresetError(MedpipeError):
    """The preset is malformed: unknown key, wrong type, value out of range, unknown codec."""


class InputError(MedpipeError):
    """An input file or folder cannot be read as a volume."""


class DamagedInput(InputError):
    """Decoded pixel data contradicts its header or its series (a damaged codestream that decoded anyway)."""


class OutputError(MedpipeError):
    """An output cannot be written (disk full, read-only, permission, a path that would leave its folder)."""


class CodecUnavailable(MedpipeError):
    """A codec's library or ffmpeg encoder is missing here; the message names what to install."""


class CodecSkip(MedpipeError):
    """A codec cannot represent this volume as configured (e.g. 13-bit data for a 12-bit lossless codec)."""


class FfmpegError(MedpipeError):
    """ffmpeg exited non-zero or timed out; the message carries the command line and the tail of stderr."""


def described(exc: BaseException) -> str:
    """``Type: message`` on one line. Some libraries put a whole traceback in the message (pydicom's
    ``tag_in_exception``); the first non-empty line is what names the problem."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
