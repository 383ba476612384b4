"""The data of NRRD and MetaImage files, read within what their headers say.

Both headers give the shape and sample type, so the decoded size is known before a byte of data is read: it is
checked against free memory, and raw data is read, gzip / zlib / bzip2 data inflated, at most that many bytes plus
one (which tells an excess, refused). pynrrd and metaimageio inflate without a bound (a 3 MB stream claiming 2 x 2 x
2 voxels inflated to 3 GB) and follow a header's data-file names anywhere (``../secret.raw``, ``/dev/zero``), so
medpipe parses the header with them and reads the data itself. No path built from a header leaves its folder.
"""
from __future__ import annotations

import bz2
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..memory import check_fits

CHUNK = 2**20  # compressed bytes fed to a decompressor at a time
MAX_DATA_FILES = 100_000  # a MetaImage LIST / pattern naming more files than this is refused before any is opened


def data_file(header: Path, name: str) -> Path:
    """The data file a detached header names: inside the header's folder (or below it) and a regular file."""
    folder = header.parent.resolve()
    real = (header.parent / name).resolve()
    if folder not in real.parents:
        raise InputError(f"{header}: data file {name!r} outside the header's folder; refused")
    if not real.exists():
        raise InputError(f"{header}: data file {name!r} not found beside the header")
    if not real.is_file():
        raise InputError(f"{header}: data file {name!r} is not a regular file; refused")
    return real


def read_exactly(fh, need: int) -> tuple[np.ndarray, int]:
    """Up to ``need`` bytes of ``fh`` into one buffer, and how many came. np.empty leaves pages untouched until
    written, so a header claiming more than the file holds costs only what it holds; a piece at a time, since
    readinto on zip and gzip streams reads into a temporary the size asked."""
    data, got = np.empty(need, np.uint8), 0
    while got < need:
        n = fh.readinto(memoryview(data)[got:got + 2**24])
        if not n:
            break
        got += n
    return data, got


def inflate_into(fh, out: np.ndarray, got: int, kind: str, what: str, limit: int | None = None) -> int:
    """Inflate one gzip / zlib / bzip2 stream from ``fh`` into ``out`` from ``got`` on, never more than fits
    (one byte past it is refused); ``limit``: compressed bytes the stream may take. Returns the new fill."""
    need = len(out)
    left = math.inf if limit is None else limit
    if kind == "bzip2":
        dec = bz2.BZ2Decompressor()
    else:
        dec = zlib.decompressobj(zlib.MAX_WBITS | (16 if kind == "gzip" else 0))
    while not dec.eof:
        chunk = dec.unconsumed_tail if kind != "bzip2" else b""  # zlib hands back what it could not yet inflate
        if not chunk and (kind != "bzip2" or dec.needs_input):
            chunk = fh.read(int(min(CHUNK, left))) if left > 0 else b""
            left -= len(chunk)
            if not chunk and kind == "bzip2":
                break
        piece = dec.decompress(chunk, need + 1 - got)
        if not piece and not chunk:
            break
        if got + len(piece) > need:
            raise InputError(f"{what}: the {kind} data inflates past the {need} bytes its header's shape and type "
                             "need; refused")
        out[got:got + len(piece)] = np.frombuffer(piece, np.uint8)
        got += len(piece)
    return got


def short(what: str, got: int, need: int) -> InputError:
    return InputError(f"{what}: the data holds {got} bytes, the header's shape and type need {need}; truncated?")


def skip_lines(fh, count: int, what: str) -> None:
    """Skip ``count`` lines (NRRD 'line skip'), refused beyond the bytes the file has left: each line takes one
    byte at least, and a loop over a header's 10^12 never ends. Newlines are counted a piece at a time."""
    here = fh.tell()
    left = os.fstat(fh.fileno()).st_size - here
    if count < 0 or count > left:
        raise InputError(f"{what}: line skip {count} is beyond the {left} bytes left in the data file; refused")
    while count:
        piece = fh.read(CHUNK)
        if not piece:
            raise InputError(f"{what}: line skip {count} runs past the end of the data file")
        lines = piece.count(b"\n")
        if lines < count:
            count -= lines
            continue
        end = -1
        for _ in range(count):
            end = piece.index(b"\n", end + 1)
        fh.seek(fh.tell() - len(piece) + end + 1)
        return


def read_nrrd(path: Path, nrrd) -> tuple[np.ndarray, dict]:
    """(x, y, z, ...) data in index order F and the header, as ``nrrd.read(path, index_order="F")`` gives them."""
    with open(path, "rb") as fh:
        header = nrrd.read_header(fh)  # leaves fh at the first byte after the header
        for key in ("type", "dimension", "sizes", "encoding"):
            if key not in header:
                raise InputError(f"{path}: NRRD header without the required field '{key}'")
        sizes = [int(s) for s in header["sizes"]]
        if header["dimension"] != len(sizes) or min(sizes, default=0) < 0:
            raise InputError(f"{path}: NRRD sizes {sizes} do not match dimension {header['dimension']}")
        dtype = nrrd.reader._determine_datatype(header)  # the header's type and endian, as pynrrd reads them
        need = math.prod(sizes) * dtype.itemsize
        check_fits(2 * need, str(path))  # the array, and the copy Volume.content_hash hashes
        name = header.get("datafile", header.get("data file"))
        if name is None:
            data = _nrrd_payload(fh, header, need, dtype, str(path))
        else:
            with open(data_file(path, str(name)), "rb") as data_fh:
                data = _nrrd_payload(data_fh, header, need, dtype, str(path))
    return data.reshape(sizes[::-1]).T, header


def _nrrd_payload(fh, header: dict, need: int, dtype: np.dtype, what: str) -> np.ndarray:
    """The samples after 'line skip' and 'byte skip' (a skip beyond the data file's size is refused)."""
    encoding = str(header["encoding"]).lower()
    skip_lines(fh, int(header.get("lineskip", header.get("line skip", 0))), what)
    byte_skip = int(header.get("byteskip", header.get("byte skip", 0)))
    size = os.fstat(fh.fileno()).st_size
    if byte_skip < -1 or byte_skip > size:
        raise InputError(f"{what}: byte skip {byte_skip} is outside the data file's {size} bytes; refused")
    if encoding == "raw":
        fh.seek(-need if byte_skip == -1 else byte_skip, os.SEEK_END if byte_skip == -1 else os.SEEK_CUR)
        data, got = read_exactly(fh, need)
        if got != need or (byte_skip != -1 and fh.read(1)):
            raise short(what, got, need) if got != need else InputError(
                f"{what}: the data file holds more than the {need} bytes its header's shape and type need; refused")
        return data.view(dtype)
    if encoding in ("ascii", "text", "txt"):
        fh.seek(max(byte_skip, 0), os.SEEK_CUR)
        values = np.fromstring(fh.read(size).decode("ascii", "replace"), dtype, sep=" ")
        if values.size != need // dtype.itemsize:
            raise InputError(f"{what}: the text data holds {values.size} values, the header's sizes say "
                             f"{need // dtype.itemsize}")
        return values
    kind = {"gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}.get(encoding)
    if kind is None:
        raise InputError(f"{what}: NRRD encoding {header['encoding']!r} is not supported (raw, ascii, gzip, bzip2)")
    if byte_skip == -1:
        raise InputError(f"{what}: byte skip -1 with {kind} data is not supported (the end is unknown until all "
                         "is inflated)")
    out = np.empty(byte_skip + need, np.uint8)  # the skip is counted after inflating, as the NRRD format says
    got = inflate_into(fh, out, 0, kind, what)
    if got != len(out):
        raise short(what, max(got - byte_skip, 0), need)
    return out[byte_skip:].view(dtype)


def _metaimage_header(path: Path, tags: dict) -> tuple[dict, list[str], int]:
    """The header's fields (by metaimageio's tag spelling), the data files it names ("LOCAL": this file) and the
    header's size in bytes, parsed as metaimageio parses them (a later field overrides, LIST takes every line
    after it), so the files checked here are the files metaimageio opens."""
    fields: dict = {}
    files: list[str] = []
    listing, size = False, 0
    with open(path, "rb") as fh:
        for raw in fh:
            size += len(raw)
            line = raw.decode("latin-1").strip()
            if listing:
                files += [line] if line else []
                continue
            if not line or line.startswith("#"):
                continue
            key, _, value = (part.strip() for part in line.partition("="))
            key = tags.get(key.upper(), key)
            fields[key] = value
            if key != "ElementDataFile":
                continue
            listing, files = value.upper() == "LIST", [] if value.upper() == "LIST" else [value]
            if value.upper() == "LOCAL":
                return fields, ["LOCAL"], size
            if "%" in value:
                files = _pattern(path, value)
    return fields, files, size


def _pattern(path: Path, value: str) -> list[str]:
    """``ElementDataFile = name%03d.raw first last step``: the names, refused past MAX_DATA_FILES."""
    import shlex

    args = shlex.split(value)
    names = range(int(args[1]), int(args[2]) + int(args[3]), int(args[3]))
    if len(names) > MAX_DATA_FILES:
        raise InputError(f"{path}: ElementDataFile names {len(names)} files, more than {MAX_DATA_FILES}; refused")
    return [args[0] % i for i in names]


def read_metaimage(path: Path, metaimageio) -> tuple[np.ndarray, dict]:
    """``metaimageio.read(path)`` once the header's shape x type fits and every data file is inside the header's
    folder; compressed data is inflated here, to the header's size and no further."""
    reader = metaimageio.reader
    fields, files, header_size = _metaimage_header(path, {t.upper(): t for t in reader.TAGS})
    dims = [int(v) for v in str(fields.get("DimSize", "")).split()]
    channels = int(fields.get("ElementNumberOfChannels") or 1)
    etype = reader.TYPES.get(str(fields.get("ElementType", "")).upper())
    if not dims or min(dims) < 0 or channels < 1 or etype is None or not files:
        raise InputError(f"{path}: not a readable MetaImage file (DimSize, ElementType or ElementDataFile missing "
                         "or unsupported)")
    if len(files) > MAX_DATA_FILES:
        raise InputError(f"{path}: ElementDataFile names {len(files)} files, more than {MAX_DATA_FILES}; refused")
    need = math.prod(dims) * channels * np.dtype(etype).itemsize
    check_fits(2 * need, str(path))  # the array, and the copy Volume.content_hash hashes
    paths = [path if f == "LOCAL" else data_file(path, f) for f in files]
    if str(fields.get("CompressedData", "")).upper() != "TRUE":
        return metaimageio.read(str(path))  # raw: it reads the header's shape from each file, no more
    data = _metaimage_inflated(path, fields, paths, header_size if files == ["LOCAL"] else 0, need)
    dtype = np.dtype(etype)
    if any(str(fields.get(k, "")).upper() == "TRUE" for k in ("BinaryDataByteOrderMSB", "ElementByteOrderMSB")):
        dtype = dtype.newbyteorder(">")
    shape = dims[::-1] + ([channels] if channels > 1 else [])
    meta = {"ElementNumberOfChannels": channels, "Modality": fields.get("Modality", ""),
            "ElementSpacing": [float(s) for s in str(fields.get("ElementSpacing", "")).split()]}
    return data.view(dtype).reshape(shape), meta


def _metaimage_inflated(path: Path, fields: dict, paths: list[Path], local: int, need: int) -> np.ndarray:
    """Each data file's zlib stream (after the header sizes) inflated into one buffer of the header's size."""
    if fields.get("CompressedDataSize") is None:
        raise InputError(f"{path}: CompressedData without CompressedDataSize")
    limit = int(fields["CompressedDataSize"])
    skip = int(fields.get("HeaderSize") or 0)
    skip = 0 if skip == -1 else skip  # -1: "data at the end" in MetaIO; metaimageio reads it as 0
    per_file = [int(v) for v in str(fields.get("HeaderSizesPerDataFile", "")).split()]
    if limit < 0 or skip < 0 or min(per_file, default=0) < 0:
        raise InputError(f"{path}: negative CompressedDataSize or header size; refused")
    out, got = np.empty(need, np.uint8), 0
    for i, data_path in enumerate(paths):
        with open(data_path, "rb") as fh:
            fh.seek(local + skip + (per_file[i] if i < len(per_file) else 0))
            got = inflate_into(fh, out, got, "zlib", str(path), limit=limit)
    if got != need:
        raise short(str(path), got, need)
    return out
