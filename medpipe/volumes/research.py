"""Research volumes: NIfTI (nibabel), NRRD (pynrrd), MetaImage .mha/.mhd (metaimageio), NumPy .npy/.npz with a
JSON sidecar. They carry no DICOM header (``headers == []``).

Layout: slices x rows x cols. NIfTI/NRRD/MetaImage arrays are (x, y, z[, more]) in the file's own index order;
slice k is the (y, x) plane at z = k, and any axes after z (time, diffusion directions) are stacked as further
slices, said in a note. Stored values are kept: NIfTI's scl_slope/scl_inter become rescale slope/intercept as
DICOM's do. Integer data is coded as it is; float data holding integers only is converted exactly (said in a
note); other float data is refused with one line.

Each reader library is optional: when it is missing the file gets "reader not available: install X".
"""
from __future__ import annotations

import gzip
import importlib
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError, MedpipeError, described
from ..memory import check_fits
from ..options import Option
from .colour import colour_to_slices
from .input_options import input_settings, read_json_sidecar
from .research_data import read_exactly, read_metaimage, read_nrrd
from .volume import Volume, exact_integers, smallest_integer_dtype

# kind -> (module to import, what to install): one maintained library per format (see README "Accepted inputs")
READERS = {
    "nifti": ("nibabel", "nibabel (pip install 'nibabel>=5.2,<6')"),
    "nrrd": ("nrrd", "pynrrd (pip install 'pynrrd>=1.0,<2')"),
    "metaimage": ("metaimageio", "metaimageio (pip install 'metaimageio>=1.3,<2')"),
    "numpy": ("numpy", "numpy"),
}
KIND_NAMES = {"nifti": "NIfTI volume", "nrrd": "NRRD volume", "metaimage": "MetaImage volume",
              "numpy": "NumPy array"}
# The NumPy sidecar (<name>.json beside <name>.npy/.npz): what a bare array cannot say about itself
NUMPY_SIDECAR = {
    "shape": Option(list, None, "the array's shape, checked against the file (slices, rows, cols)", item=int),
    "bits_stored": Option(int, None, "bits of each value that carry data (default: the dtype's)", range=(1, 32)),
    "signed": Option(bool, None, "whether values are signed (checked against the data)"),
    "spacing": Option(list, None, "[slice, row, col] spacing in mm", item=(int, float)),
    "modality": Option(str, "", "DICOM modality code (CT, MR, ...)"),
    "description": Option(str, "", "what the volume is"),
    "body_part": Option(str, "", "body part examined"),
    "rescale_slope": Option((int, float), 1.0, "stored value x slope + intercept = meaningful value"),
    "rescale_intercept": Option((int, float), 0.0, "stored value x slope + intercept = meaningful value"),
    "padding": Option((int, list), None, "stored value (or [low, high]) marking padding outside the scan",
                      item=int),
    "lossy_source": Option(str, "", "why the data was already lossy (e.g. 'exported from JPEG q=90')"),
    "array": Option(str, None, ".npz only: the name of the array to read (default: every array)"),
}
MET_MODALITY = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM", "MET_MOD_US": "US"}


def reader(kind: str, path: Path):
    module, install = READERS[kind]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{path}: {KIND_NAMES[kind]}: reader not available: install {install}")


def _to_slices(arr: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """(x, y, z, more...) in the file's index order -> (slices, rows, cols), extra axes stacked after z."""
    if arr.ndim == 2:
        return arr.T[None]
    if arr.ndim < 2:
        raise InputError(f"{path}: {arr.ndim}-D data is not an image")
    stacked = arr.reshape(*arr.shape[:3], -1)  # (x, y, z, rest)
    if stacked.shape[3] > 1:
        notes.append(f"{arr.ndim}-D data {list(arr.shape)}: {stacked.shape[3]} stacks of {arr.shape[2]} slices "
                     "kept one after the other (slice = stack x slices + z)")
    out = np.transpose(stacked, (3, 2, 1, 0))
    return out.reshape(-1, out.shape[2], out.shape[3])


def _integers(arr: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """Native byte order; float -> exact integers or refused; bool -> uint8; wide ints narrowed when exact."""
    if arr.dtype.kind == "b":
        notes.append("boolean data stored as uint8 0/1")
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        arr, note = exact_integers(arr, str(path))
        notes.append(note)
        return arr
    if arr.dtype.kind not in "iu":
        raise InputError(f"{path}: {arr.dtype} data is not supported (integer or integral float data only)")
    if arr.dtype.itemsize > 2 and arr.size:  # int32 label maps etc.: codecs take 8/16 bits
        lo, hi = int(arr.min()), int(arr.max())
        narrow = smallest_integer_dtype(lo, hi)
        if narrow is not None and narrow.itemsize < arr.dtype.itemsize:
            notes.append(f"{arr.dtype} values {lo}..{hi} stored as {narrow} (exact)")
            return arr.astype(narrow)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _volume(path: Path, name: str, pixels: np.ndarray, notes: list[str], **facts) -> Volume:
    if pixels.ndim == 4 and pixels.shape[-1] in (3, 4) and pixels.dtype == np.uint8 and facts.pop("rgb", False):
        pixels, note, facts["color"] = colour_to_slices(pixels, "RGB", facts.pop("colour_mode"))
        notes.insert(0, note)
    facts.pop("rgb", None), facts.pop("colour_mode", None)
    if pixels.ndim != 3:
        raise InputError(f"{path}: {pixels.shape[-1]} components per voxel ({pixels.dtype}); medpipe reads grey "
                         "volumes and 8-bit RGB only")
    pixels = np.ascontiguousarray(_integers(pixels, path, notes))
    bits = pixels.dtype.itemsize * 8
    return Volume(name=name, pixels=pixels, bits_stored=facts.pop("bits_stored", None) or bits,
                  signed=pixels.dtype.kind == "i", bits_allocated=bits, source=path, files=[path], notes=notes,
                  headers=[], **facts)


def _nifti_data(path: Path, proxy) -> np.ndarray:
    """The stored values, once the header's shape x dtype is known to fit, read into one buffer that only what the
    file holds touches (nibabel fills what the header claims before learning how much there is). A .nii.gz is
    inflated here, stopping one byte past the offset plus the bytes that shape needs (that byte tells an excess)."""
    need = math.prod(proxy.shape) * proxy.dtype.itemsize
    check_fits(2 * need, str(path))  # the array, and the copy Volume.content_hash hashes
    gz = str(path).lower().endswith(".gz")
    what = "gzip stream" if gz else "file"
    with (gzip.open if gz else open)(path, "rb") as fh:
        skipped = fh.seek(proxy.offset)  # past the header and its extensions (inflated a piece at a time)
        skipped = skipped if gz else min(skipped, os.fstat(fh.fileno()).st_size)
        data, got = read_exactly(fh, need)
        if got != need:
            raise InputError(f"{path}: the {what} holds {skipped + got} bytes, the header says "
                             f"{proxy.offset} + {need} (shape {list(proxy.shape)} {proxy.dtype}); truncated?")
        if gz and fh.read(1):  # a plain file's trailing bytes are ignored, as nibabel does
            raise InputError(f"{path}: the gzip stream inflates past the {proxy.offset + need} bytes its header "
                             f"says (shape {list(proxy.shape)} {proxy.dtype}); refused")
    return np.ndarray(proxy.shape, proxy.dtype, buffer=data, order="F")


def load_nifti(path: Path, name: str, options: dict | None = None) -> Volume:
    nib = reader("nifti", path)
    try:
        img = nib.load(str(path), mmap=False)  # the header only
        raw = _nifti_data(path, img.dataobj)
        slope, inter = float(img.dataobj.slope), float(img.dataobj.inter)
        zooms = [float(z) for z in img.header.get_zooms()[:3]]
        unit = img.header.get_xyzt_units()[0] if hasattr(img.header, "get_xyzt_units") else "mm"
        descrip = img.header.get("descrip") if hasattr(img.header, "get") else None
    except MedpipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on damaged files
        raise InputError(f"{path}: not a readable NIfTI file ({described(exc)})")
    notes: list[str] = []
    if raw.dtype.names:  # NIfTI RGB24/RGBA32: a structured dtype with one field per component
        raw = np.stack([raw[n] for n in raw.dtype.names[:3]], axis=-1)
        pixels = np.stack([_to_slices(raw[..., c], path, notes) for c in range(3)], axis=-1)
        notes[:] = notes[:1]
    else:
        pixels = _to_slices(raw, path, notes)
    scale = {"meter": 1000.0, "mm": 1.0, "micron": 0.001}.get(unit, 1.0)
    spacing = tuple(round(z * scale, 6) for z in (zooms + [0.0] * 3)[:3][::-1]) if len(zooms) >= 2 else None
    text = descrip.tobytes().decode("latin-1").strip("\x00 ") if hasattr(descrip, "tobytes") else ""
    settings = input_settings(options)
    return _volume(path, name, pixels, notes, rescale_slope=slope if np.isfinite(slope) else 1.0,
                   rescale_intercept=inter if np.isfinite(inter) else 0.0, spacing=spacing, description=text,
                   rgb=bool(raw.ndim and pixels.ndim == 4), colour_mode=settings["color"])


def load_nrrd(path: Path, name: str, options: dict | None = None) -> Volume:
    nrrd = reader("nrrd", path)
    try:
        data, header = read_nrrd(path, nrrd)  # (x, y, z, ...) like NIfTI; pynrrd parses the header only
    except MedpipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - pynrrd raises NRRDError, ValueError, OSError ...
        raise InputError(f"{path}: not a readable NRRD file ({described(exc)})")
    notes: list[str] = []
    kinds = [str(k).lower() for k in header.get("kinds", [])]
    rgb = bool(kinds) and kinds[0] in ("rgb-color", "3-color", "rgba-color") and data.dtype == np.uint8
    if rgb:  # colour component first in index order F: move it last
        data = np.moveaxis(data, 0, -1)
        pixels = np.stack([_to_slices(data[..., c], path, notes) for c in range(data.shape[-1])], axis=-1)
    else:
        pixels = _to_slices(data, path, notes)
    spacing = None
    directions = header.get("space directions")
    try:
        if directions is not None:
            steps = [float(np.linalg.norm(v)) for v in directions if v is not None and np.all(np.isfinite(v))]
        else:
            steps = [float(s) for s in header.get("spacings", []) if np.isfinite(s)]
        if len(steps) >= 2:
            spacing = tuple(round(s, 6) for s in (steps + [0.0])[:3][::-1])
    except (TypeError, ValueError):
        spacing = None
    settings = input_settings(options)
    return _volume(path, name, pixels, notes, spacing=spacing, description=str(header.get("content", "") or ""),
                   rgb=rgb, colour_mode=settings["color"])


def load_metaimage(path: Path, name: str, options: dict | None = None) -> Volume:
    metaimageio = reader("metaimage", path)
    try:
        image, meta = read_metaimage(path, metaimageio)  # metaimageio.read, within the header's size and folder
    except MedpipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - metaimageio raises ValueError, OSError, zlib.error ...
        raise InputError(f"{path}: not a readable MetaImage file ({described(exc)})")
    if image is None:
        raise InputError(f"{path}: MetaImage without image data")
    notes: list[str] = []
    channels = int(meta.get("ElementNumberOfChannels") or 1)
    arr = np.asarray(image)  # C order: (z, y, x[, channels])
    if channels == 1:
        pixels = arr.reshape(-1, *arr.shape[-2:]) if arr.ndim >= 2 else arr
        if arr.ndim > 3:
            notes.append(f"{arr.ndim}-D data {list(arr.shape)} stacked into {pixels.shape[0]} slices")
        if arr.ndim == 2:
            pixels = arr[None]
    else:
        pixels = arr.reshape(-1, *arr.shape[-3:]) if arr.ndim > 3 else arr[None]
    steps = [float(s) for s in meta.get("ElementSpacing", [])]
    spacing = tuple(round(s, 6) for s in (steps + [0.0])[:3][::-1]) if len(steps) >= 2 else None
    settings = input_settings(options)
    return _volume(path, name, pixels, notes, spacing=spacing,
                   modality=MET_MODALITY.get(str(meta.get("Modality", "")).upper(), ""),
                   rgb=channels in (3, 4), colour_mode=settings["color"])


def numpy_sidecar(path: Path) -> Path | None:
    """``<stem>.json`` (or ``<name>.json``) beside a .npy/.npz file."""
    for candidate in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if candidate.is_file():
            return candidate
    return None


def read_sidecar(path: Path) -> dict:
    side = numpy_sidecar(path)
    if side is None:
        return {}
    return read_json_sidecar(side, NUMPY_SIDECAR, "it must be a JSON object of the keys in the README")


def numpy_arrays(path: Path) -> list[str]:
    """Names of the arrays a .npz holds ([""] for a .npy), without loading them."""
    if path.suffix.lower() != ".npz":
        return [""]
    try:
        with np.load(path, allow_pickle=False) as npz:
            return list(npz.files)
    except Exception as exc:  # noqa: BLE001 - zipfile/numpy raise many types on damaged archives
        raise InputError(f"{path}: not a readable .npz ({described(exc)})")


def _npy_header(fh, where: str) -> tuple[tuple, bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data bytes from a .npy header, checked to fit in memory before any data is
    read: a few compressed bytes in a .npz can claim (and inflate to) gigabytes."""
    version = np.lib.format.read_magic(fh)
    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    shape, fortran, dtype = read(fh) if read else np.lib.format._read_array_header(fh, version)  # 3.0: no public one
    if dtype.hasobject:
        raise InputError(f"{where}: object array; object arrays are refused (never unpickled)")
    need = math.prod(shape) * dtype.itemsize
    check_fits(2 * need, where)  # the array, and the copy Volume.content_hash hashes
    return shape, fortran, dtype, need


def _npz_array(path: Path, key: str, where: str) -> np.ndarray:
    """One array of a .npz, its .npy header read first; the member must inflate to exactly what the header says
    (the zip's own size is checked, then the read stops there: zipfile never inflates past it)."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        name = key + ".npy" if key + ".npy" in names else key if key in names else None
        if name is None:
            name = next((n for n in names if n.endswith(".npy")), None) if not key else None
        if name is None:
            raise InputError(f"{where}: no array {key!r} in the .npz (it holds {', '.join(names[:10])})")
        info = zf.getinfo(name)
        with zf.open(info) as fh:
            shape, fortran, dtype, need = _npy_header(fh, where)
            if info.file_size != fh.tell() + need:
                raise InputError(f"{where}: member {name} inflates to {info.file_size} bytes, its .npy header says "
                                 f"shape {list(shape)} {dtype} ({fh.tell() + need} bytes with the header); refused")
            data, got = read_exactly(fh, need)
            if got != need or fh.read(1):  # reading to the end checks the member's CRC too
                raise InputError(f"{where}: member {name} holds {got} data bytes, its .npy header says {need}")
    return data.view(dtype).reshape(shape, order="F" if fortran else "C")


def load_numpy(path: Path, name: str, options: dict | None = None, member: str = "") -> Volume:
    """A .npy array, or one array of a .npz, as slices x rows x cols; never unpickles (allow_pickle=False)."""
    meta = read_sidecar(path)
    where = f"{path}{f'[{member}]' if member else ''}"
    try:
        if path.suffix.lower() == ".npz":
            arr = _npz_array(path, member or meta.get("array") or "", where)
        else:
            with open(path, "rb") as fh:
                _npy_header(fh, where)
            arr = np.load(path, allow_pickle=False)
    except MedpipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError (pickled objects), OSError, zip errors
        raise InputError(f"{path}: not a readable NumPy file ({described(exc)}); object arrays are "
                         "refused (never unpickled)")
    notes: list[str] = [] if meta else [f"no JSON sidecar ({path.stem}.json): bits stored from the dtype, "
                                        "modality and spacing unknown"]
    if meta.get("shape") is not None and list(arr.shape) != list(meta["shape"]):
        raise InputError(f"{where}: the sidecar says shape {meta['shape']}, the array is {list(arr.shape)}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"{where}: {arr.ndim}-D array; medpipe reads slices x rows x cols (or one 2-D image)")
    arr = _integers(arr, path, notes)
    if meta.get("signed") is False and arr.dtype.kind == "i":
        if arr.size and int(arr.min()) < 0:
            raise InputError(f"{where}: the sidecar says unsigned, the array holds negative values")
        arr = arr.astype(np.dtype(f"u{arr.dtype.itemsize}"))
    elif meta.get("signed") and arr.dtype.kind == "u":
        notes.append("the sidecar says signed; the unsigned array is kept unsigned (its values are all >= 0)")
    bits = meta.get("bits_stored")
    if bits and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        top = (1 << (bits - 1)) - 1 if arr.dtype.kind == "i" else (1 << bits) - 1
        low = -(1 << (bits - 1)) if arr.dtype.kind == "i" else 0
        if lo < low or hi > top:
            raise InputError(f"{where}: values {lo}..{hi} do not fit the sidecar's bits_stored {bits}")
    pad = meta.get("padding")
    if isinstance(pad, list) and len(pad) != 2:
        raise InputError(f"{where}: padding {pad} is neither one stored value nor [low, high]")
    padding = tuple(pad) if isinstance(pad, list) else (pad, pad) if isinstance(pad, int) else None
    spacing = meta.get("spacing")
    return _volume(path, name, arr, notes, bits_stored=bits, modality=meta.get("modality", ""),
                   description=meta.get("description", ""), body_part=meta.get("body_part", ""),
                   rescale_slope=float(meta.get("rescale_slope", 1.0)),
                   rescale_intercept=float(meta.get("rescale_intercept", 0.0)),
                   padding=(min(padding), max(padding)) if padding else None,
                   spacing=tuple(float(s) for s in spacing) if spacing and len(spacing) == 3 else None,
                   lossy_source=meta.get("lossy_source", ""))


LOADERS = {"nifti": load_nifti, "nrrd": load_nrrd, "metaimage": load_metaimage}
