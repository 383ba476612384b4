"""Volumes: a DICOM series, a multi-frame DICOM file or a folder of 16-bit PNG slices -> Volume.

Codecs work on the *stored* values (pydicom ``pixel_array`` without rescale); slope and intercept are
recorded, never applied.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import atomic_write_bytes

PNG_SIDECAR = "medpipe_slices.json"  # written by dump_png: value offset and signedness, so PNG -> Volume is exact


@dataclass(eq=False)
class Volume:
    """A stack of 2-D slices (slices x rows x cols) of stored integer values plus what describes them."""

    name: str
    pixels: np.ndarray
    bits_stored: int
    signed: bool
    bits_allocated: int
    source: Path
    files: list[Path] = field(default_factory=list)
    modality: str = ""
    body_part: str = ""
    description: str = ""
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    patient_hash: str = ""
    headers: list = field(default_factory=list, repr=False)  # pydicom Datasets without PixelData, one per slice/file
    notes: list[str] = field(default_factory=list)  # things done to the data on loading (e.g. RGB -> gray)
    frame_order: list[int] | None = None  # multi-frame source: stored frame index of each slice (None: same order)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.pixels.shape)  # type: ignore[return-value]

    @property
    def raw_bytes(self) -> int:
        """Size of the stored pixel data: rows x cols x slices x BitsAllocated/8 (SPEC's CR numerator)."""
        return int(self.pixels.size) * self.bits_allocated // 8

    @cached_property
    def value_range(self) -> tuple[int, int]:
        return int(self.pixels.min()), int(self.pixels.max())

    @property
    def span_bits(self) -> int:
        """Bits needed for the values actually present, after removing the minimum (the PSNR/SSIM peak's B)."""
        lo, hi = self.value_range
        return max(1, math.ceil(math.log2(hi - lo + 1)))

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 over shape, dtype and pixel bytes: a volume's identity for caches and results."""
        h = hashlib.sha256()
        h.update(repr((self.pixels.shape, self.pixels.dtype.str)).encode())
        h.update(np.ascontiguousarray(self.pixels).tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        lo, hi = self.value_range
        return {
            "volume": self.name, "source": str(self.source), "shape": list(self.shape),
            "dtype": str(self.pixels.dtype), "bits_stored": self.bits_stored, "bits_allocated": self.bits_allocated,
            "signed": self.signed, "min": lo, "max": hi, "span_bits": self.span_bits, "modality": self.modality,
            "body_part": self.body_part, "description": self.description, "rescale_slope": self.rescale_slope,
            "rescale_intercept": self.rescale_intercept, "patient_hash": self.patient_hash, "notes": self.notes,
        }


# ---------------------------------------------------------------- DICOM

def read_dicom(path: Path, *, pixels: bool = True):
    """pydicom.dcmread with one clear message for files that are not (complete) DICOM."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError:
        try:  # old exports: a bare data set without preamble / file meta; accept it only if it looks like one
            ds = pydicom.dcmread(path, stop_before_pixels=not pixels, force=True)
            if "SOPClassUID" in ds and "Rows" in ds:
                if "TransferSyntaxUID" not in ds.file_meta:  # say how it was read, so pixels can be decoded
                    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

                    implicit, little = ds.original_encoding
                    ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                                      ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
                return ds
        except Exception:  # noqa: BLE001 - any parse failure means "not DICOM" here
            pass
        raise InputError(f"{path}: not a DICOM file (no DICM preamble); remove it or point --input elsewhere")
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: cannot be read as DICOM ({type(exc).__name__}: {exc}); is it truncated?")


def decode_pixels(ds, path: Path) -> np.ndarray:
    """ds.pixel_array with messages that name the file and the missing decoder."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError(f"{path}: has no pixel data (SOP class {ds.get('SOPClassUID', '?')}); not an image")
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        ts = ds.file_meta.get("TransferSyntaxUID", "?") if hasattr(ds, "file_meta") else "?"
        if "is not supported" in str(exc):  # pydicom has no decoder for this syntax at all (e.g. MPEG-2 video)
            name = getattr(ts, "name", ts)
            raise InputError(f"{path}: unsupported transfer syntax {ts} ({name}): medpipe cannot decode its "
                             "pixel data; convert the file to an uncompressed or JPEG syntax or leave it out")
        raise InputError(f"{path}: cannot decode pixel data with transfer syntax {ts} ({exc}); "
                         "install the decoders in requirements.txt (pylibjpeg, pylibjpeg-libjpeg, "
                         "pylibjpeg-openjpeg, pyjpegls)")
    except (ValueError, EOFError, OSError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise InputError(f"{path}: pixel data is damaged or truncated ({type(exc).__name__}: {exc})")


def slice_position(ds) -> float | None:
    """Position along the slice normal (ImageOrientationPatient x ImagePositionPatient), or None."""
    iop, ipp = ds.get("ImageOrientationPatient"), ds.get("ImagePositionPatient")
    if not iop or not ipp or len(iop) != 6 or len(ipp) != 3:
        return None
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    return float(np.dot(normal, np.asarray(ipp, float)))


def sort_slices(headers: list, paths: list[Path]) -> list[int]:
    """Order of slices along the normal; falls back to InstanceNumber, then file name.

    Duplicate positions are refused: they mean two acquisitions were mixed in one folder.
    """
    positions = [slice_position(ds) for ds in headers]
    if all(p is not None for p in positions):
        rounded = [round(p, 3) for p in positions]  # type: ignore[arg-type]
        if len(set(rounded)) != len(rounded):
            dup = sorted({p for p in rounded if rounded.count(p) > 1})[:3]
            raise InputError(f"{paths[0].parent}: duplicate slice positions {dup} mm; the folder mixes "
                             "acquisitions - give one series per volume")
        return sorted(range(len(headers)), key=lambda i: positions[i])  # type: ignore[arg-type,return-value]
    if all("InstanceNumber" in ds for ds in headers):
        return sorted(range(len(headers)), key=lambda i: int(headers[i].InstanceNumber))
    return sorted(range(len(headers)), key=lambda i: natural_key(paths[i].name))


def natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def patient_hash(ds) -> str:
    """Short hash of PatientID + StudyInstanceUID: names a patient in listings without printing PHI."""
    key = f"{ds.get('PatientID', '')}|{ds.get('PatientName', '')}".encode()
    return hashlib.sha256(key).hexdigest()[:10]


def to_gray(frame: np.ndarray, photometric: str = "RGB") -> np.ndarray:
    """RGB colour -> luma (ITU-R BT.601 weights), as the thesis grey-scaled its colour samples.

    pydicom 3's ``pixel_array`` already converts YBR_FULL / YBR_FULL_422 (and J2K's YBR_ICT/RCT) to RGB, so the
    array is RGB whatever ``photometric`` the header names; the luma of RGB is YBR_FULL's Y.
    """
    f = frame.astype(np.float64)
    return np.clip(np.rint(f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114), 0, 255).astype(np.uint8)


def colour_frames(arr: np.ndarray, nframes: int, photometric: str, color: str) -> tuple[np.ndarray, str]:
    """A colour image (rows x cols x 3, or frames x rows x cols x 3) -> grey frames or component planes."""
    if arr.ndim == 3:
        arr = arr[None]
    if arr.dtype.itemsize > 1:
        raise InputError(f"colour images of {arr.dtype.itemsize * 8} bits are not supported (8-bit only)")
    if color == "components":
        # each component coded as its own grey plane: slice = frame * samples + component
        planes = np.moveaxis(arr, -1, 1).reshape(-1, *arr.shape[1:3])
        return planes, (f"colour ({photometric}) coded per component: {arr.shape[-1]} planes per image, "
                        "slice = image x components + component (RGB order)")
    return to_gray(arr), f"colour ({photometric}) converted to 8-bit grey (BT.601 luma)"


def strip_pixels(ds):
    """Header copy without pixel data (kept for DICOM output and restoring)."""
    ds = ds.copy()
    for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if tag in ds:
            del ds[tag]
    return ds


def frame_positions(ds) -> list | None:
    """Per-frame positions along the normal of an enhanced multi-frame object (functional groups), or None."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return None
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]

    def orientation(item):
        for group in (item, shared):
            seq = group.get("PlaneOrientationSequence") if group is not None else None
            if seq:
                return seq[0].get("ImageOrientationPatient")
        return None

    out = []
    for item in per_frame:
        pos = item.get("PlanePositionSequence")
        iop, ipp = orientation(item), pos[0].get("ImagePositionPatient") if pos else None
        if not iop or not ipp or len(iop) != 6 or len(ipp) != 3:
            return None
        normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
        out.append(round(float(np.dot(normal, np.asarray(ipp, float))), 3))
    return out


def value_transform(ds) -> tuple[float, float]:
    """(slope, intercept): top-level Rescale, else the enhanced objects' shared Pixel Value Transformation."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    for groups in (ds.get("SharedFunctionalGroupsSequence"), ds.get("PerFrameFunctionalGroupsSequence")):
        if groups:
            seq = groups[0].get("PixelValueTransformationSequence")
            if seq:
                return float(seq[0].get("RescaleSlope", 1) or 1), float(seq[0].get("RescaleIntercept", 0) or 0)
    return 1.0, 0.0


def volume_from_datasets(datasets: list, paths: list[Path], name: str, source: Path, color: str = "gray") -> Volume:
    """Build one Volume from already-read DICOM datasets of one series (single- or multi-frame).

    Colour images become 8-bit grey (``color="gray"``, the thesis's choice) or one grey plane per component
    (``color="components"``); either is recorded in ``notes``.
    """
    order = sort_slices(datasets, paths) if len(datasets) > 1 else [0]
    datasets = [datasets[i] for i in order]
    paths = [paths[i] for i in order]
    first = datasets[0]
    notes: list[str] = []
    frames = []
    for ds, path in zip(datasets, paths):
        arr = decode_pixels(ds, path)
        spp = int(ds.get("SamplesPerPixel", 1))
        nframes = int(ds.get("NumberOfFrames", 1) or 1)
        if spp > 1:
            try:
                arr, note = colour_frames(arr, nframes, str(ds.get("PhotometricInterpretation", "RGB")), color)
            except InputError as exc:
                raise InputError(f"{path}: {exc}") from None
            if note not in notes:
                notes.append(note)
        if nframes == 1 and arr.ndim == 2:
            arr = arr[None]
        frames.append(arr)
    shapes = {f.shape[1:] for f in frames}
    if len(shapes) > 1:
        raise InputError(f"{source}: slices differ in size {sorted(shapes)}; split the series by image size "
                         "(give the folder as input: medpipe.discover splits mixed series)")
    pixels = np.concatenate(frames, axis=0)
    frame_order = None
    if len(datasets) == 1 and pixels.shape[0] > 1 and int(first.get("SamplesPerPixel", 1)) == 1:
        positions = frame_positions(first)
        if positions and len(positions) == pixels.shape[0]:
            if len(set(positions)) == len(positions):
                frame_order = sorted(range(len(positions)), key=lambda i: positions[i])
                if frame_order != list(range(len(positions))):
                    pixels = pixels[frame_order]
                    notes.append("frames sorted along the slice normal (functional groups); DICOM output keeps "
                                 "the stored order")
                else:
                    frame_order = None
            else:
                notes.append("frames share positions (several stacks or time points): kept in stored order")
    pixels = np.ascontiguousarray(pixels)
    spp = int(first.get("SamplesPerPixel", 1))
    signed = bool(int(first.get("PixelRepresentation", 0))) and spp == 1
    bits_alloc = int(first.get("BitsAllocated", pixels.dtype.itemsize * 8)) if spp == 1 else 8
    bits_stored = int(first.get("BitsStored", bits_alloc)) if spp == 1 else 8
    if pixels.dtype.kind not in "iu":
        raise InputError(f"{source}: float pixel data ({pixels.dtype}) is not supported; medpipe codes integers")
    return Volume(
        name=name, pixels=pixels, bits_stored=bits_stored, signed=signed, bits_allocated=bits_alloc,
        source=source, files=paths, modality=str(first.get("Modality", "")),
        body_part=str(first.get("BodyPartExamined", "")),
        description=str(first.get("SeriesDescription", "") or first.get("ProtocolName", "")),
        rescale_slope=value_transform(first)[0], rescale_intercept=value_transform(first)[1],
        patient_hash=patient_hash(first), headers=[strip_pixels(ds) for ds in datasets], notes=notes,
        frame_order=frame_order,
    )


def load_dicom_files(paths: list[Path], name: str | None = None, source: Path | None = None) -> Volume:
    """Read and sort the files of one series (or one multi-frame file)."""
    if not paths:
        raise InputError(f"{source}: no DICOM files")
    source = source or paths[0].parent
    datasets = [read_dicom(p) for p in paths]
    return volume_from_datasets(datasets, list(paths), name or source.name, source)


# ---------------------------------------------------------------- PNG stacks

def load_png_folder(folder: Path, name: str | None = None) -> Volume:
    import imagecodecs

    pngs = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"), key=lambda p: natural_key(p.name))
    if not pngs:
        raise InputError(f"{folder}: no .png slices")
    slices = []
    for p in pngs:
        try:
            slices.append(imagecodecs.png_decode(p.read_bytes()))
        except Exception as exc:  # imagecodecs raises its own error types per build
            raise InputError(f"{p}: not a readable PNG ({exc})")
    if len({s.shape for s in slices}) > 1:
        raise InputError(f"{folder}: PNG slices differ in size; one volume needs equal slices")
    if slices[0].ndim != 2:
        raise InputError(f"{pngs[0]}: colour PNG; medpipe volumes from PNG must be greyscale")
    pixels = np.stack(slices)
    side = folder / PNG_SIDECAR
    meta = json.loads(side.read_text()) if side.exists() else {}
    offset = int(meta.get("offset", 0))
    signed = bool(meta.get("signed", False))
    if offset or signed:
        pixels = (pixels.astype(np.int32) + offset).astype(np.int16 if signed else np.uint16)
    bits_alloc = pixels.dtype.itemsize * 8
    return Volume(name=name or folder.name, pixels=pixels, bits_stored=int(meta.get("bits_stored", bits_alloc)),
                  signed=signed, bits_allocated=bits_alloc, source=folder, files=pngs,
                  modality=str(meta.get("modality", "")), body_part=str(meta.get("body_part", "")))


def load_png_image(path: Path, name: str | None = None, color: str = "gray") -> Volume:
    """One PNG picture (grey 8/16-bit, or 8-bit RGB/RGBA converted like a colour DICOM) as a 1-slice volume."""
    import imagecodecs

    try:
        arr = imagecodecs.png_decode(path.read_bytes())
    except Exception as exc:  # imagecodecs raises its own error types per build
        raise InputError(f"{path}: not a readable PNG ({exc})")
    notes = []
    if arr.ndim == 3:
        if arr.shape[-1] == 4:
            arr = arr[..., :3]
            notes.append("alpha channel dropped")
        elif arr.shape[-1] == 2:  # grey + alpha
            arr = arr[..., 0]
    if arr.ndim == 3:
        try:
            arr, note = colour_frames(arr, 1, "RGB", color)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        notes.append(note)
    else:
        arr = arr[None]
    if arr.dtype.kind != "u":
        raise InputError(f"{path}: PNG of {arr.dtype} samples is not supported")
    bits = arr.dtype.itemsize * 8
    return Volume(name=name or path.stem, pixels=np.ascontiguousarray(arr), bits_stored=bits, signed=False,
                  bits_allocated=bits, source=path, files=[path], modality="OT", notes=notes)


def dump_png(volume: Volume, folder: Path) -> Path:
    """Write each slice as a 16-bit (or 8-bit) PNG, values exact; signed data is offset and the offset recorded."""
    import imagecodecs

    folder.mkdir(parents=True, exist_ok=True)
    lo, _ = volume.value_range
    offset = lo if volume.signed or lo < 0 else 0
    data = volume.pixels.astype(np.int64) - offset
    dtype = np.uint8 if volume.pixels.dtype.itemsize == 1 and offset == 0 else np.uint16
    width = max(3, len(str(volume.shape[0])))
    for i, sl in enumerate(data.astype(dtype)):
        atomic_write_bytes(folder / f"slice_{i:0{width}d}.png", imagecodecs.png_encode(sl))
    atomic_write_bytes(folder / PNG_SIDECAR, json.dumps({
        "offset": offset, "signed": volume.signed, "bits_stored": volume.bits_stored, "source": str(volume.source),
        "modality": volume.modality, "body_part": volume.body_part}, indent=1).encode())
    return folder


# ---------------------------------------------------------------- entry point

def looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def load_volume(path: Path | str, name: str | None = None) -> Volume:
    """A DICOM series folder, a multi-frame/single DICOM file, or a folder of PNG slices."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: does not exist; check the preset's 'input' or --input")
    if path.is_file():
        return load_dicom_files([path], name or path.stem, path)
    files = [p for p in path.iterdir() if p.is_file()]
    if any(p.suffix.lower() == ".png" for p in files) and not any(looks_like_dicom(p) for p in files):
        return load_png_folder(path, name)
    dicoms = [p for p in files if looks_like_dicom(p)]
    if not dicoms:
        raise InputError(f"{path}: no DICOM files (with DICM preamble) or PNG slices found")
    return load_dicom_files(sorted(dicoms, key=lambda p: natural_key(p.name)), name, path)
