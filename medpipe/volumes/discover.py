"""Find the volumes in a folder tree as a PACS export leaves it (with or without DICOMDIR).

Headers only are read here (pixel data deferred), so a large export is listed quickly:

1. every file is tried as DICOM; DICOMDIR indexes are skipped (the walk finds the files they list anyway),
   non-image objects (SR, RT structures, presentation states, ...) are counted, other formats noted;
2. image files are grouped by StudyInstanceUID / SeriesInstanceUID, each multi-frame file on its own;
3. a series that mixes image sizes, orientations or sample layouts is split, with one message;
4. slices at the same position are split by acquisition / echo / temporal position when that separates them,
   else the later duplicates are dropped, one message per file.

A bad file never stops the walk: it becomes one message naming the file and the reason.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .volume import PNG_SIDECAR, natural_key, slice_position

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
# Modalities whose objects carry no image to code (or not one a codec benchmark means): counted and skipped.
NON_IMAGE_MODALITIES = {"SR", "RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "PR", "KO", "REG", "SEG", "DOC", "FID",
                        "PLAN", "RWV", "ECG", "HD", "AU", "RESP", "M3D", "ASMT", "BI", "IVOCT_STUB"}
# Files that are plainly documents or code next to the data: ignored with one summary line, not an error each.
DOCUMENT_SUFFIXES = {".txt", ".md", ".py", ".json", ".csv", ".tsv", ".html", ".htm", ".xml", ".pdf", ".yaml",
                     ".yml", ".log", ".ini", ".cfg", ".sh", ".bat", ".rst", ".zip"}
DOCUMENT_NAMES = {"LICENSE", "LICENCE", "README", "COPYING", "NOTICE", "AUTHORS", "CHANGELOG", "SOURCE"}
# Formats medpipe recognises but does not read: one message each, not counted as errors.
OTHER_FORMATS = {".svs": "Aperio SVS whole-slide image (TIFF)", ".tif": "TIFF image", ".tiff": "TIFF image",
                 ".ndpi": "Hamamatsu whole-slide image", ".jpg": "JPEG image", ".jpeg": "JPEG image",
                 ".nii": "NIfTI volume", ".gz": "compressed file", ".mha": "MetaImage", ".nrrd": "NRRD volume"}
POSITION_DECIMALS = 3  # as volume.sort_slices: positions equal to the micrometre are duplicates


@dataclass
class Series:
    """Files (headers read, pixels deferred) that make one volume."""

    name: str
    paths: list[Path]
    headers: list
    notes: list[str] = field(default_factory=list)

    @property
    def first(self):
        return self.headers[0]


@dataclass
class Discovery:
    series: list[Series] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)  # single PNG images (not a medpipe PNG-slice folder)
    png_folders: list[Path] = field(default_factory=list)  # folders written by volume.dump_png
    errors: list[str] = field(default_factory=list)  # one per bad file: the run reports them and goes on
    notes: list[str] = field(default_factory=list)  # splits, recognised non-DICOM formats: worth saying, not errors
    non_image: Counter = field(default_factory=Counter)  # modality / SOP class -> count
    ignored: list[Path] = field(default_factory=list)  # documents beside the data
    dicomdirs: int = 0
    dicom_files: int = 0

    def summary(self, errors: int | None = None) -> str:
        """One line: what was found and skipped (``errors``: total bad files, including those found on
        decoding)."""
        parts = [f"{len(self.series)} DICOM series in {self.dicom_files} file(s)"]
        if self.pngs or self.png_folders:
            parts.append(f"{len(self.pngs) + len(self.png_folders)} PNG input(s)")
        if self.dicomdirs:
            parts.append(f"{self.dicomdirs} DICOMDIR index(es) (not needed: the files are walked)")
        if self.non_image:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.non_image.items()))
            parts.append(f"{sum(self.non_image.values())} non-image object(s) skipped ({kinds})")
        if self.ignored:
            names = ", ".join(p.name for p in self.ignored[:5]) + (", ..." if len(self.ignored) > 5 else "")
            parts.append(f"{len(self.ignored)} document file(s) ignored ({names})")
        errors = len(self.errors) if errors is None else errors
        if errors:
            parts.append(f"{errors} file(s) skipped with errors (messages above)")
        return "; ".join(parts)


def walk(root: Path) -> list[Path]:
    """Every regular file under root (hidden files and folders skipped), in natural order."""
    if root.is_file():
        return [root]
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        out += [Path(folder) / f for f in sorted(files, key=natural_key) if not f.startswith(".")]
    return out


def read_header(path: Path):
    """(dataset with large values deferred, None) or (None, reason). Files without the DICM preamble are tried
    once more without it only when the name suggests DICOM (old exports), so random files are not misparsed."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, defer_size=4096), None
    except InvalidDicomError:
        if path.suffix.lower() in ("", ".dcm", ".dicom", ".ima"):
            try:
                ds = pydicom.dcmread(path, defer_size=4096, force=True)
                if "SOPClassUID" in ds and ("Rows" in ds or "Modality" in ds):
                    return ds, None
            except Exception:  # noqa: BLE001 - any parse failure means "not DICOM" here
                pass
        return None, "not a DICOM file (no DICM preamble)"
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged headers
        return None, f"damaged DICOM header ({type(exc).__name__}: {exc}); is the file truncated?"


def is_image(ds) -> bool:
    return "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds


def sop_class_name(ds) -> str:
    uid = ds.get("SOPClassUID", "")
    name = getattr(uid, "name", "") or str(uid)
    return name.replace(" Storage", "") if name else "unknown SOP class"


def discover(root: Path) -> Discovery:
    """Walk ``root`` (a folder tree or one file) and group what it holds into series; never raises for a file."""
    root = Path(root)
    found = Discovery()
    by_series: dict[tuple, list[tuple[Path, object]]] = defaultdict(list)
    png_dirs: set[Path] = set()
    for path in walk(root):
        suffix = path.suffix.lower()
        if path.name == PNG_SIDECAR:
            png_dirs.add(path.parent)
            continue
        if suffix == ".png":
            found.pngs.append(path)
            continue
        if suffix in DOCUMENT_SUFFIXES or path.stem.upper() in DOCUMENT_NAMES:
            found.ignored.append(path)
            continue
        if suffix in OTHER_FORMATS:
            found.notes.append(f"{path}: {OTHER_FORMATS[suffix]}, not DICOM; skipped (medpipe reads DICOM series "
                               "and PNG images; convert it to DICOM to include it)")
            continue
        ds, reason = read_header(path)
        if ds is None:
            found.errors.append(f"{path}: {reason}; skipped")
            continue
        meta_class = ds.file_meta.get("MediaStorageSOPClassUID", "") if hasattr(ds, "file_meta") else ""
        if path.name.upper() == "DICOMDIR" or meta_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
            found.dicomdirs += 1
            continue
        if "SOPClassUID" not in ds:
            found.errors.append(f"{path}: incomplete DICOM header (no SOP Class UID); is the file truncated? "
                                "skipped")
            continue
        modality = str(ds.get("Modality", "")).upper()
        if modality in NON_IMAGE_MODALITIES:
            found.non_image[modality] += 1
            continue
        if not is_image(ds):
            if "Rows" in ds or "Image" in sop_class_name(ds):
                found.errors.append(f"{path}: image object ({sop_class_name(ds)}) without pixel data (removed, or "
                                   "the file is truncated); skipped")
            else:
                found.non_image[modality or sop_class_name(ds)] += 1
            continue
        found.dicom_files += 1
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        key = (str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")))
        if frames > 1 or not key[1]:  # a multi-frame object (or an unlabelled file) is a volume by itself
            key += (str(ds.get("SOPInstanceUID", path)),)
        by_series[key].append((path, ds))
    found.pngs = [p for p in found.pngs if p.parent not in png_dirs]
    found.png_folders = sorted(png_dirs)
    groups: list[tuple[list[Path], list, list[str]]] = []
    for members in by_series.values():
        groups += split_series(members, found)
    found.series = name_series(groups, root)
    return found


def geometry_key(ds) -> tuple:
    """What must be equal for slices to stack into one volume."""
    iop = ds.get("ImageOrientationPatient")
    iop = tuple(round(float(v), 3) for v in iop) if iop and len(iop) == 6 else None
    return (int(ds.get("Rows", 0)), int(ds.get("Columns", 0)), int(ds.get("SamplesPerPixel", 1)),
            int(ds.get("BitsAllocated", 0)), int(ds.get("PixelRepresentation", 0)), iop)


def describe_key(key: tuple) -> str:
    rows, cols, spp, bits, rep, iop = key
    text = f"{rows}x{cols}" + (f"x{spp}" if spp > 1 else "") + f" {bits}-bit" + (" signed" if rep else "")
    return text + (f" orientation {list(iop)}" if iop else "")


def split_series(members: list[tuple[Path, object]], found: Discovery) -> list[tuple[list[Path], list, list[str]]]:
    """One series -> one or more stackable groups (paths, headers, notes)."""
    first_path, first = members[0]
    label = f"series '{first.get('SeriesDescription', '') or first.get('SeriesNumber', '?')}' in {first_path.parent}"
    by_geom: dict[tuple, list] = defaultdict(list)
    for path, ds in members:
        by_geom[geometry_key(ds)].append((path, ds))
    notes = []
    if len(by_geom) > 1:
        parts = ", ".join(f"{describe_key(k)} x{len(v)}" for k, v in by_geom.items())
        msg = f"{label}: slices differ in size/orientation ({parts}); split into {len(by_geom)} volumes"
        found.notes.append(msg)
        notes.append(msg)
    out = []
    for group in by_geom.values():
        for sub in split_duplicates(group, label, found):
            out.append(([p for p, _ in sub], [d for _, d in sub], list(notes)))
    return out


def _positions(group) -> list:
    pos = [slice_position(ds) for _, ds in group]
    return [round(p, POSITION_DECIMALS) if p is not None else None for p in pos]


def split_duplicates(group: list, label: str, found: Discovery) -> list[list]:
    """Separate slices that share a position: by acquisition/echo/temporal index when that resolves it,
    otherwise keep the first file at each position and drop the rest (one message each)."""
    if len(group) < 2 or int(group[0][1].get("NumberOfFrames", 1) or 1) > 1:
        return [group]
    pos = _positions(group)
    if None in pos or len(set(pos)) == len(pos):
        return [group]
    for attr in ("AcquisitionNumber", "EchoNumbers", "TemporalPositionIdentifier"):
        parts: dict = defaultdict(list)
        for item in group:
            parts[str(item[1].get(attr, ""))].append(item)
        if len(parts) > 1 and all(len(set(_positions(p))) == len(p) for p in parts.values()):
            found.notes.append(f"{label}: repeated slice positions separated by {attr} into {len(parts)} volumes")
            return list(parts.values())
    group = sorted(group, key=lambda item: (int(item[1].get("InstanceNumber", 0) or 0), natural_key(item[0].name)))
    kept, seen = [], {}
    for item, p in zip(group, _positions(group)):
        if p in seen:
            found.errors.append(f"{item[0]}: same slice position ({p} mm along the normal) as {seen[p].name} "
                                f"in {label}; duplicate skipped")
            continue
        seen[p] = item[0]
        kept.append(item)
    return [kept]


def _safe(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text.strip())
    return keep.strip("._") or "volume"


def name_series(groups: list[tuple[list[Path], list, list[str]]], root: Path) -> list[Series]:
    """Readable, unique names: the folder path under root (parts joined by '-'), a file's stem for a lone file
    among others, and the series number where one folder holds several series."""
    base = root if root.is_dir() else root.parent
    per_dir: Counter = Counter(os.path.commonpath([str(p.parent) for p in paths]) for paths, _, _ in groups)
    named: list[Series] = []
    used: Counter = Counter()
    for paths, headers, notes in groups:
        folder = Path(os.path.commonpath([str(p.parent) for p in paths]))
        rel = folder.relative_to(base) if folder != base and folder.is_relative_to(base) else Path()
        name = "-".join(_safe(part) for part in rel.parts) or _safe(base.name)
        if root.is_file():
            name = _safe(root.stem)
        elif per_dir[str(folder)] > 1:
            ds = headers[0]
            if len(paths) == 1:
                extra = paths[0].stem
            else:
                extra = f"s{ds.get('SeriesNumber', '')}" if ds.get("SeriesNumber", "") != "" else ""
                extra = extra or _safe(str(ds.get("SeriesDescription", "")))[:24]
            name = f"{name}-{_safe(extra)}" if extra else name
        used[name] += 1
        if used[name] > 1:
            name = f"{name}-{used[name]}"
        named.append(Series(name=name, paths=paths, headers=headers, notes=notes))
    named.sort(key=lambda s: natural_key(s.name))
    return named
