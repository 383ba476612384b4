"""YAML preset -> validated, frozen Preset. The whole preset is checked before any work: every part (inputs, the
matrix, each codec, DICOM output, report, archive) declares its options as data (:class:`medpipe.options.Option`)
and is checked against them here, with "did you mean" for unknown keys, types, choices and ranges.

Relative paths in a preset (``input``, ``inputs``) are resolved against the preset file's folder, so a preset
runs the same from any working directory (a PACS address, http(s):// or dicom://, stays as given); ``output`` is resolved against the working directory. Names that become
folders (``name``, ``dicom_out.folder``, ``report.folder``) must be plain names: a path cannot leave ``--out``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .archive import Settings, parse_settings
from .codecs import CodecSpec, parse_codec
from .dicom.writer import DICOM_OPTIONS
from .errors import OutputError, PresetError
from .files import check_component
from .matrix import MATRIX_OPTIONS
from .options import Option, check_section, on_off
from .report import check_options as check_report
from .sources import is_address
from .sources.settings import SOURCE_OPTIONS, source_settings
from .volumes import INPUT_OPTIONS
from .yamlsafe import load_file

TOP_OPTIONS: dict[str, Option] = {
    "name": Option(str, None, "run name (default: the preset file's stem); a plain name, it names a folder"),
    "description": Option(str, None, "free text"),
    "input": Option(str, None, "one input: DICOM series folder or tree, multi-frame DICOM file, PNG slices, ..., "
                    "or a PACS address (http(s)://HOST:PORT/ROOT[/studies/UID], dicom://AET@HOST:PORT[/studies/UID])"),
    "inputs": Option(list, None, "several inputs (paths or PACS addresses), or folder trees to discover series in",
                     item=str),
    "pacs": Option(dict, None, f"how PACS addresses are read: {', '.join(SOURCE_OPTIONS)}"),
    "output": Option(str, "results", "folder under which each run writes its results folder"),
    "ffmpeg": Option(str, None, "ffmpeg binary (default: $MEDPIPE_FFMPEG, then the imageio-ffmpeg wheel's)"),
    "dump_png": Option((bool, str), False, "write each volume's slices as 16-bit PNG (true: into the results "
                                           "folder, or a folder)"),
    "color": INPUT_OPTIONS["color"],  # the one input option common enough to sit at the top
    "input_options": Option(dict, None, f"how inputs are read: {', '.join(INPUT_OPTIONS)}"),
    "codecs": Option(list, None, "the codec matrix: a list of {codec: NAME, ...parameters}"),
    "dicom_out": Option((bool, dict), False, "write compressed DICOM for codecs with a transfer syntax"),
    "report": Option((bool, dict), False, "write figures and an HTML report next to the results"),
    "archive": Option(dict, None, "intertwined-archive settings (a preset with this key builds an archive)"),
    "survey": Option(dict, None, "survey settings (a preset with this key surveys an archive: sources, sample)"),
    **MATRIX_OPTIONS,
}


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path | None
    inputs: tuple[Path | str, ...]  # a PACS address stays a string
    output: Path
    codecs: tuple[CodecSpec, ...]
    ffmpeg: str | None = None
    dump_png: bool | str = False
    input_options: dict = field(default_factory=dict)  # INPUT_OPTIONS, defaults filled
    matrix: dict = field(default_factory=dict)  # MATRIX_OPTIONS, defaults filled
    dicom_out: dict | None = None  # DICOM_OPTIONS when on
    report: dict | None = None  # report options when on
    archive: Settings | None = None
    survey: dict | None = None  # SURVEY_OPTIONS, sources resolved, when the preset surveys an archive
    raw: dict = field(default_factory=dict)  # the YAML as loaded, for provenance


def _folder_name(value: str, where: str) -> str:
    try:
        return check_component(value, where)
    except OutputError as exc:
        raise PresetError(f"{exc}; give a plain name") from None


def parse_preset(data: Any, *, path: Path | None = None) -> Preset:
    where = f"{path}: " if path else ""
    if not isinstance(data, dict):
        raise PresetError(f"{where}a preset is a YAML mapping of keys (input, codecs, ...)")
    top = check_section(data, TOP_OPTIONS, f"{where}preset")
    base = path.parent if path else Path.cwd()
    raw_inputs = ([top["input"]] if top["input"] else []) + list(top["inputs"] or [])
    inputs = tuple(str(x).strip() if is_address(x) else _path(x, base) for x in raw_inputs)
    archive = parse_settings(_archive_section(top), f"{where}archive") if top["archive"] is not None else None
    codecs_raw = top["codecs"] or []
    survey = _survey_section(top, base, where)
    if not codecs_raw and archive is None and survey is None:
        raise PresetError(f"{where}'codecs' is empty; list at least one, e.g. codecs: [{{codec: jpegls}}]")
    codecs = tuple(parse_codec(e, f"{where}codecs[{i}]") for i, e in enumerate(codecs_raw))
    labels = [c.label for c in codecs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise PresetError(f"{where}codec labels must be unique; repeated: {dupes} (add 'label:' to tell them apart)")
    dicom_out = on_off(top["dicom_out"], DICOM_OPTIONS, f"{where}dicom_out")
    if dicom_out:
        _folder_name(dicom_out["folder"], f"{where}dicom_out.folder")
    report = check_report(top["report"], f"{where}report")
    if report:
        _folder_name(report["folder"], f"{where}report.folder")
    given = {**(top["input_options"] or {}), **({"color": data["color"]} if "color" in data else {})}
    if top["pacs"] is not None:
        source_settings(top["pacs"], f"{where}pacs")  # checked here, used when an address is read
        given["pacs"] = top["pacs"]
    input_options = check_section(given, INPUT_OPTIONS, f"{where}input_options")
    name = top["name"] or (path.stem if path else "run")
    return Preset(
        name=_folder_name(str(name), f"{where}name"), path=path, inputs=inputs, output=Path(str(top["output"])),
        codecs=codecs, ffmpeg=top["ffmpeg"], dump_png=top["dump_png"], input_options=input_options,
        matrix={k: top[k] for k in MATRIX_OPTIONS}, dicom_out=dicom_out, report=report, archive=archive, survey=survey, raw=data)


def _survey_section(top: dict, base: Path, where: str) -> dict | None:
    from .survey import SURVEY_OPTIONS, resolve_sources

    if top["survey"] is None:
        return None
    survey = check_section(top["survey"], SURVEY_OPTIONS, f"{where}survey")
    if not survey["sources"]:
        raise PresetError(f"{where}survey.sources: list at least one folder tree, DICOMweb URL or DIMSE address")
    limits = str(_path(survey["limits"], base)) if survey["limits"] else None
    return {**survey, "sources": resolve_sources(list(survey["sources"]), base), "limits": limits}


def _path(text, base: Path) -> Path:
    p = Path(str(text)).expanduser()
    return p if p.is_absolute() else base / p


def _archive_section(top: dict) -> dict:
    """``archive:`` settings; without its own ``codec`` the first of ``codecs`` codes the archive."""
    data = dict(top["archive"] or {})
    if "codec" not in data and top["codecs"]:
        data["codec"] = top["codecs"][0]
    return data


def load_preset(path: Path | str) -> Preset:
    path = Path(path)
    if path.is_dir():
        raise PresetError(f"{path}: is a folder; give a preset file (see presets/, e.g. presets/headct.yaml), and "
                          "pass the folder as --input")
    if not path.is_file():
        raise PresetError(f"{path}: preset file not found (see presets/ for examples)")
    data = load_file(path)  # bounded: size, aliases, nesting
    return parse_preset(data, path=path.resolve())
