"""The compact header store: every original file's bytes except its pixel data, restored byte-identical.

A DICOM file is cut at its element boundaries (PS3.5 7.1: tag, VR, length, value; PS3.10 7.1: the 128-byte
preamble, 'DICM', the File Meta group) into chunks: the preamble, each File Meta element, each top-level data set
element, the Pixel Data element's header (its tag, VR and length, without the value) and the elements after it.
Joined again they are the file without its pixel data value, byte for byte (:func:`header_bytes`).

The files of one series share most of their elements. The store keeps the first file's chunks, then for each next
file only the chunks that differ from the file before it (a chunk equal to one of the previous file's is a
reference), and compresses the whole with xz. Restoring joins the chunks back: every element byte-identical,
checked against the SHA-256 of each file's header bytes recorded in the index. Each record also keeps the name
its file is restored under (a NAME chunk, not part of the file's bytes): an index whose file names were swapped
and resealed then contradicts the store, and is refused even in an unsigned archive.

An uncompressed original whose pixel cells hold bits the stored values do not (bits above the High Bit, which
PS3.5 8.1.1 leaves unspecified and decoders mask) keeps those bits as a residual chunk: the XOR of its Pixel Data
value with the one rebuilt from the stored values, mostly zero bytes, which xz shrinks to almost nothing.

Record layout (before xz)::

    b"MPHDR\\x01" u32 files; per file: u32 chunks; per chunk: u8 kind (+0x80 = reference), then
    u32 index into the previous file's chunks (reference) or u32 length + bytes (literal)
"""
from __future__ import annotations

import hashlib
import lzma
import struct

from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian, \
    ImplicitVRLittleEndian

from ..errors import InputError
from ..syntaxes import DeflatedImageFrameCompression

MAGIC = b"MPHDR\x01"
PREAMBLE, META, DATA, PIXEL, TAIL, RESIDUAL, NAME = "P", "M", "D", "X", "T", "R", "N"  # the kinds of chunk
KINDS = PREAMBLE + META + DATA + PIXEL + TAIL + RESIDUAL + NAME
AUX = RESIDUAL + NAME  # chunks that are not bytes of the original file
PIXEL_DATA = 0x7FE00010
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
# PS3.5 7.1.2: explicit VRs with a 2-byte reserved field and a 4-byte length
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE = ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian
DEFLATED = (DeflatedExplicitVRLittleEndian, DeflatedImageFrameCompression)  # data set deflated; .8.1: frames only
NATIVE = (IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE)

Record = list  # [(kind, bytes), ...] of one file


class HeaderError(ValueError):
    """The bytes are not a DICOM file this parser can cut (the message says where)."""


# ---------------------------------------------------------------- parsing (PS3.5 7.1, 7.5)

def _tag(data: bytes, pos: int, little: bool) -> int:
    group, element = struct.unpack_from("<HH" if little else ">HH", data, pos)
    return group << 16 | element


def element_end(data: bytes, pos: int, explicit: bool, little: bool) -> tuple[int, int, int]:
    """(tag, value start, end) of the element at ``pos``; undefined lengths are walked to their delimiter."""
    if pos + 8 > len(data):
        raise HeaderError(f"element at byte {pos} runs past the end of the file")
    tag = _tag(data, pos, little)
    u32 = "<I" if little else ">I"
    if tag in (ITEM, ITEM_END, SEQUENCE_END) or not explicit:
        length, start, vr = struct.unpack_from(u32, data, pos + 4)[0], pos + 8, b""
    else:
        vr = data[pos + 4:pos + 6]
        if vr in LONG_VRS:
            length, start = struct.unpack_from(u32, data, pos + 8)[0], pos + 12
        else:
            length, start = struct.unpack_from("<H" if little else ">H", data, pos + 6)[0], pos + 8
    if length != UNDEFINED:
        if start + length > len(data):
            raise HeaderError(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) at byte {pos} is longer than the file")
        return tag, start, start + length
    # PS3.5 6.2.2: an UN element of undefined length holds implicit VR little endian items
    nested_explicit = explicit and vr != b"UN"
    return tag, start, _skip_items(data, start, nested_explicit, little)


def _skip_items(data: bytes, pos: int, explicit: bool, little: bool) -> int:
    """Past the Sequence Delimitation Item that closes an undefined-length value (PS3.5 7.5)."""
    while True:
        if pos + 8 > len(data):
            raise HeaderError("an undefined-length sequence has no delimiter before the end of the file")
        tag = _tag(data, pos, little)
        length = struct.unpack_from("<I" if little else ">I", data, pos + 4)[0]
        if tag == SEQUENCE_END:
            return pos + 8
        if tag != ITEM:
            raise HeaderError(f"expected an item at byte {pos}, found ({tag >> 16:04X},{tag & 0xFFFF:04X})")
        if length != UNDEFINED:
            pos += 8 + length
            continue
        pos += 8
        while _tag(data, pos, little) != ITEM_END:  # an undefined-length item: its elements, then its delimiter
            pos = element_end(data, pos, explicit, little)[2]
        pos += 8


def _syntax_value(chunk: bytes) -> str:
    length = struct.unpack_from("<H", chunk, 6)[0]
    return chunk[8:8 + length].rstrip(b"\x00 ").decode("ascii", "replace")


def split_file(data: bytes) -> tuple[Record, bytes]:
    """A DICOM file -> (its chunks, the Pixel Data value that was left out). Raises HeaderError."""
    chunks: Record = []
    pos = 0
    if data[128:132] == b"DICM":
        chunks.append((PREAMBLE, data[:132]))
        pos = 132
    syntax = ""
    while pos + 8 <= len(data) and _tag(data, pos, True) >> 16 == 0x0002:  # File Meta: explicit VR LE (PS3.10)
        tag, _, end = element_end(data, pos, True, True)
        chunks.append((META, data[pos:end]))
        if tag == 0x00020010:
            syntax = _syntax_value(data[pos:end])
        pos = end
    if syntax in DEFLATED[:1]:
        raise HeaderError(f"the data set is deflated ({DeflatedExplicitVRLittleEndian}); not archived")
    if syntax:
        explicit, little = syntax != IMPLICIT_LE, syntax != EXPLICIT_BE
    else:  # no File Meta: PS3.5 7.1 -- an explicit VR has two upper-case letters where implicit has a length
        vr = data[pos + 4:pos + 6]
        explicit, little = len(vr) == 2 and vr.isalpha() and vr.isupper(), True
    pixel = b""
    kind = DATA
    while pos < len(data):
        if len(data) - pos < 8:
            if data[pos:].strip(b"\x00"):
                raise HeaderError(f"{len(data) - pos} stray bytes at the end of the file")
            chunks.append((TAIL, data[pos:]))  # trailing zero padding some writers leave
            break
        tag, start, end = element_end(data, pos, explicit, little)
        if tag == PIXEL_DATA and kind == DATA:
            chunks.append((PIXEL, data[pos:start]))
            pixel = data[start:end]
            kind = TAIL
        else:
            chunks.append((kind, data[pos:end]))
        pos = end
    if kind != TAIL:
        raise HeaderError("no Pixel Data element (7FE0,0010) at the top level")
    return chunks, pixel


def header_bytes(record: Record) -> bytes:
    """The original file without its Pixel Data value."""
    return b"".join(c for k, c in record if k not in AUX)


def record_name(record: Record) -> str | None:
    """The file name restore gives this header (kept beside it so an index that renames files is caught)."""
    return next((c.decode("utf-8", "replace") for k, c in record if k == NAME), None)


def residual(record: Record) -> bytes | None:
    return next((c for k, c in record if k == RESIDUAL), None)


def xor(a: bytes, b: bytes) -> bytes:
    import numpy as np

    return np.bitwise_xor(np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8)).tobytes()


def header_sha(record: Record) -> str:
    return hashlib.sha256(header_bytes(record)).hexdigest()


def record_syntax(record: Record) -> str:
    """The File Meta transfer syntax, or '' when the file has no File Meta."""
    for kind, chunk in record:
        if kind == META and chunk[:4] == b"\x02\x00\x10\x00":
            return _syntax_value(chunk)
    return ""


def read_header(path) -> tuple[Record, bytes, str]:
    """(chunks, pixel value, SHA-256 of the whole file) of one original file; InputError when it cannot be cut."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        record, pixel = split_file(data)
    except (HeaderError, struct.error) as exc:
        raise InputError(f"{path}: cannot be archived byte-exactly: {exc}") from None
    return record, pixel, hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- the store

def pack_store(records: list[Record]) -> bytes:
    """Records of one series -> the compressed store (the first in full, then each one's differences)."""
    out = [MAGIC, struct.pack("<I", len(records))]
    previous: dict[bytes, int] = {}
    for record in records:
        out.append(struct.pack("<I", len(record)))
        for kind, chunk in record:
            code = KINDS.index(kind)
            ref = previous.get(chunk)
            if ref is not None:
                out.append(struct.pack("<BI", code | 0x80, ref))
            else:
                out.append(struct.pack("<BI", code, len(chunk)))
                out.append(chunk)
        previous = {}
        for i, (_, chunk) in enumerate(record):
            previous.setdefault(chunk, i)
    return lzma.compress(b"".join(out), preset=9 | lzma.PRESET_EXTREME)


def unpack_store(blob: bytes) -> list[Record]:
    """The compressed store -> records; HeaderError when it is damaged."""
    try:
        raw = lzma.decompress(blob)
    except lzma.LZMAError as exc:
        raise HeaderError(f"not a valid xz stream ({exc})") from None
    if raw[:len(MAGIC)] != MAGIC:
        raise HeaderError("not a medpipe header store")
    try:
        pos = len(MAGIC)
        (count,), pos = struct.unpack_from("<I", raw, pos), pos + 4
        records: list[Record] = []
        previous: Record = []
        for _ in range(count):
            (n,), pos = struct.unpack_from("<I", raw, pos), pos + 4
            record: Record = []
            for _ in range(n):
                code, value = struct.unpack_from("<BI", raw, pos)
                pos += 5
                if code & 0x80:
                    record.append((KINDS[code & 0x7F], previous[value][1]))
                else:
                    if pos + value > len(raw):
                        raise HeaderError("a chunk runs past the end of the store")
                    record.append((KINDS[code], raw[pos:pos + value]))
                    pos += value
            records.append(record)
            previous = record
    except (struct.error, IndexError):
        raise HeaderError("the store is truncated or damaged") from None
    if pos != len(raw):
        raise HeaderError(f"{len(raw) - pos} unexpected bytes after the last record")
    return records
