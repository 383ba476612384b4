"""Find the volumes under an input path (a folder tree as a PACS export or a lab leaves it, or one file), reading
headers only, so a large export is listed quickly.

Every file is recognised by what it is: DICOM (with or without the DICM preamble; DICOMDIR indexes are counted,
not needed: the walk finds the files), PNG slice folders (``medpipe_slices.json``), pictures (PNG, JPEG, TIFF,
SVS, NDPI), NIfTI, NRRD, MetaImage and NumPy (+ JSON sidecar). Documents beside the data are listed once. Any
other file, and any file that cannot be read, gets one line naming it and what medpipe reads. DICOM image files
are assembled into series by :mod:`series`. A bad file never stops the walk.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, described
from ..files import safe_component
from .dicom import is_dicomdir, is_image, read_dicom, sop_class_name
from .input_options import input_settings
from .pictures import PNG_SIDECAR, png_header
from .research import READERS, numpy_arrays, numpy_sidecar, reader
from .series import Member, assemble, int_or_none, natural_key
from .source import VolumeSource

READS = ("DICOM (series, multi-frame, DICOMDIR exports, files without preamble), PNG slice folders "
         f"({PNG_SIDECAR}), PNG/JPEG/TIFF/SVS/NDPI pictures, NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), "
         "MetaImage (.mha, .mhd), NumPy (.npy, .npz + .json sidecar)")
READS_SHORT = "medpipe reads DICOM, PNG, JPEG, TIFF/SVS, NIfTI, NRRD, MHA/MHD, NumPy+JSON"
RESEARCH_SUFFIXES = {".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "metaimage",
                     ".mhd": "metaimage", ".npy": "numpy", ".npz": "numpy"}
PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".svs", ".ndpi"}
# Modalities whose objects carry no image to code (or not one a codec benchmark means): listed and skipped.
NON_IMAGE_MODALITIES = {"SR", "RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "PR", "KO", "REG", "SEG", "DOC", "FID",
                        "PLAN", "RWV", "ECG", "HD", "AU", "RESP", "M3D", "ASMT", "BI"}
# Files that are plainly documents or code next to the data: listed once in the summary, not an error each.
DOCUMENT_SUFFIXES = {".txt", ".md", ".py", ".json", ".csv", ".tsv", ".html", ".htm", ".xml", ".pdf", ".yaml",
                     ".yml", ".log", ".ini", ".cfg", ".sh", ".bat", ".rst", ".dump", ".icc"}
DOCUMENT_NAMES = {"LICENSE", "LICENCE", "README", "COPYING", "NOTICE", "AUTHORS", "CHANGELOG", "SOURCE"}
ARCHIVES = {".gz", ".zip", ".bz2", ".xz", ".7z", ".tar", ".tgz", ".rar"}
LIST_NAMES = 20  # name up to this many skipped files in a summary line


def full_suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def stem_of(path: Path) -> str:
    return path.name[: -len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem


def _names(paths: list[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:LIST_NAMES])
    return shown + (f", ... ({len(paths) - LIST_NAMES} more)" if len(paths) > LIST_NAMES else "")


@dataclass
class Discovery:
    root: Path
    sources: list[VolumeSource] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one per file or input left out: the run reports them
    notes: list[str] = field(default_factory=list)  # worth saying, not errors
    non_image: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))  # kind -> files
    ignored: list[Path] = field(default_factory=list)  # documents beside the data
    dicomdirs: list[Path] = field(default_factory=list)
    dicom_files: int = 0
    files: int = 0

    def summary(self, errors: int | None = None) -> str:
        """One line: what was found and what was skipped."""
        dicom = sum(s.kind == "dicom" for s in self.sources)
        parts = [f"{dicom} DICOM volume(s) from {self.dicom_files} file(s)"]
        others = Counter(s.kind for s in self.sources if s.kind != "dicom")
        if others:
            parts.append(", ".join(f"{n} {k.replace('_', ' ')} input(s)" for k, n in sorted(others.items())))
        if self.dicomdirs:
            parts.append(f"{len(self.dicomdirs)} DICOMDIR index(es) ({_names(self.dicomdirs)}; not needed: the "
                         "files are walked)")
        if self.non_image:
            kinds = ", ".join(f"{k} {len(v)}" for k, v in sorted(self.non_image.items()))
            every = [p for v in self.non_image.values() for p in v]
            parts.append(f"{len(every)} non-image object(s) skipped ({kinds}: {_names(every)})")
        if self.ignored:
            parts.append(f"{len(self.ignored)} document file(s) ignored ({_names(self.ignored)})")
        errors = len(self.errors) if errors is None else errors
        if errors:
            parts.append(f"{errors} file(s) or series skipped with errors (messages above)")
        return "; ".join(parts)


def walk(root: Path) -> list[Path]:
    """Every file under root (hidden files and folders skipped), in natural order; root itself when not a folder."""
    if not root.is_dir():
        return [root]
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        out += [Path(folder) / f for f in sorted(files, key=natural_key) if not f.startswith(".")]
    return out


def _regular(paths: list[Path], found: Discovery) -> list[Path]:
    """Regular files only (a symlink to one is kept): opening a FIFO blocks for ever and /dev/zero never ends, so a
    non-regular file is named once and never opened (``stat`` does not open it)."""
    out = []
    for path in paths:
        if path.is_file():
            out.append(path)
        else:
            found.errors.append(f"{path}: not a regular file (a FIFO or device), never opened")
    return out


def _data_files(path: Path) -> list[Path]:
    """Files a detached header (.mhd ElementDataFile, .nhdr 'data file') points at: part of that volume."""
    names: list[str] = []
    try:
        if path.suffix.lower() == ".mhd":
            with open(path, "rb") as fh:
                for raw in fh.read(65536).decode("latin-1").splitlines():
                    key, _, value = raw.partition("=")
                    if key.strip().lower() == "elementdatafile":
                        names.append(value.strip().split()[0] if value.strip() else "")
        else:
            header = reader("nrrd", path).read_header(str(path))
            names += [str(header.get("data file") or header.get("datafile") or "")]
    except Exception:  # noqa: BLE001 - an unreadable header is reported when its volume is loaded
        pass
    out = [path.with_suffix(s) for s in (".raw", ".zraw", ".raw.gz")]
    return out + [path.parent / n for n in names if n and n.upper() not in ("LOCAL", "LIST")]


def _is_png_stack(folder: Path) -> bool:
    """An input folder of PNG slices: the sidecar, or only grey .png files (more than one) of one size and no
    sub-folders; a folder of unrelated pictures is read picture by picture."""
    if not folder.is_dir():
        return False
    if (folder / PNG_SIDECAR).exists():
        return True
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) < 2 or not all(p.is_file() and p.suffix.lower() == ".png" for p in entries):
        return False
    headers = {png_header(p) for p in entries}
    return len(headers) == 1 and None not in headers and next(iter(headers))[2] == 0  # PNG colour type 0: grey


def discover(root: Path, options: dict | None = None, taken: set[str] | None = None) -> Discovery:
    """Walk ``root`` (a folder tree or one file) and describe the volumes it holds; never raises for a file."""
    settings = input_settings(options)
    root = Path(root)
    found = Discovery(root)
    taken = set() if taken is None else taken
    if not root.exists():
        found.errors.append(f"{root}: does not exist; check the preset's 'input' or --input")
        return found
    if _is_png_stack(root):
        found.sources.append(VolumeSource("png_folder", [root], _unique(root.name, taken), dict(options or {}),
                                          label=str(root), source=root))
        return found
    files = _regular(walk(root), found)
    found.files = len(files)
    consumed = _consumed(files)
    png_dirs = {p.parent for p in files if p.name == PNG_SIDECAR}
    members: list[Member] = []
    singles: list[VolumeSource] = []
    for path in files:
        if path in consumed or path.name == PNG_SIDECAR or (path.parent in png_dirs and path.suffix.lower() == ".png"):
            continue
        try:
            _classify(path, found, members, singles, options)
        except InputError as exc:
            found.errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - one odd file never ends the walk; this names it
            found.errors.append(f"{path}: could not be examined ({described(exc)}); skipped")
    for folder in sorted(png_dirs, key=lambda p: natural_key(str(p))):
        singles.append(VolumeSource("png_folder", [folder], folder.name, dict(options or {}), label=str(folder),
                                    source=folder))
    groups = assemble(members, settings["duplicate_tolerance"])
    dicom_sources = [_dicom_source(g, options) for g in groups]
    _name_dicom(list(zip(dicom_sources, groups)), root)
    for src in singles:
        src.name = safe_component(src.name, "volume")
    found.sources = sorted(dicom_sources + singles, key=lambda s: natural_key(s.name))
    for src in found.sources:
        src.name = _unique(src.name, taken)
    if not files:
        found.errors.append(f"{root}: empty folder, nothing to read; medpipe reads {READS}")
    elif not found.sources:
        why = f"documents ignored: {_names(found.ignored)}; " if found.ignored else ""
        found.errors.append(f"{root}: no volume found among {len(files)} file(s) ({why}other files: see the lines "
                            f"above); medpipe reads {READS}")
    return found


def _consumed(files: list[Path]) -> set[Path]:
    """Sidecars and data files that belong to another file's volume."""
    consumed: set[Path] = set()
    for p in files:
        suffix = full_suffix(p)
        if suffix in (".npy", ".npz"):
            side = numpy_sidecar(p)
            if side is not None:
                consumed.add(side)
        elif suffix in (".mhd", ".nhdr"):
            consumed.update(_data_files(p))
    return consumed


def _classify(path: Path, found: Discovery, members: list[Member], singles: list[VolumeSource], options) -> None:
    suffix = full_suffix(path)
    opts = dict(options or {})
    if suffix in RESEARCH_SUFFIXES:
        kind = RESEARCH_SUFFIXES[suffix]
        for src in _research_sources(path, kind, opts):
            singles.append(src)
        return
    if suffix in PICTURE_SUFFIXES:
        singles.append(VolumeSource("picture", [path], stem_of(path), opts, label=str(path), source=path,
                                    modality="SM" if suffix in (".svs", ".ndpi") else "OT"))
        return
    if suffix in DOCUMENT_SUFFIXES or path.stem.upper() in DOCUMENT_NAMES:
        found.ignored.append(path)
        return
    if suffix in ARCHIVES:
        found.errors.append(f"{path}: a compressed archive ({suffix}); medpipe does not read inside archives: "
                            "unpack it first")
        return
    try:
        ds = read_dicom(path, defer_size=4096)
    except InputError as exc:
        found.errors.append(f"{exc}; skipped ({READS_SHORT})")
        return
    if is_dicomdir(ds, path):
        found.dicomdirs.append(path)
        return
    if "SOPClassUID" not in ds and not is_image(ds):
        found.errors.append(f"{path}: incomplete DICOM header (no SOP Class UID, no pixel data); is the file "
                            "truncated? skipped")
        return
    modality = str(ds.get("Modality", "") or "").upper()
    if modality in NON_IMAGE_MODALITIES:
        found.non_image[modality].append(path)
        return
    if not is_image(ds):
        if "Rows" in ds or "Image" in sop_class_name(ds):
            found.errors.append(f"{path}: image object ({sop_class_name(ds)}) without pixel data (removed, or the "
                                "file is truncated); skipped")
        else:
            found.non_image[modality or sop_class_name(ds)].append(path)
        return
    if not int_or_none(ds.get("Rows")) or not int_or_none(ds.get("Columns")):
        found.errors.append(f"{path}: image header without Rows/Columns; incomplete DICOM header, skipped")
        return
    found.dicom_files += 1
    members.append(Member(path, ds))


def _research_sources(path: Path, kind: str, options: dict) -> list[VolumeSource]:
    """One source per volume in a research file (a .npz may hold several arrays); cheap facts only."""
    if kind not in READERS:
        raise InputError(f"{path}: unknown research format")
    name = stem_of(path)
    if kind == "numpy":
        arrays = numpy_arrays(path)
        return [VolumeSource("numpy", [path], f"{name}-{a}" if a and len(arrays) > 1 else name, options,
                             label=f"{path}{f'[{a}]' if a else ''}", source=path, member=a if len(arrays) > 1 else "")
                for a in arrays]
    return [VolumeSource(kind, [path], name, options, label=str(path), source=path)]


def _dicom_source(group, options) -> VolumeSource:
    first = group.first
    frames = int_or_none(first.get("NumberOfFrames")) or 1
    rows, cols = int_or_none(first.get("Rows")), int_or_none(first.get("Columns"))
    n = frames if len(group.members) == 1 else len(group.members)
    source = group.paths[0] if len(group.paths) == 1 else Path(os.path.commonpath([str(p.parent)
                                                                                  for p in group.paths]))
    return VolumeSource("dicom", group.paths, "", dict(options or {}), modality=str(first.get("Modality", "") or ""),
                        shape=(n, rows, cols), label=group.label, source=source, events=list(group.events),
                        description=str(first.get("SeriesDescription", "") or first.get("ProtocolName", "") or ""),
                        alternates=dict(group.alternates))


def _name_dicom(pairs: list, root: Path) -> None:
    """Readable names: the folder path under root (parts joined by '-'), a file's stem for a lone file among
    others, and the series number where one folder holds several series."""
    base = root if root.is_dir() else root.parent
    folder_of = {id(s): Path(os.path.commonpath([str(p.parent) for p in s.paths])) for s, _ in pairs}
    per_dir = Counter(str(f) for f in folder_of.values())
    for src, group in pairs:
        folder = folder_of[id(src)]
        rel = folder.relative_to(base) if folder != base and folder.is_relative_to(base) else Path()
        name = "-".join(safe_component(part) for part in rel.parts) or safe_component(base.name, "volume")
        if root.is_file():
            name = safe_component(root.stem, "volume")
        elif per_dir[str(folder)] > 1:
            if len(src.paths) == 1:
                extra = src.paths[0].stem
            else:
                number = int_or_none(group.first.get("SeriesNumber"))
                extra = f"s{number}" if number is not None else src.description[:24]
            name = f"{name}-{safe_component(extra)}" if extra else name
        src.name = safe_component(name, "volume")


def _unique(name: str, taken: set[str]) -> str:
    base = safe_component(name, "volume")
    out, k = base, 2
    while out in taken:
        out, k = f"{base}-{k}", k + 1
    taken.add(out)
    return out
