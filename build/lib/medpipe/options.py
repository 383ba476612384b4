"""The one options mechanism: every part of medpipe (codecs, the matrix, reports, DICOM output, archives) declares
its options as data (:class:`Option`), and :func:`check_section` checks a preset mapping against that schema:
unknown keys get "did you mean", wrong types, choices and ranges are refused naming the key, defaults are filled.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from .errors import PresetError

TYPE_NAMES = {bool: "true/false", int: "integer", float: "number", str: "text", list: "list", dict: "mapping"}


def did_you_mean(key: str, valid) -> str:
    """'; did you mean 'X' or 'Y'?' with the closest valid names, or the list of valid names."""
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=3, cutoff=0.5)
    if close:
        return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return f"; valid: {', '.join(sorted(map(str, valid)))}"


@dataclass(frozen=True)
class Option:
    """One option: its type(s), default, meaning, and the values it may take.

    ``range`` is inclusive (either end may be None); ``choices`` lists the only values allowed; ``item`` is the
    type of a list's elements. ``knob`` marks a codec parameter that moves a configuration along its
    rate-distortion curve (crf, qp, near, ...): reports join configurations that differ only in knobs.
    """

    type: type | tuple
    default: Any
    help: str
    choices: tuple | None = None
    range: tuple | None = None
    item: type | tuple | None = None
    knob: bool = False

    @property
    def types(self) -> tuple:
        return self.type if isinstance(self.type, tuple) else (self.type,)

    def describe(self) -> str:
        out = self.help
        if self.choices:
            out += f" (one of {', '.join(map(str, self.choices))})"
        elif self.range:
            lo, hi = self.range
            out += f" ({lo if lo is not None else '...'}..{hi if hi is not None else '...'})"
        return out


def type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(TYPE_NAMES.get(t, t.__name__) for t in types)


def _is(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):  # YAML 'yes' is not a number
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def check_value(value: Any, opt: Option, where: str) -> Any:
    """The value if it fits ``opt``; else PresetError naming ``where``, what was given and what is allowed."""
    if value is None:
        return None
    if not _is(value, opt.types):
        raise PresetError(f"{where}: expected {type_name(opt.types)}, got {type(value).__name__} {value!r} "
                          f"({opt.describe()})")
    if opt.choices is not None and value not in opt.choices:
        raise PresetError(f"{where}: {value!r} is not one of {list(opt.choices)}"
                          f"{did_you_mean(str(value), opt.choices) if isinstance(value, str) else ''}")
    if opt.range is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = opt.range
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise PresetError(f"{where}: {value!r} is out of range {lo if lo is not None else '...'}.."
                              f"{hi if hi is not None else '...'} ({opt.help})")
    if opt.item is not None and isinstance(value, list):
        for i, v in enumerate(value):
            if not _is(v, opt.item):
                raise PresetError(f"{where}[{i}]: expected {type_name(opt.item)}, got {v!r}")
    return value


def check_section(data: Any, schema: dict[str, Option], where: str, *, fill: bool = True) -> dict:
    """A preset mapping checked against ``schema`` -> dict of every option (defaults filled when ``fill``)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PresetError(f"{where}: expected a mapping of options ({', '.join(schema)}), got {data!r}")
    out = {k: o.default for k, o in schema.items()} if fill else {}
    for key, value in data.items():
        if key not in schema:
            raise PresetError(f"{where}: unknown key '{key}'{did_you_mean(str(key), schema)}")
        out[key] = check_value(value, schema[key], f"{where}.{key}")
    return out


def on_off(value: Any, schema: dict[str, Option], where: str) -> dict | None:
    """A section that may be ``true`` (defaults), ``false``/absent (None: off) or a mapping of options."""
    if value is None or value is False:
        return None
    if value is True or value == {}:
        return check_section({}, schema, where)
    return check_section(value, schema, where)
