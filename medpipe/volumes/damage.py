"""Damaged compressed input never passes as data.

0. the format's own structure first (structure.py): native Pixel Data length against Rows x Columns x frames x
   bits; each codestream's header against the data set, its markers and tile-part lengths; RLE decoded by
   medpipe.rle with every segment's length checked (PS3.5 Annex G);

A damaged codestream often decodes without error: pydicom tries its decoding plugins in turn, and when the first
(e.g. pyjpegls) rejects the stream the next (pylibjpeg's libjpeg) may decode it to noise, silently. Measured on
a real JPEG-LS CT slice with 64 zeroed bytes: pyjpegls and imagecodecs' CharLS refuse it, libjpeg returns
-32768..32767 where the series spans -2000..2310. So, per file and per slice:

1. every decoder pydicom tried is heard: a lossless monochrome codestream that one decoder rejects (for a reason
   other than a missing feature) and another decodes is damaged;
2. ``cross_check``: lossless codestreams are decoded again by every other installed decoder (pydicom's other
   plugins; medpipe's frame coder where pydicom has only one) and must agree bit for bit;
3. each slice's values must fit its header's BitsStored;
4. each slice of a compressed series is compared with its neighbours: values far outside their range, or rows far
   rougher than theirs (the streaks of a codestream decoded past a damaged byte).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.uid import (HTJ2KLossless, HTJ2KLosslessRPCL, JPEG2000Lossless, JPEGLossless, JPEGLosslessSV1,
                         JPEGLSLossless, JPEGLSNearLossless, RLELossless)

from ..errors import CodecSkip, DamagedInput, InputError
from ..jpeg_decoder import plugin_order
from ..syntaxes import BASELINE_JPEG, TABLE, PixelAttrs
from .dicom import (DEFLATED_IMAGE_FRAME, JPEG_XL_SYNTAXES, decode_pixels, is_compressed_syntax, quiet,
                    transfer_syntax)
from .structure import RLE_LOSSLESS, decode_rle, structure_problems

# Syntaxes whose decoders must agree bit for bit (PS3.5 A.4: lossless processes; JPEG-LS near-lossless decoding
# is exactly specified too). Lossy JPEG/J2K decoders legitimately differ by rounding.
EXACT_SYNTAXES = {u: TABLE[u].short for u in (JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
                                               JPEG2000Lossless, HTJ2KLossless, HTJ2KLosslessRPCL, RLELossless)}
# A decoder that lacks a feature is not evidence of damage
FEATURE_GAP = ("not support", "unsupported", "exceeds limit", "decompression bomb", "not implemented",
               "no module", "missing", "requires")
NEIGHBOURS = 4  # slices compared with: the nearest 4 (2 each side where there are)


@dataclass
class Decoded:
    """One file's pixels and what the decoders said about them."""

    array: np.ndarray
    decoder: str = "pydicom"
    problems: list[str] = field(default_factory=list)  # each one reason to distrust the pixels


def _short(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text[:160]


def _feature_gap(message: str) -> bool:
    low = message.lower()
    return any(k in low for k in FEATURE_GAP)


def _same(a: np.ndarray, b: np.ndarray, bits_stored: int) -> int:
    """Number of values that differ in their low ``bits_stored`` bits (signed or unsigned views of one bit
    pattern are the same stored value); -1 when the shapes differ."""
    if a.shape != b.shape:
        return -1
    mask = (1 << min(bits_stored, 63)) - 1
    return int(np.count_nonzero((a.astype(np.int64) & mask) != (b.astype(np.int64) & mask)))


def _frame_coder_frames(ds, ts: str) -> tuple[str, np.ndarray | None, str]:
    """(decoder name, all frames or None, why not) from medpipe's frame coder of ``ts`` (codecs.frames, the one
    codec layer), the second decoder where pydicom has one plugin only."""
    from ..codecs.frames import coder, decode_frame

    try:
        name = f"the {TABLE[ts].short} frame coder (imagecodecs.{coder(ts).imagecodecs_decoder})"
    except CodecSkip as exc:
        return "medpipe", None, f"not supported: {exc}"
    try:
        attrs = PixelAttrs.of(ds)
        frames = [decode_frame(ts, f, attrs) for f in _fragments(ds)]
    except Exception as exc:  # noqa: BLE001 - reported by the caller as a rejection
        return name, None, _short(exc)
    return name, (np.stack(frames) if len(frames) > 1 else frames[0]), ""


OWN_DECODERS = JPEG_XL_SYNTAXES | {DEFLATED_IMAGE_FRAME}  # syntaxes pydicom 3.0 does not know: decoded in dicom.py


def _fragments(ds) -> list[bytes]:
    from pydicom.encaps import generate_frames

    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        return list(generate_frames(ds.PixelData, number_of_frames=nframes))
    except Exception as exc:  # noqa: BLE001 - pydicom raises several types on a damaged encapsulation
        raise InputError(f"encapsulated Pixel Data is damaged ({_short(exc)})") from None


def _by_structure(ds, uid) -> Decoded | None:
    """What the format's own structure says (structure.py), and RLE decoded by medpipe.rle, which checks every
    segment; None when the pixels are for the decoders to judge."""
    try:
        fragments = _fragments(ds) if is_compressed_syntax(uid) else None
    except InputError as exc:
        return Decoded(np.empty(0), "structure", [str(exc)])
    problems = structure_problems(ds, str(uid), fragments)
    if problems:
        return Decoded(np.empty(0), "structure", problems)
    if str(uid) == RLE_LOSSLESS:
        try:
            return Decoded(decode_rle(ds, fragments), "medpipe.rle (PS3.5 Annex G)")
        except DamagedInput as exc:
            return Decoded(np.empty(0), "medpipe.rle", [str(exc)])
    return None


def _disagree(out: Decoded, name: str, other: np.ndarray, bits: int) -> None:
    differ = _same(out.array, other, bits)
    if differ:
        out.problems.append(f"decoders disagree: {out.decoder} and {name} differ on "
                            f"{'the shape' if differ < 0 else f'{differ} values'}")


def _cross_check(out: Decoded, ds, decoder, plugins: list, ts, mono: bool, bits: int) -> None:
    """A lossless codestream decoded again by every other installed decoder: a rejection or a difference is
    evidence of damage (appended to ``out.problems``)."""
    used = out.decoder
    others = plugins[plugins.index(used) + 1:]
    for plugin in others:
        try:
            with quiet():
                other, _ = decoder.as_array(ds, decoding_plugin=plugin)
        except Exception as exc:  # noqa: BLE001 - a rejection, judged below
            if mono and not _feature_gap(_short(exc)):
                out.problems.append(f"{plugin} rejects the codestream ({_short(exc)}) that {used} decodes")
            continue
        _disagree(out, plugin, other, bits)
    if not others and mono and ts in EXACT_SYNTAXES and ts != RLELossless:
        name, other, why = _frame_coder_frames(ds, ts)
        if other is None:
            if not _feature_gap(why):
                out.problems.append(f"{name} rejects the codestream ({why}) that {used} decodes")
        else:
            _disagree(out, name, other, bits)


def decode_checked(ds, path: Path, cross_check: bool = True) -> Decoded:
    """First what the format's own structure says (structure.py); then decode ``ds`` with pydicom's plugins one at
    a time (as pydicom would), hearing every rejection, and with ``cross_check`` decode lossless codestreams again
    with every other installed decoder. RLE is decoded by medpipe.rle, which checks every segment."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if "PixelData" in ds and "Rows" in ds and "BitsAllocated" in ds:
        judged = _by_structure(ds, uid)
        if judged is not None:
            return judged
    if uid is None or str(uid) in OWN_DECODERS or "PixelData" not in ds or not is_compressed_syntax(uid):
        return Decoded(decode_pixels(ds, path))
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(uid)
        plugins = list(decoder.available_plugins)
    except Exception:  # noqa: BLE001 - no decoder for this syntax: decode_pixels gives the clean message
        plugins = []
    if plugins and str(uid) in BASELINE_JPEG:  # the decoder a kept JPEG frame is decoded with again
        plugins = plugin_order(plugins)  # (jpeg_decoder.py; a plugin named that is not installed: InputError)
    if not plugins:
        return Decoded(decode_pixels(ds, path))
    ts = transfer_syntax(ds)
    mono = int(ds.get("SamplesPerPixel", 1) or 1) == 1
    exact = ts in EXACT_SYNTAXES
    bits = int(ds.get("BitsStored", 16) or 16)
    rejected: list[tuple[str, str]] = []
    arr, used = None, ""
    for plugin in plugins:
        try:
            with quiet():
                arr, _ = decoder.as_array(ds, decoding_plugin=plugin)
            used = plugin
            break
        except MemoryError:
            raise InputError(f"{path}: pixel data too large for the memory here")
        except Exception as exc:  # noqa: BLE001 - each plugin raises its own types on a bad codestream
            rejected.append((plugin, _short(exc)))
    if arr is None:
        why = "; ".join(f"{p}: {m}" for p, m in rejected)
        raise InputError(f"{path}: pixel data is damaged or cannot be decoded (transfer syntax {ts}; {why})")
    out = Decoded(arr, used)
    if exact and mono:
        for plugin, message in rejected:
            if not _feature_gap(message):
                out.problems.append(f"{plugin} rejects the codestream ({message}) that {used} decodes")
    if cross_check and exact:
        _cross_check(out, ds, decoder, plugins, ts, mono, bits)
    return out


def header_range_problem(arr: np.ndarray, bits_stored: int, signed: bool) -> str | None:
    """Values a header's BitsStored rules out (pydicom masks native data to BitsStored, so this catches decoders
    of compressed data that return more bits than the header allows)."""
    if arr.dtype.kind not in "iu" or not arr.size or bits_stored >= 64:
        return None
    lo, hi = ((-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1))
    amin, amax = int(arr.min()), int(arr.max())
    if amin < lo or amax > hi:
        return (f"values {amin}..{amax} outside the range {lo}..{hi} of its header's BitsStored {bits_stored} "
                f"({'signed' if signed else 'unsigned'})")
    return None


LIKE = 0.9  # correlation with the nearest neighbour above which a slice is an image, however bright


def _neighbours(i: int, n: int) -> list[int]:
    near = sorted((j for j in range(n) if j != i), key=lambda j: (abs(j - i), j))
    return near[:NEIGHBOURS]


def _row_roughness(sl: np.ndarray) -> np.ndarray:
    """Per row: mean |horizontal step| + mean |vertical step to the next row| (decoder garbage is rough)."""
    horizontal = np.abs(np.diff(sl, axis=1)).mean(axis=1) if sl.shape[1] > 1 else np.zeros(sl.shape[0])
    vertical = np.zeros(sl.shape[0])
    if sl.shape[0] > 1:
        vertical[:-1] = np.abs(np.diff(sl, axis=0)).mean(axis=1)
    return horizontal + vertical


def _like_neighbour(pixels: np.ndarray, i: int, near: list[int], rows) -> bool:
    """Whether slice ``i`` still shows what its nearest neighbour shows (Pearson r >= LIKE over the rows in
    question): a slice acquired brighter or sharper than the others (ge_mprage_phantom slice 66, stored at 5 x
    its neighbours' values, windowed 6020 by the scanner itself) is an image; a decoder's garbage is not."""
    a = pixels[i] if rows is None else pixels[i][rows]
    b = pixels[near[0]] if rows is None else pixels[near[0]][rows]
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return False
    return float(np.corrcoef(a, b)[0, 1]) >= LIKE


def series_outliers(pixels: np.ndarray, padding: tuple[int, int] | None) -> dict[int, str]:
    """Slices that contradict their neighbours (the nearest 4): {slice index: reason}. Needs 3 slices or more.

    - range: at least max(64, 2 % of the slice's voxels) non-padding voxels lie beyond its neighbours' value range
      widened by that range's own width on each side (a 16-bit slice decoded to -32768..32767 among -2000..2310);
    - texture: at least max(8, 2 %) of its rows are over 4 times rougher (mean |step| across and down) than the
      roughest neighbour's same row, and than 1/64 of the series' typical span: the streaks a JPEG-LS or
      lossless-JPEG decoder leaves in every row after a damaged byte (README "Damaged input" has the rates).
    Either holds only when the slice does not still show its nearest neighbour (``_like_neighbour``, r >= 0.9): a
    real slice acquired brighter or noisier than the next is an image, not damage.
    Padding voxels are set to one value first, so the edge of a circular field of view is not taken for texture.
    """
    n = pixels.shape[0]
    if n < 3 or pixels.dtype.kind not in "iu" or pixels.ndim != 3:
        return {}
    lows, highs = np.zeros(n), np.zeros(n)
    for i in range(n):
        sl = pixels[i]
        signal = sl[(sl < padding[0]) | (sl > padding[1])] if padding is not None else sl
        lows[i], highs[i] = (int(signal.min()), int(signal.max())) if signal.size else (0, 0)
    fill = float(np.median(lows))
    floor = max(1.0, float(np.median(highs - lows)) / 64)
    rough = np.zeros((n, pixels.shape[1]))
    outside = np.zeros(n, dtype=np.int64)
    for i in range(n):
        sl = pixels[i].astype(np.float64)
        pad = ((sl >= padding[0]) & (sl <= padding[1])) if padding is not None else None
        if pad is not None and pad.any():
            sl[pad] = fill
        rough[i] = _row_roughness(sl)
        near = _neighbours(i, n)
        lo_n, hi_n = float(lows[near].min()), float(highs[near].max())
        width = max(1.0, hi_n - lo_n)
        beyond = (sl < lo_n - width) | (sl > hi_n + width)
        if pad is not None:
            beyond &= ~pad
        outside[i] = int(np.count_nonzero(beyond))
    found: dict[int, str] = {}
    rows, size = pixels.shape[1], pixels.shape[1] * pixels.shape[2]
    for i in range(n):
        near = _neighbours(i, n)
        if outside[i] >= max(64, size // 50) and not _like_neighbour(pixels, i, near, None):
            found[i] = (f"{outside[i]} values far outside its neighbours' range (slice {int(lows[i])}..{int(highs[i])}"
                        f", neighbours {int(lows[near].min())}..{int(highs[near].max())})")
            continue
        limit = 4 * np.maximum(rough[near].max(axis=0), floor)
        marked = rough[i] > limit
        streaked = int(np.count_nonzero(marked))
        if streaked >= max(8, rows // 50) and not _like_neighbour(pixels, i, near, marked):
            found[i] = (f"{streaked} of {rows} rows over 4 times rougher than the same rows of its neighbours "
                        "(the streaks of a decoder run past a damaged byte)")
    return found
