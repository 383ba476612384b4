"""Check what medpipe wrote against the rules of its transfer syntax, then decode it.

One function per syntax family checks a frame's codestream against the Image Pixel attributes of the file
(:func:`frame_problems`): PS3.5 requires, for every compressed syntax, that "the Data Elements that are related to
the Pixel Data encoding ... shall contain Values that are consistent with the characteristics of the compressed
data stream" (8.2.1-8.2.16). :func:`encapsulation_problems` checks PS3.5 A.4 (offset tables, one fragment per
frame, even items). :func:`decode_frames` gives back the stored values with a decoder that exists here: pydicom's
plugins where pydicom has one for the syntax (asked of pydicom itself, so a UID pydicom merely *knows* -- pynetdicom
registers JPEG XL on import -- is not taken as decodable). The tests decode the
same files with DCMTK, GDCM, OpenJPEG and djxl besides.

Where pydicom has no decoder plugin for a syntax (JPEG XL, Deflated Image Frame, or plugins not installed), the
frame coders of :mod:`medpipe.codecs.frames` decode it.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..codecs.frames import decode_frame
from ..errors import CodecSkip, DamagedInput, described
from ..jpeg_decoder import baseline_plugin
from ..syntaxes import BASELINE_JPEG
from .streaminfo import codestream_info, read_items
from .syntaxes import (DEFLATED_IMAGE_FRAME, HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, J2K_FAMILY, JPEG_LOSSLESS_SV1,
                       JPEG_LS_LOSSLESS, JPEG_XL_LOSSLESS, RLE_LOSSLESS, SYNTAXES, PixelAttrs, attrs_problems,
                       pattern_precision)

UNREADABLE = (DamagedInput, CodecSkip, struct.error, IndexError, KeyError, ValueError, zlib.error)


def frame_problems(uid: str, data: bytes, attrs: PixelAttrs) -> list[str]:
    """Why one frame's codestream does not agree with the header in lossless syntax `uid` (empty when it does)."""
    problems = attrs_problems(uid, attrs)
    try:
        info = codestream_info(uid, bytes(data))
    except UNREADABLE as exc:
        return problems + [f"codestream unreadable ({described(exc)})"]
    if uid in J2K_FAMILY:
        problems += _j2k(uid, info, attrs)
    elif uid in (JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS):
        problems += _jpeg(uid, info, attrs)
    elif uid == JPEG_XL_LOSSLESS:
        problems += _jxl(info, attrs)
    elif uid == RLE_LOSSLESS:  # PS3.5 G.2: one segment per byte of each sample, the first right after the header
        want = attrs.samples * attrs.bits_allocated // 8
        if info["segments"] != want or not info["offsets"] or info["offsets"][0] != 64:
            problems.append(f"RLE header: {info['segments']} segment(s) at {info['offsets'][:1]}; PS3.5 G.2 wants "
                            f"{want} (Samples per Pixel x Bits Allocated / 8), the first at byte 64")
    elif uid == DEFLATED_IMAGE_FRAME:  # A.4.13: the frame's native byte stream
        if info["length"] != attrs.frame_bytes:
            problems.append(f"inflates to {info['length']} bytes, a native frame is {attrs.frame_bytes} (A.4.13)")
    return problems


def _size(info: dict, attrs: PixelAttrs) -> list[str]:
    got = (info.get("rows"), info.get("columns"))
    return [] if got == (attrs.rows, attrs.columns) else [
        f"codestream is {got[0]} x {got[1]}, the header says Rows {attrs.rows}, Columns {attrs.columns}"]


def _j2k(uid: str, info: dict, attrs: PixelAttrs) -> list[str]:
    """PS3.5 8.2.4 (and 10.18 for HTJ2K): SIZ precision and sign are Bits Stored and Pixel Representation."""
    out = _size(info, attrs)
    got = (info.get("precision"), info.get("signed"), info.get("components"))
    if got != (attrs.bits_stored, attrs.signed, attrs.samples):
        out.append(f"SIZ: precision {got[0]}, {'signed' if got[1] else 'unsigned'}, {got[2]} component(s); the "
                   f"header: Bits Stored {attrs.bits_stored}, Pixel Representation {int(attrs.signed)}, Samples "
                   f"per Pixel {attrs.samples} (PS3.5 8.2.4: the SIZ sign and precision)")
    if not info.get("reversible"):
        out.append("irreversible 9-7 wavelet in a lossless syntax")
    if attrs.samples == 3 and info.get("mct") and attrs.photometric == "RGB":
        out.append("multi-component transform: the Photometric Interpretation would be YBR_RCT, not RGB (8.2.4)")
    ht = uid in (HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL)
    if bool(info.get("ht")) != ht:
        out.append("HT block coding (Rsiz bit 14) " + ("missing: not HTJ2K" if ht else "in a Part 1 syntax"))
    if uid == HTJ2K_LOSSLESS_RPCL:  # PS3.5 10.18
        if info.get("progression") != "RPCL":
            out.append(f"progression {info.get('progression')}; PS3.5 10.18: \"shall be RPCL\"")
        if not info.get("tlm"):
            out.append("no TLM marker segment; PS3.5 10.18: \"The Tile Length Markers (TLM) shall be present\"")
        if max(attrs.rows, attrs.columns) > 64 << int(info.get("levels", 0)):
            out.append(f"{info.get('levels')} decompositions leave a base resolution over 64 pixels (10.18)")
    return out


def _jpeg(uid: str, info: dict, attrs: PixelAttrs) -> list[str]:
    """PS3.5 8.2.1 (process 14 SV1, A.4.1) and 8.2.3 (JPEG-LS, NEAR 0). Both code unsigned samples: a signed image
    is its bit pattern at the cell width (8.2.1 Note 4; medpipe's choice of width, see codestreams)."""
    out = _size(info, attrs)
    want = pattern_precision(attrs.bits_stored, attrs.bits_allocated, attrs.signed)
    if uid == JPEG_LOSSLESS_SV1:
        if (info.get("process"), info.get("predictor"), info.get("point_transform")) != ("lossless", 1, 0):
            out.append(f"not process 14 selection value 1 without point transform: {info.get('process')}, "
                       f"predictor {info.get('predictor')}, Pt {info.get('point_transform')} (A.4.1)")
        if 0 in info.get("app", []):
            out.append("JFIF APP0 present (PS3.5 8.2.1 Note 3: should be absent)")
    elif info.get("process") != "JPEG-LS" or info.get("near") != 0:
        out.append(f"not lossless JPEG-LS: {info.get('process')}, NEAR {info.get('near')} (8.2.3)")
    if info.get("precision") != want or info.get("components") != attrs.samples:
        out.append(f"frame header: precision {info.get('precision')}, {info.get('components')} component(s); "
                   f"the header wants {want} ({'Bits Allocated, signed' if attrs.signed else 'Bits Stored'}) and "
                   f"{attrs.samples}")
    return out


def _jxl(info: dict, attrs: PixelAttrs) -> list[str]:
    """PS3.5 8.2.15: bits_per_sample as for JPEG (an unsigned-only coding), grey or RGB, no XYB (lossless)."""
    out = _size(info, attrs)
    want = pattern_precision(attrs.bits_stored, attrs.bits_allocated, attrs.signed)
    if info.get("precision") != want:
        out.append(f"bits_per_sample {info.get('precision')}, the header wants {want}")
    if info.get("xyb") or info.get("float") or info.get("extra_channels"):
        out.append("XYB, float or extra channels: not a lossless coding of the stored values")
    colour = "grey" if attrs.samples == 1 else "RGB"
    if info.get("colour", "RGB") != colour:
        out.append(f"colour encoding {info.get('colour')}, the header has {attrs.samples} sample(s) per pixel")
    return out


def encapsulation_problems(value: bytes, frames: int, extended: bytes | None = None,
                           lengths: bytes | None = None) -> tuple[list[str], list[bytes]]:
    """PS3.5 A.4 for the encapsulated Pixel Data `value` of `frames` frames, as medpipe writes it (one fragment per
    frame): (problems, the fragments)."""
    try:
        items = read_items(value)
    except DamagedInput as exc:
        return [str(exc)], []
    if not items:
        return ["no Basic Offset Table item (A.4: the first item is always the Basic Offset Table)"], []
    (_, table), fragments = items[0], items[1:]
    problems = [] if len(fragments) == frames else [
        f"{len(fragments)} fragments for {frames} frame(s); medpipe writes one fragment per frame (A.4.2 and "
        "A.4.13 require it for RLE and Deflated Image Frame)"]
    problems += [f"fragment {i + 1} has odd length {len(data)} (A.4: items are even)"
                 for i, (_, data) in enumerate(fragments) if len(data) % 2]
    starts = [pos - fragments[0][0] for pos, _ in fragments] if fragments else []
    if extended is not None:
        if table:
            problems.append("Basic Offset Table not empty while an Extended Offset Table is present (A.4)")
        offsets = list(struct.unpack(f"<{len(extended) // 8}Q", extended))
        sizes = list(struct.unpack(f"<{len(lengths or b'') // 8}Q", lengths or b""))
        if offsets != starts or sizes != [len(data) for _, data in fragments]:
            problems.append("Extended Offset Table or its lengths do not point at the frames")
    elif table and list(struct.unpack(f"<{len(table) // 4}I", table)) != starts:
        problems.append("Basic Offset Table offsets do not point at each frame's first fragment (A.4)")
    return problems, [data for _, data in fragments]


def decode_frames(ds, uid: str, fragments: list[bytes]) -> list[np.ndarray] | None:
    """Stored values of each frame, or None when no decoder for `uid` is available here."""
    from pydicom.pixels import get_decoder

    try:
        pydicom_can = get_decoder(uid).is_available
    except NotImplementedError:  # pydicom has no decoder for this syntax at all
        pydicom_can = False
    attrs = PixelAttrs.of(ds)
    if pydicom_can:
        # a baseline JPEG decodes with the reader's plugin: two conformant decoders may differ by 1-3 (jpeg_decoder)
        plugin = baseline_plugin() if uid in BASELINE_JPEG else ""
        pixels = np.asarray(get_decoder(uid).as_array(ds, decoding_plugin=plugin)[0])
        return list(pixels) if int(ds.get("NumberOfFrames", 1) or 1) > 1 else [pixels]
    try:
        return [decode_frame(uid, f, attrs) for f in fragments]
    except CodecSkip:  # no frame coder for this syntax here
        return None


def check_file(path: Path, uid: str, expected: list[np.ndarray] | None = None, convert=None) -> list[str]:
    """Problems of one written file: its transfer syntax, encapsulation, every frame against the header (lossless
    syntaxes), and, with `expected`, every frame decoded (then passed through ``convert`` when given: a colour
    frame as a loader converts it) against the stored values it must hold."""
    import pydicom

    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID != uid:
        return [f"transfer syntax reads back as {ds.file_meta.TransferSyntaxUID}, not {uid}"]
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    problems, fragments = encapsulation_problems(ds.PixelData, frames, ds.get("ExtendedOffsetTable"),
                                                 ds.get("ExtendedOffsetTableLengths"))
    if uid in SYNTAXES:
        attrs = PixelAttrs.of(ds)
        for i, data in enumerate(fragments):
            problems += [f"frame {i + 1}: {p}" for p in frame_problems(uid, data, attrs)]
    if problems or expected is None:
        return problems
    decoded = decode_frames(ds, uid, fragments)
    if decoded is None:
        return [f"cannot verify: no decoder for transfer syntax {uid} is installed here"]
    for i, (got, want) in enumerate(zip(decoded, expected)):
        got = convert(got) if convert is not None else got
        if got.shape != want.shape or not np.array_equal(got, want):
            diff = (int(np.abs(got.astype(np.int64) - want.astype(np.int64)).max()) if got.shape == want.shape
                    else f"shape {got.shape} vs {want.shape}")
            return [f"frame {i + 1} decodes to other values than it must hold (max difference {diff})"]
    return []
