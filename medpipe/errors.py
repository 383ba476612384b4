"""Errors a user can act on. The CLI prints them as one line; anything else is a bug."""

import difflib


def did_you_mean(key: str, valid) -> str:
    """'; did you mean 'X'?' with the closest valid name, or the list of valid names."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(sorted(valid))}"


class MedpipeError(Exception):
    """A foreseeable problem with input, preset or environment; the message says what to do."""


class PresetError(MedpipeError):
    """The preset is malformed: unknown key, wrong type, unknown codec."""


class InputError(MedpipeError):
    """An input file or folder cannot be read as a volume."""


class CodecUnavailable(MedpipeError):
    """A codec's library or ffmpeg encoder is missing here; the message names what to install."""


class CodecSkip(MedpipeError):
    """A codec cannot represent this volume as configured (e.g. 13-bit data for a 12-bit lossless codec)."""


class FfmpegError(MedpipeError):
    """ffmpeg exited non-zero; the message carries the command line and the tail of stderr."""
