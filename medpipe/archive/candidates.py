"""The ways a group can be coded (candidates, as data), trying each, and decoding the one that was kept.

A build tries every candidate on each group, through the one round trip (a lossless candidate that does not decode
bit-exact fails loudly), and keeps the smallest. The list is data: a new codec is one more line in
:data:`CANDIDATES` (medpipe's 3-D lossless codec, medpipe/codecs/lossless3d/, is one of them).

Layouts -- how a group's slices become codec input:

- ``dicom``: each slice's JPEG XL codestream of the STORED values as PS3.5 8.2.15 (medpipe.codecs.frames)
  writes it: extract to JPEG XL (.110) copies these codestreams, without a second encode.
- ``images``: JPEG XL images of the group's mapped values, one slice per image (``single``), or several slices as
  the channels of one image, so JPEG XL's channel transforms and context model see them together: ``neighbours``
  (``width`` consecutive slices of one scan) or ``scans`` (the same relative position of each scan of a group).
- ``stream``: a registry codec on the whole group as one stream, frames in the group's order (video codecs).
- ``volumes``: a registry codec on each scan's volume apart (intra codecs, 3-D codecs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..codecs import Codec, Encoded, codec_class, parse_codec
from ..codecs.frames import decode_frame, encode_frame
from ..codecs.imagecodecs_family import ChannelJpegXL
from ..depth import Mapping, plan_group_mapping
from ..errors import CodecSkip, CodecUnavailable, DamagedInput, MedpipeError, PresetError
from ..options import did_you_mean
from ..roundtrip import round_trip, timed
from ..syntaxes import JPEGXLLossless, PixelAttrs
from .plan import scan_frames, stream_order

LAYOUTS = ("dicom", "images", "stream", "volumes")


@dataclass(frozen=True)
class Candidate:
    name: str  # recorded in the index and shown in the build's table
    codec: dict  # a codec entry as in a preset's 'codecs:' (JPEG XL layouts: the effort comes from the settings)
    layout: str  # one of LAYOUTS
    arrange: str = "single"  # images: single | neighbours | scans
    width: int = 1  # neighbours: slices per image (2: grey + alpha, 3: RGB with reversible colour transforms)


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("jpegxl-dicom", {"codec": "jpegxl"}, "dicom"),
    Candidate("jpegxl", {"codec": "jpegxl"}, "images"),
    Candidate("jpegxl-2slices", {"codec": "jpegxl"}, "images", "neighbours", 2),
    Candidate("jpegxl-3slices", {"codec": "jpegxl"}, "images", "neighbours", 3),
    Candidate("jpegxl-scans", {"codec": "jpegxl"}, "images", "scans"),
    Candidate("ffv1", {"codec": "ffv1", "bits": 16}, "volumes"),
    Candidate("x265", {"codec": "x265", "lossless": True, "bits": 12, "preset": "medium"}, "stream"),
    Candidate("lossless3d", {"codec": "lossless3d"}, "volumes"),  # medpipe's 3-D coder (codecs/lossless3d/)
    # a series stored as baseline JPEG: its own JPEG frames as JPEG XL JPEG Recompression (.111), bytes kept
    Candidate("jpegxl-jpeg", {"codec": "jpegxl-jpeg"}, "volumes"),
)
CANDIDATE_NAMES = tuple(c.name for c in CANDIDATES)


def pick_candidates(names, where: str) -> tuple[Candidate, ...]:
    """The candidates a build tries (all when ``names`` is empty); PresetError on an unknown name."""
    if not names:
        return CANDIDATES
    by_name = {c.name: c for c in CANDIDATES}
    for n in names:
        if n not in by_name:
            raise PresetError(f"{where}: unknown candidate '{n}'{did_you_mean(str(n), by_name)}; candidates: "
                              f"{', '.join(CANDIDATE_NAMES)}")
    return tuple(by_name[n] for n in dict.fromkeys(names))


def user_candidate(entry: dict) -> Candidate:
    """``--codec`` / ``archive.codec`` given explicitly: that one codec, on the group as one stream."""
    return Candidate(entry.get("label") or str(entry["codec"]), dict(entry), "stream")


def make_codec(entry: dict, where: str = "archive.codec") -> tuple[Codec, str]:
    """A codec (and its label) from an entry."""
    spec = parse_codec(dict(entry), where)
    if spec.window is not None:
        raise PresetError(f"{where}: 'window' clips values and is not offered for archives")
    return spec.codec, spec.label


def codec_from_record(entry: dict) -> Codec:
    """The codec a group was coded with, from its canonical entry in the index."""
    entry = dict(entry)
    name = entry.pop("codec")
    return codec_class(name)(f"index codec {name}", **entry)


def image_plan(arrange: str, width: int, counts: list[int]) -> tuple[list[tuple[int, int]], list[int]]:
    """(stream order as (scan, slice), frames per image) for an ``images`` layout."""
    if arrange == "single":
        order = [(i, k) for i, n in enumerate(counts) for k in range(n)]
        return order, [1] * len(order)
    if arrange == "neighbours":
        order, plan = [], []
        for i, n in enumerate(counts):
            for k in range(0, n, width):
                run = min(width, n - k)
                order += [(i, k + j) for j in range(run)]
                plan.append(run)
        return order, plan
    # scans: tuple t holds, of every scan, the slice at relative position (t + 0.5) / m; the rest alone
    m = min(counts)
    taken = [set() for _ in counts]
    order, plan = [], []
    for t in range(m):
        for i, n in enumerate(counts):
            k = int((t + 0.5) * n / m)
            order.append((i, k))
            taken[i].add(k)
        plan.append(len(counts))
    for i, n in enumerate(counts):
        rest = [k for k in range(n) if k not in taken[i]]
        order += [(i, k) for k in rest]
        plan += [1] * len(rest)
    return order, plan


# ---------------------------------------------------------------- PS3.5 codestreams of the stored values

def dicom_codestream(uid: str, frame: np.ndarray, scan: dict, effort: int | None = None) -> bytes:
    """One frame's PS3.5 codestream (the frame coders of medpipe.codecs.frames), refusals as CodecSkip."""
    return encode_frame(uid, frame, scan["bits_stored"], scan["signed"], bits_allocated=scan["bits_allocated"],
                        effort=effort)


def decode_codestream(uid: str, data: bytes, scan: dict) -> np.ndarray:
    """Stored values of one frame's codestream (the frame coders of medpipe.codecs.frames)."""
    rows, cols = (scan.get("shape") or (0, 0, 0))[1:]
    attrs = PixelAttrs(rows, cols, 1, "MONOCHROME2", scan["signed"], scan["bits_allocated"], scan["bits_stored"],
                       scan["bits_stored"] - 1)
    return decode_frame(uid, data, attrs)


# ---------------------------------------------------------------- trials

@dataclass
class Trial:
    """One candidate tried on one group: its bytes, or why it was skipped or failed."""

    candidate: Candidate
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
    codec: dict = field(default_factory=dict)  # canonical entry of what coded it
    label: str = ""
    lossless: bool = True
    mapping: Mapping | None = None  # None: the stored values themselves (layout dicom)
    order: list = field(default_factory=list)  # (scan index, slice) per stream position
    parts: list[Encoded] = field(default_factory=list)  # one per encode call, chunks in stream order
    encode_ms: float = 0.0
    decode_ms: float = 0.0
    restored: list | None = None  # the user-given lossy codec: decoded scans, for the quality report

    @property
    def chunks(self) -> list[bytes]:
        return [c for p in self.parts for c in p.chunks]

    @property
    def size(self) -> int:
        """Every byte the decoder needs: the codestreams plus the mapping's side data."""
        return sum(len(c) for c in self.chunks) + (self.mapping.side_bytes if self.mapping is not None else 0)

    def row(self) -> dict:
        return {"candidate": self.candidate.name, "status": self.status, "reason": self.reason,
                "bytes": self.size if self.status == "ok" else None, "label": self.label,
                "encode_ms": round(self.encode_ms, 1), "decode_ms": round(self.decode_ms, 1)}


def try_candidate(cand: Candidate, vols: list, values: list[np.ndarray], scans: list[dict], settings, ctx,
                  keep_restored: bool = False, tried: tuple = ()) -> Trial:
    """Code the group with ``cand``; a skipped candidate says why; a lossless one that is not exact fails.
    ``tried``: the names of the other candidates of this build (a candidate equal to one of them is skipped)."""
    trial = Trial(cand)
    try:
        if cand.layout == "dicom":
            _dicom_trial(trial, vols, scans, settings)
        else:
            _codec_trial(trial, values, scans, settings, ctx, keep_restored, "jpegxl-dicom" in tried, vols)
    except (CodecSkip, CodecUnavailable, DamagedInput) as exc:
        trial.status, trial.reason, trial.parts = "skipped", str(exc), []
    except MedpipeError as exc:
        trial.status, trial.reason, trial.parts = "failed", str(exc), []
    return trial


def _dicom_trial(trial: Trial, vols: list, scans: list[dict], settings) -> None:
    if any(s["bits_stored"] > 16 for s in scans):
        raise CodecSkip("Bits Stored above 16: no JPEG XL DICOM codestream")
    order, chunks = [], []
    for i, (vol, scan) in enumerate(zip(vols, scans)):
        for k, frame in enumerate(vol.pixels):
            data, ms = timed(lambda f=frame: dicom_codestream(JPEGXLLossless, f, scan, settings.effort))
            trial.encode_ms += ms
            back, ms = timed(lambda d=data: decode_codestream(JPEGXLLossless, d, scan))
            trial.decode_ms += ms
            if not np.array_equal(back, frame):
                raise MedpipeError(f"LOSSLESS NOT EXACT: the JPEG XL DICOM codestream of {vol.name} slice {k} "
                                   "decodes to other values")
            chunks.append(data)
            order.append((i, k))
    n = sum(v.shape[0] for v in vols)
    trial.parts = [Encoded(chunks, (n, *vols[0].shape[1:]), "stored")]
    trial.order, trial.label = order, f"JPEG XL e{settings.effort}, PS3.5 codestream per slice"
    trial.codec = {"codec": "jpegxl", "effort": settings.effort}


def _codec_trial(trial: Trial, values: list[np.ndarray], scans: list[dict], settings, ctx,
                 keep_restored: bool, dicom_tried: bool, vols: list) -> None:
    cand = trial.candidate
    counts = [v.shape[0] for v in values]
    entry = dict(cand.codec)
    if cand.layout == "images":
        if cand.arrange == "scans" and len(values) < 2:
            raise CodecSkip("the group holds one scan")
        if cand.arrange == "scans" and len(values) > 4:
            raise CodecSkip("JPEG XL images hold at most 4 channels here (grey, grey + alpha, RGB, RGBA)")
        order, plan = image_plan(cand.arrange, cand.width, counts)
        codec = ChannelJpegXL("archive candidate", effort=settings.effort, channels=plan)
        label = f"JPEG XL e{settings.effort}" + {"single": " per slice", "neighbours": f", {cand.width} slices "
                                                 "per image", "scans": ", one image per position across scans"
                                                 }[cand.arrange]
    else:
        if entry.get("codec") == "jpegxl":
            entry.setdefault("effort", settings.effort)
        codec, label = make_codec(entry, f"archive candidate {cand.name}")
        order = (stream_order(counts, settings.order if len(values) > 1 else "sequential")
                 if cand.layout == "stream" else [(i, k) for i, n in enumerate(counts) for k in range(n)])
    codec.check(ctx)
    for vol in vols:  # a codec of the source's own bitstreams says now when a scan has none (values-only: no-op)
        codec.take_source(vol)
    vmap = plan_group_mapping(values, codec.depth(), codec.lossless, settings.value_table, codec.name)
    # the coded values are the stored values (stored + value offset - mapping offset): jpegxl-dicom codes the same
    stored = vmap.kind == "depth" and vmap.shift == 0 and not vmap.clipped and all(
        not s["signed"] and s["value_offset"] == vmap.offset for s in scans)
    if cand.layout == "images" and cand.arrange == "single" and stored and dicom_tried:
        raise CodecSkip("the mapped values equal the stored values: the same codestreams as jpegxl-dicom")
    if cand.layout == "volumes":
        batches = [[(i, k) for k in range(n)] for i, n in enumerate(counts)]
    else:
        batches = [order]
    restored = []
    for batch in batches:
        if cand.layout == "volumes":
            codec.take_source(vols[batch[0][0]])
        stack = np.stack([values[i][k] for i, k in batch])
        rt = round_trip(stack, codec, vmap, ctx, restore_dtype=np.int32)
        del stack
        if codec.lossless and vmap.exact and rt.codec_mismatches:
            raise MedpipeError(f"LOSSLESS NOT EXACT: {label} changed {rt.codec_mismatches} samples")
        trial.parts.append(rt.encoded)
        trial.encode_ms += rt.encode_ms
        trial.decode_ms += rt.decode_ms
        if keep_restored:
            restored.append(rt.restored)
        del rt
    trial.codec, trial.label, trial.order, trial.mapping = codec.canonical(), label, order, vmap
    trial.lossless = codec.lossless and vmap.exact
    if keep_restored:
        frames = np.concatenate(restored)
        trial.restored = [scan_frames(frames, order, j, n) for j, n in enumerate(counts)]


def choose(trials: list[Trial]) -> Trial | None:
    """The smallest candidate that ran; ties go to the earlier one in the list."""
    ok = [t for t in trials if t.status == "ok"]
    return min(ok, key=lambda t: t.size) if ok else None
