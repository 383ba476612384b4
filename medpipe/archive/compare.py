"""Intertwined vs separate encoding (thesis figs 5.10-5.13): what one stream per group gains, measured honestly.

For a group and a codec configuration, the same value mapping is applied to every scan, then the frames are
coded (a) scan by scan, each its own stream ("separate"), and (b) as one stream in a given order ("intertwined",
optionally with a *variant*). Bytes include the mapping's side data; PSNR/SSIM are pooled over the group with peak
2^B - 1, B = the bits the group's values span. gain = separate bytes / intertwined bytes (> 1: the archive wins).
For lossy settings a CRF ladder is run for both and the gain is read at EQUAL PSNR, interpolating log(bytes)
linearly in PSNR between ladder points (never at equal CRF, where the two streams differ in quality).

Variants (ideas to make cross-scan redundancy usable), each measured against separate coding:

- ``aligned``: every scan is shifted by whole pixels (np.roll, exactly reversible) so its middle slice best
  matches the first scan's (phase correlation); then ordered as asked.
- ``centroid``: interleave, with a shared reference frame per position (the rounded mean of the group's frames at
  that relative position) coded before them; the reference frames cost bytes and are counted.
- encoder settings: any x265/x264 parameters (e.g. ``scenecut=0`` so interleaving does not trigger I-frames at
  each scan change, more references, longer keyframe interval) are just another codec entry.
"""
from __future__ import annotations

import math

import numpy as np

from ..depth import plan_group_mapping
from ..metrics import compare
from ..roundtrip import round_trip
from .build import value_offset
from .candidates import make_codec
from .plan import stream_order, thumbnails

COLUMNS = ["group", "scans", "slices", "codec", "setting", "lossless", "mode", "order", "variant", "crf",
           "raw_bytes", "compressed_bytes", "cr", "bpv", "psnr_db", "ssim", "max_abs_err", "exact", "encode_ms",
           "decode_ms", "gain", "mapping", "status", "reason"]


def align_shifts(coded: list[np.ndarray]) -> list[tuple[int, int]]:
    """Integer (dy, dx) per scan that moves its middle slice onto the first scan's (phase correlation)."""
    import cv2

    ref = coded[0][coded[0].shape[0] // 2].astype(np.float32)
    out = [(0, 0)]
    for c in coded[1:]:
        (dx, dy), _ = cv2.phaseCorrelate(ref, c[c.shape[0] // 2].astype(np.float32))
        out.append((-int(round(dy)), -int(round(dx))))
    return out


def centroid_stream(coded: list[np.ndarray], vmap) -> tuple[np.ndarray, list]:
    """Interleaved frames with a mean reference frame before each position bin; returns (stack, order) where
    order entries are (scan, slice) or (-1, bin) for reference frames. A reference frame holds only values the
    group's mapping can code (the nearest table value)."""
    counts = [c.shape[0] for c in coded]
    order = stream_order(counts, "interleave")
    nbins = min(counts)
    frames, out_order = [], []
    b = 0
    while order:
        members = [o for o in order if int((o[1] + 0.5) / counts[o[0]] * nbins) == b]
        order = [o for o in order if o not in members]
        if members:
            mean = np.rint(np.mean([coded[i][k].astype(np.float64) for i, k in members], axis=0))
            if vmap.kind == "table":
                mean = vmap.table[np.clip(np.searchsorted(vmap.table, mean), 0, len(vmap.table) - 1)]
            frames.append(mean.astype(coded[0].dtype))
            out_order.append((-1, b))
            for i, k in members:
                frames.append(coded[i][k])
                out_order.append((i, k))
        b += 1
    return np.stack(frames), out_order


def _unorder(dec: np.ndarray, order: list, counts: list[int]) -> list[np.ndarray]:
    out = [np.empty((n, *dec.shape[1:]), dec.dtype) for n in counts]
    for p, (i, k) in enumerate(order):
        if i >= 0:
            out[i][k] = dec[p]
    return out


def measure(vols: list, entry: dict, ctx, mode: str, order: str = "sequential", variant: str = "",
            with_ssim: bool = True, harmonize: bool = True) -> dict:
    """One comparison row: ``mode`` 'separate' (each scan its own stream, each with its own copy of the mapping)
    or 'intertwined' (one stream in ``order``), through the one round trip."""
    codec, label = make_codec(entry)
    codec.check(ctx)
    offsets = [value_offset(v) if harmonize else 0 for v in vols]
    arrays = [v.pixels.astype(np.int32) + off for v, off in zip(vols, offsets)]
    vmap = plan_group_mapping(arrays, codec.depth(), codec.lossless, True, codec.name)
    counts = [a.shape[0] for a in arrays]
    shifts = align_shifts(arrays) if variant == "aligned" else [(0, 0)] * len(arrays)
    if variant == "aligned":
        arrays = [np.roll(a, s, axis=(1, 2)) for a, s in zip(arrays, shifts)]
    if mode == "separate":
        trips = [round_trip(a, codec, vmap, ctx, restore_dtype=np.int32) for a in arrays]
        decoded = [t.restored for t in trips]
    else:
        if variant == "centroid":
            stack, sorder = centroid_stream(arrays, vmap)
        else:
            thumbs = [thumbnails(vmap.forward(a)) for a in arrays] if order == "similarity" else None
            sorder = stream_order(counts, order, thumbs)
            stack = np.stack([arrays[i][k] for i, k in sorder])
        trips = [round_trip(stack, codec, vmap, ctx, restore_dtype=np.int32)]
        decoded = _unorder(trips[0].restored, sorder, counts)
    size = sum(t.size for t in trips)
    if variant == "aligned":
        decoded = [np.roll(d, (-s[0], -s[1]), axis=(1, 2)) for d, s in zip(decoded, shifts)]
        arrays = [np.roll(a, (-s[0], -s[1]), axis=(1, 2)) for a, s in zip(arrays, shifts)]
    # quality on the values as coded (harmonised): the same differences as on stored values
    restored = np.concatenate(decoded)
    original = np.concatenate(arrays)
    lo, hi = int(original.min()), int(original.max())
    bits = max(1, math.ceil(math.log2(hi - lo + 1)))
    q = compare(original, restored, bits, with_ssim=with_ssim)
    raw = sum(v.raw_bytes for v in vols)
    lossless = codec.lossless and vmap.exact
    row = {"scans": len(vols), "slices": sum(counts), "codec": codec.name, "setting": label, "lossless": lossless,
           "mode": mode, "order": order if mode == "intertwined" else "", "variant": variant,
           "crf": entry.get("crf"), "raw_bytes": raw, "compressed_bytes": size, "cr": raw / size,
           "bpv": size * 8 / sum(v.pixels.size for v in vols), **q.as_dict(),
           "encode_ms": sum(t.encode_ms for t in trips), "decode_ms": sum(t.decode_ms for t in trips),
           "mapping": vmap.describe(), "status": "ok", "reason": ""}
    if lossless and not q.exact:
        row.update(status="failed", reason=f"LOSSLESS NOT EXACT: max error {q.max_abs_err}")
    return row


def bytes_at_psnr(points: list[tuple[float, float]], psnr: float) -> float | None:
    """Interpolate log(bytes) linearly in PSNR; None outside the ladder's range. points: (psnr, bytes)."""
    pts = sorted(p for p in points if math.isfinite(p[0]))
    for (p0, b0), (p1, b1) in zip(pts, pts[1:]):
        if p0 <= psnr <= p1 and p1 > p0:
            t = (psnr - p0) / (p1 - p0)
            return math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0)))
    return None


def gain_equal_psnr(separate: list[tuple[float, float]], intertwined: list[tuple[float, float]]) -> tuple:
    """(gain, psnr range) at equal PSNR: geometric mean of separate/intertwined bytes over 9 PSNRs spanning the
    overlap of both ladders; (None, None) when the ladders do not overlap."""
    lo = max(min(p for p, _ in separate), min(p for p, _ in intertwined))
    hi = min(max(p for p, _ in separate), max(p for p, _ in intertwined))
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return None, None
    ratios = []
    for t in np.linspace(lo, hi, 9):
        a, b = bytes_at_psnr(separate, t), bytes_at_psnr(intertwined, t)
        if a and b:
            ratios.append(math.log(a / b))
    return (math.exp(sum(ratios) / len(ratios)) if ratios else None), (lo, hi)
