"""YAML preset -> validated, frozen Preset. Unknown keys, wrong types and unknown codecs are refused before any
work, with the closest valid name.

Relative paths in a preset (``input``, ``inputs``) are resolved against the preset file's folder, so a preset
runs the same from any working directory; ``output`` is resolved against the working directory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .codecs import COMMON_PARAMS, Codec, Param, codec_class
from .errors import PresetError
from .options import did_you_mean

# Top-level keys: type(s) and meaning. Sub-sections (dicom_out, report, archive) are checked by their owners.
TOP_KEYS: dict[str, tuple[tuple, str]] = {
    "name": ((str,), "run name (default: the preset file's stem)"),
    "description": ((str,), "free text"),
    "input": ((str,), "one volume: DICOM series folder, multi-frame DICOM file or PNG-slice folder"),
    "inputs": ((list,), "several volumes (paths), or folder trees to discover series in"),
    "output": ((str,), "folder under which each run writes its results folder (default: results)"),
    "ffmpeg": ((str,), "ffmpeg binary (default: $MEDPIPE_FFMPEG, then the imageio-ffmpeg wheel's)"),
    "dump_png": ((bool, str), "write each volume's slices as 16-bit PNG (true: into the results folder)"),
    "ssim": ((bool,), "compute SSIM (default true; it costs more than PSNR)"),
    "repeat": ((int,), "time each codec call this many times and keep the fastest (default 1)"),
    "color": ((str,), "colour images: 'gray' (BT.601 luma, as the thesis) or 'components'"),
    "codecs": ((list,), "the codec matrix: a list of {codec: NAME, ...parameters}"),
    "dicom_out": ((bool, dict), "write compressed DICOM for codecs with a transfer syntax"),
    "report": ((bool, dict), "write figures and an HTML report next to the results"),
    "archive": ((dict,), "intertwined-archive settings"),
    "jobs": ((int,), "cells run in parallel (default: number of cores)"),
    "executor": ((str,), "'local' (default) or 'dask'"),
    "scheduler": ((str,), "dask scheduler address (default: start a LocalCluster)"),
}


@dataclass(frozen=True)
class CodecSpec:
    """One configuration of the matrix: a codec instance plus the parameters the bench applies."""

    label: str
    codec: Codec
    window: tuple[int, int] | None = None

    def canonical(self) -> dict:
        return {**self.codec.canonical(), "window": list(self.window) if self.window else None}


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path | None
    inputs: tuple[Path, ...]
    output: Path
    codecs: tuple[CodecSpec, ...]
    ffmpeg: str | None = None
    dump_png: bool | str = False
    ssim: bool = True
    repeat: int = 1
    color: str = "gray"
    dicom_out: Any = False
    report: Any = False
    archive: dict = field(default_factory=dict)
    jobs: int | None = None
    executor: str = "local"
    scheduler: str | None = None
    raw: dict = field(default_factory=dict)  # the YAML as loaded, for provenance


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join({bool: "true/false", int: "integer", float: "number", str: "text", list: "list",
                        dict: "mapping"}.get(t, t.__name__) for t in types)


def _check_type(value, types, where: str) -> None:
    types = types if isinstance(types, tuple) else (types,)
    if value is None:
        return
    if isinstance(value, bool) and bool not in types:  # YAML 'yes' is not a number
        raise PresetError(f"{where}: expected {_type_name(types)}, got {value!r}")
    if not isinstance(value, types):
        raise PresetError(f"{where}: expected {_type_name(types)}, got {type(value).__name__} {value!r}")


def parse_codec(entry: Any, index: int, where: str) -> CodecSpec:
    here = f"{where}codecs[{index}]"
    if isinstance(entry, str):
        entry = {"codec": entry}
    if not isinstance(entry, dict) or "codec" not in entry:
        raise PresetError(f"{here}: expected a mapping with a 'codec' key, e.g. {{codec: jpegls}}")
    cls = codec_class(str(entry["codec"]))
    params = {k: v for k, v in entry.items() if k != "codec"}
    valid: dict[str, Param] = {**cls.params, **COMMON_PARAMS}
    for key, value in params.items():
        if key not in valid:
            raise PresetError(f"{here} ({cls.name}): unknown parameter '{key}'{did_you_mean(key, valid)}")
        spec = valid[key]
        _check_type(value, spec.type, f"{here} ({cls.name}).{key}")
        if spec.choices and value is not None and value not in spec.choices:
            raise PresetError(f"{here} ({cls.name}).{key}: {value!r} is not one of {list(spec.choices)}")
    window = params.pop("window", None)
    if window is not None and (len(window) != 2 or not all(isinstance(v, int) for v in window)):
        raise PresetError(f"{here}.window: expected [lo, hi] stored values, got {window!r}")
    label = params.pop("label", None)
    codec = cls(**params)
    if not label:
        setting = codec.setting()
        label = cls.name if setting == "default" else f"{cls.name} {setting}"
    return CodecSpec(label=label, codec=codec, window=tuple(window) if window else None)


def _on(section):
    """``report: {}`` (all options default) means on, like ``report: true``."""
    return True if section == {} else section


def parse_preset(data: Any, *, path: Path | None = None) -> Preset:
    where = f"{path}: " if path else ""
    if not isinstance(data, dict):
        raise PresetError(f"{where}a preset is a YAML mapping of keys (input, codecs, ...)")
    for key, value in data.items():
        if key not in TOP_KEYS:
            raise PresetError(f"{where}unknown key '{key}'{did_you_mean(str(key), TOP_KEYS)}")
        _check_type(value, TOP_KEYS[key][0], f"{where}{key}")
    base = path.parent if path else Path.cwd()
    raw_inputs = ([data["input"]] if data.get("input") else []) + list(data.get("inputs") or [])
    inputs = tuple((base / Path(str(p)).expanduser()) if not Path(str(p)).expanduser().is_absolute()
                   else Path(str(p)).expanduser() for p in raw_inputs)
    codecs_raw = data.get("codecs") or []
    if not codecs_raw:
        raise PresetError(f"{where}'codecs' is empty; list at least one, e.g. codecs: [{{codec: jpegls}}]")
    codecs = tuple(parse_codec(e, i, where) for i, e in enumerate(codecs_raw))
    labels = [c.label for c in codecs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise PresetError(f"{where}codec labels must be unique; repeated: {dupes} (add 'label:' to tell them apart)")
    color = data.get("color", "gray")
    if color not in ("gray", "components"):
        raise PresetError(f"{where}color: {color!r} is not 'gray' or 'components'")
    executor = data.get("executor", "local")
    if executor not in ("local", "dask"):
        raise PresetError(f"{where}executor: {executor!r} is not 'local' or 'dask'")
    if data.get("report"):  # checked now, not after the whole matrix has run
        from .report import check_options

        check_options(data["report"], f"{where}report")
    repeat = int(data.get("repeat", 1) or 1)
    if repeat < 1:
        raise PresetError(f"{where}repeat: must be >= 1")
    return Preset(
        name=str(data.get("name") or (path.stem if path else "run")), path=path, inputs=inputs,
        output=Path(str(data.get("output", "results"))), codecs=codecs, ffmpeg=data.get("ffmpeg"),
        dump_png=data.get("dump_png", False), ssim=bool(data.get("ssim", True)), repeat=repeat, color=color,
        dicom_out=_on(data.get("dicom_out", False)), report=_on(data.get("report", False)),
        archive=data.get("archive") or {}, jobs=data.get("jobs"), executor=executor,
        scheduler=data.get("scheduler"), raw=data,
    )


def load_preset(path: Path | str) -> Preset:
    path = Path(path)
    if not path.is_file():
        raise PresetError(f"{path}: preset file not found (see presets/ for examples)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PresetError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    return parse_preset(data, path=path.resolve())
