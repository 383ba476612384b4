"""What each format offers to tell damage, checked before (or instead of) trusting a decoder.

- Native pixel data: Rows x Columns x frames x samples x BitsAllocated against the Pixel Data length. A file
  whose Rows says 500 while its Pixel Data holds 512 rows is damaged, not a 500-row image (pydicom would cut the
  excess with a warning).
- Encapsulated pixel data (PS3.5 A.4): as many fragments as frames, each frame's codestream header against the
  data set's Rows and Columns, and the codestream's own end:
  - JPEG 2000 / HTJ2K (ISO 15444-1 A.4): SOC, SIZ, then tile-parts chained by their Psot lengths up to EOC at the
    end of the fragment (a truncated or cut codestream, or a damaged SOT, breaks the chain);
  - JPEG (lossless, baseline, extended) and JPEG-LS (ISO 10918-1 B.2, 14495-1 C.2): SOI, the frame header's
    size, components and precision, EOI at the end;
  - JPEG XL (ISO 18181-1): the size header;
  - RLE (PS3.5 Annex G): decoded here by :mod:`medpipe.rle`, every segment checked (see there).
- A fragment may end with one padding byte (PS3.5 A.4: items have even length).

What no format here reveals: a run of bytes changed inside entropy-coded data that still decodes. JPEG 2000 code
blocks and native pixel data carry no checksum; such damage decodes to plausible values unless the range and
neighbour checks (damage.py) see it.
"""
from __future__ import annotations

import struct

import numpy as np

from ..dicom.streaminfo import JPEG_STREAMS, codestream_info
from ..dicom.syntaxes import DEFLATED_IMAGE_FRAME, J2K_FAMILY, JXL_FAMILY, RLE_LOSSLESS
from ..errors import DamagedInput, InputError
from ..memory import TooLarge, check_fits
from ..rle import RleError, decode_frame
from ..syntaxes import PixelAttrs

SOT, EOC = 0xFF90, b"\xff\xd9"


def _ends_with(data: bytes, marker: bytes) -> bool:
    """``marker`` at the end, or before one padding byte: 00 (PS3.5 A.4: items have even length) or FF (a JPEG
    fill byte, ISO 10918-1 B.1.1.2, which real encoders pad with: pydicom's JPGExtended.dcm)."""
    return data.endswith(marker) or (data[:-1].endswith(marker) and data[-1:] in (b"\x00", b"\xff"))


def j2k_chain_problem(data: bytes) -> str | None:
    """ISO 15444-1 A.4.2: from the first SOT, each tile-part's Psot leads to the next SOT or to EOC at the end."""
    pos = 2
    while pos + 4 <= len(data):  # main header markers up to the first SOT
        marker, length = struct.unpack(">HH", data[pos:pos + 4])
        if marker == SOT:
            break
        if marker >> 8 != 0xFF or length < 2:
            return f"main header damaged at byte {pos} (marker {marker:04X})"
        pos += 2 + length
    parts = 0
    while pos + 12 <= len(data) and struct.unpack(">H", data[pos:pos + 2])[0] == SOT:
        lsot, _, psot = struct.unpack(">HHI", data[pos + 2:pos + 10])
        if lsot != 10:
            return f"tile-part {parts} at byte {pos}: Lsot {lsot}, not 10"
        parts += 1
        if psot == 0:  # the last tile-part runs to EOC
            return None if _ends_with(data, EOC) else "the last tile-part does not end with EOC"
        if psot < 14 or pos + psot > len(data):
            return f"tile-part {parts - 1} at byte {pos}: Psot {psot} runs past the {len(data)}-byte codestream"
        pos += psot
    if not parts:
        return "no tile-part (SOT) found"
    if data[pos:pos + 2] != EOC or len(data) - pos - 2 > 1:
        return (f"tile-parts end at byte {pos}, then {len(data) - pos} bytes that are not EOC: the codestream is "
                "truncated or a tile-part length is damaged")
    return None


def _header_problem(uid: str, info: dict, attrs: PixelAttrs) -> str | None:
    """The codestream's own header against the data set's Image Pixel module, before any decoder allocates:
    size and components (PS3.5 8.2: the attributes "shall be consistent with the characteristics of the compressed
    data stream"), and for JPEG / JPEG 2000 the sample precision, which lies between Bits Stored and Bits Allocated
    (PS3.5 8.2.1 Note 4: signed data may be coded as the whole cell's bit pattern; 8.2.4: SIZ precision is Bits
    Stored). SIZ's sign (Ssiz) is not compared with Pixel Representation: real files disagree and pydicom corrects
    them (its J2K_pixelrep_mismatch.dcm)."""
    if "rows" in info and (info["rows"], info["columns"]) != (attrs.rows, attrs.columns):
        return (f"the codestream says {info['rows']} x {info['columns']}, Rows x Columns say {attrs.rows} x "
                f"{attrs.columns}")
    if info.get("components") not in (None, attrs.samples):
        return f"the codestream has {info['components']} component(s), Samples per Pixel says {attrs.samples}"
    if uid in JXL_FAMILY or info.get("precision") is None:
        return None
    if not attrs.bits_stored <= info["precision"] <= attrs.bits_allocated:
        return (f"the codestream's sample precision is {info['precision']} bits, outside Bits Stored "
                f"{attrs.bits_stored} .. Bits Allocated {attrs.bits_allocated} (PS3.5 8.2.1, 8.2.4)")
    return None


def _too_short(info: dict) -> str | None:
    """A Huffman-coded JPEG frame shorter than its frame header's size allows (a SOF enlarged together with Rows
    and Columns decoded to a padded 16000 x 16000 image): sequential DCT (SOF0, SOF1) codes every 8 x 8 block of
    a component with at least a DC difference and an EOB, each a Huffman code of 1 bit or more (ISO 10918-1
    F.1.2.1, F.1.2.2); lossless (SOF3) every sample's difference with at least 1 bit (H.1.2). Progressive and
    arithmetic coding and JPEG-LS run mode have no such floor."""
    process, rows, cols = info.get("process"), info.get("rows") or 0, info.get("columns") or 0
    if process in ("SOF0", "SOF1"):
        least = -(-rows // 8) * -(-cols // 8) * 2 // 8
    elif process == "lossless":
        least = rows * cols // 8
    else:
        return None
    have = info.get("entropy_bytes", least)
    if have >= least:
        return None
    return (f"{have} bytes of coded data after its scan header, fewer than the {least} that a {rows} x {cols} "
            f"{process} frame needs at the least (ISO 10918-1 F.1.2, H.1.2): its frame header or the stream is "
            "damaged")


def frame_problem(uid: str, data: bytes, attrs: PixelAttrs) -> str | None:
    """What the codestream of one frame says against the data set's Image Pixel module, and its end marker."""
    if uid not in J2K_FAMILY and uid not in JPEG_STREAMS and uid not in JXL_FAMILY:
        return None
    data = bytes(data)  # once: a fragment may be a memoryview, and three readers below take bytes
    try:
        info = codestream_info(uid, data)
    except DamagedInput as exc:
        return str(exc)
    problem = _header_problem(uid, info, attrs)
    if problem:
        return problem
    if uid in J2K_FAMILY:
        return j2k_chain_problem(data)
    if uid in JPEG_STREAMS and not _ends_with(data, EOC):
        return "no EOI marker at its end: truncated"
    return _too_short(info) if uid in JPEG_STREAMS else None


def native_length_problem(ds) -> str | None:
    """Rows x Columns x frames x samples x BitsAllocated against the native Pixel Data length."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames, spp = int(ds.get("NumberOfFrames", 1) or 1), int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
        have = len(ds.PixelData)
    except (AttributeError, TypeError, ValueError):
        return None
    want = (rows * cols * frames * spp * bits + 7) // 8
    if have in (want, want + 1):
        return None
    held = f"; it holds {have * 8 // (cols * frames * spp * bits)} rows of {cols}" if cols * bits and frames else ""
    return (f"Pixel Data holds {have} bytes, Rows x Columns x frames x samples x BitsAllocated ({rows} x {cols} x "
            f"{frames} x {spp} x {bits}) say {want}{held}")


def rows_held(ds) -> int | None:
    """For native pixel data whose length contradicts Rows: the rows it holds (when they divide it exactly), so the
    series assembly keeps the file with its series and the damage is named there; None otherwise. Reads only the
    element's length (the value may be deferred)."""
    element = getattr(ds, "_dict", {}).get(0x7FE00010)
    length = getattr(element, "length", None)
    if length is None and element is not None and getattr(element, "value", None) is not None:
        length = len(element.value)
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        cell = int(ds.get("NumberOfFrames", 1) or 1) * int(ds.get("SamplesPerPixel", 1) or 1) * int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    if not length or length == 0xFFFFFFFF or not cols * cell or (rows * cols * cell + 7) // 8 in (length, length - 1):
        return None
    held, extra = divmod(length * 8, cols * cell)
    return held if not extra and held != rows else None


def structure_problems(ds, uid: str, fragments) -> list[str]:
    """Damage the formats' own structure shows (empty when none); ``fragments``: one codestream per frame, or
    None for native pixel data."""
    if fragments is None:
        problem = native_length_problem(ds)
        return [problem] if problem else []
    attrs = PixelAttrs.of(ds)
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    if len(fragments) != nframes:
        return [f"{len(fragments)} frames encapsulated, Number of Frames says {nframes}"]
    out = []
    for k, data in enumerate(fragments):
        problem = frame_problem(uid, data, attrs)
        if problem:
            out.append(f"frame {k}: {problem}" if nframes > 1 else problem)
    return out


def decode_rle(ds, fragments) -> np.ndarray:
    """RLE frames decoded by :mod:`medpipe.rle` (every segment checked) as pydicom's pixel_array would give them."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    spp, allocated = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
    stored = int(ds.get("BitsStored", allocated) or allocated)
    signed = bool(int(ds.get("PixelRepresentation", 0) or 0))
    try:  # the frames, and np.stack's copy of them: known before anything is allocated
        check_fits(2 * rows * cols * spp * max(1, allocated // 8) * len(fragments),
                   str(getattr(ds, "filename", None) or "RLE pixel data"))
    except TooLarge as exc:
        raise InputError(str(exc)) from None
    try:
        frames = [decode_frame(bytes(f), rows, cols, spp, allocated) for f in fragments]
    except RleError as exc:
        raise DamagedInput(f"RLE frame damaged: {exc}") from None
    arr = frames[0] if len(frames) == 1 else np.stack(frames)
    if signed:  # PS3.5 8.1.1: two's complement from the High Bit; shifted in place, no wider temporary
        arr = arr.view(arr.dtype.str.replace("u", "i"))
        unused = arr.dtype.itemsize * 8 - stored
        if unused > 0:
            arr <<= unused
            arr >>= unused
    elif allocated > stored:  # PS3.5 8.1.1: bits above the High Bit are not part of the value
        arr &= np.array((1 << stored) - 1, arr.dtype)
    return arr


__all__ = ["RLE_LOSSLESS", "DEFLATED_IMAGE_FRAME", "decode_rle", "structure_problems"]
