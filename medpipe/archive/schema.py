"""The types of index.json, checked once when the archive is opened (index.open_archive), before any consumer reads
a field. Anyone can rewrite the index and its SEAL (the SEAL has no key), so the index is input like any other: a
string where verify expects a dict, a number where it expects a bool, a list nested 50 000 deep must end in one line
naming the key -- not in an AttributeError deep inside verify, depth or the header check.

Only the fields medpipe reads are typed; other keys (tools, candidates' timings) are free. The relations between
fields (sizes add up, names are safe, every slice once) are index.check_index's, after this.
"""
from __future__ import annotations

MAX_DEPTH = 12  # the index medpipe writes nests 6 deep (groups -> parts -> side -> ...); a deeper one is not ours


class Nullable:
    """``spec`` or null."""

    def __init__(self, spec):
        self.spec = spec


class MayLack:
    """A key that may be absent (older archives), else ``spec``."""

    def __init__(self, spec):
        self.spec = spec


class OneOf:
    """One of fixed string values."""

    def __init__(self, *values):
        self.values = values


ANY_SCALAR = (str, int, float, bool, type(None))  # fields only printed for people (patients.txt, the tables)
SHAPE = [int]
FILE = {"path": str, "bytes": int, "sha256": str}
SCAN_FILE = {"name": str, "frames": int, "sop_uid": str, "restored_sha256": str, "header_sha256": str,
             "source_sha256": str, "transfer_syntax": str, "exact_copy": bool, "jpeg_bot": MayLack(bool)}
SCAN = {"id": str, "name": str, "group": str, "headers": str, "dtype": str, "bits_allocated": int,
        "bits_stored": int, "signed": bool, "value_offset": int, "shape": SHAPE, "slice_sha256": [str],
        "frame_order": Nullable([int]), "files": [SCAN_FILE], "series_uid": str, "study_uid": str,
        "patient_id": str, "patient_hash": str, "patient_name": ANY_SCALAR, "study_date": ANY_SCALAR,
        "series_number": ANY_SCALAR, "series_description": ANY_SCALAR, "modality": ANY_SCALAR}
PART = {"chunk_sizes": [int], "shape": SHAPE, "dtype": str, "side": dict}
DEPTH_MAP = {"kind": OneOf("depth"), "offset": int, "shift": int, "lo": int, "hi": int, "bits_in": int,
             "bits_out": int, "dtype": str, "clipped": bool}
TABLE_MAP = {"kind": OneOf("table"), "bits_out": int, "table": [int]}
GROUP = {"id": str, "stream": str, "layout": str, "codec": {"codec": MayLack(str)},
         "mapping": Nullable(dict), "lossless": bool, "scans": [str], "order": [[ANY_SCALAR]], "parts": [PART],
         "restored_sha256": str, "candidate": str, "label": MayLack(ANY_SCALAR),
         "jpeg_sha256": MayLack(Nullable([str])), "jpeg_decoder": MayLack(Nullable(str))}
INDEX = {"format": str, "lossless": bool, "files": [FILE], "scans": [SCAN], "groups": [GROUP],
         "settings": {"effort": int}}


def check_schema(index) -> None:
    """ValueError naming the first key whose value has the wrong type (``groups[0].codec``), or a nesting too
    deep; checked iteratively so that the depth check itself cannot overflow the stack."""
    _check_depth(index)
    _check(index, INDEX, "index")
    for n, g in enumerate(index["groups"]):
        for k, o in enumerate(g["order"]):  # (scan id, slice index) pairs
            if len(o) != 2 or not isinstance(o[0], str) or not _is_int(o[1]):
                raise ValueError(f"index.groups[{n}].order[{k}] is not a [scan, slice] pair")
        # the mapping's own keys depend on its kind; every layout but dicom decodes through it (readers tell only
        # dicom from the rest, so another layout name is not refused by itself: its mapping is what they use)
        where = f"index.groups[{n}].mapping"
        if g["mapping"] is not None:
            _check(g["mapping"], TABLE_MAP if g["mapping"].get("kind") == "table" else DEPTH_MAP, where)
        elif g["layout"] != "dicom":
            raise ValueError(f"{where} is null, layout {g['layout']!r} needs a value mapping")


def _check_depth(value) -> None:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON true is not a size


def _name(v) -> str:
    text = "null" if v is None else type(v).__name__
    return {"str": "a string", "int": "a number", "float": "a number", "bool": "true/false", "dict": "an object",
            "list": "a list"}.get(text, text)


def _check(value, spec, where: str) -> None:
    """``value`` against ``spec``: a type, a tuple of types, [item spec], {key: spec}, Nullable, OneOf."""
    if isinstance(spec, Nullable):
        if value is not None:
            _check(value, spec.spec, where)
        return
    if isinstance(spec, OneOf):
        if value not in spec.values:
            raise ValueError(f"{where} is {str(value)[:40]!r}, expected one of {', '.join(spec.values)}")
        return
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise ValueError(f"{where} is {_name(value)}, expected a list")
        for k, item in enumerate(value):
            _check(item, spec[0], f"{where}[{k}]")
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{where} is {_name(value)}, expected an object")
        for key, sub in spec.items():
            if isinstance(sub, MayLack):
                if key in value:
                    _check(value[key], sub.spec, f"{where}.{key}")
            elif key not in value:
                raise ValueError(f"{where}.{key} is missing")
            else:
                _check(value[key], sub, f"{where}.{key}")
        return
    if spec is int:
        ok = _is_int(value)
    elif spec is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, spec)
    if not ok:
        raise ValueError(f"{where} is {_name(value)} {str(value)[:40]!r}, expected {_name(_example(spec))}")


def _example(spec):
    """A value of the expected type, for the message (a tuple of types: the first)."""
    first = spec[0] if isinstance(spec, tuple) else spec
    return {str: "", int: 0, float: 0.0, bool: True, dict: {}, list: []}.get(first, None)
