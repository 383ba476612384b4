"""Building an archive: choose each group's codec and value mapping, code the group through the one round trip,
check every scan comes back exact (lossless), write streams, headers, order.txt, patients.txt and the manifest
into a temporary folder, verify it, then rename it into place."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..codecs import Codec, parse_codec
from ..depth import Mapping, plan_group_mapping
from ..errors import CodecSkip, CodecUnavailable, InputError, PresetError
from ..files import atomic_folder, atomic_write_bytes, atomic_write_text
from ..metrics import compare
from ..results import library_versions
from ..roundtrip import round_trip
from .manifest import (FORMAT, HEADERS, MANIFEST, ORDER, PATIENTS, ArchiveError, order_lines, patient_lines,
                       scan_frames, sha256, slice_sha)
from .plan import GroupPlan, Settings, group_volumes, stream_order, thumbnails


# ---------------------------------------------------------------- codec choice

@dataclass
class GroupCoding:
    codec: Codec
    label: str
    vmap: Mapping
    note: str = ""


def make_codec(entry: dict) -> tuple[Codec, str]:
    spec = parse_codec(entry, "archive.codec")
    if spec.window is not None:
        raise PresetError("archive.codec: 'window' clips values and is not offered for archives; use a lossy codec "
                          "setting instead")
    return spec.codec, spec.label


def choose_coding(entry: dict, arrays: list[np.ndarray], settings: Settings, ctx) -> GroupCoding:
    """The codec and value mapping for one group. ``auto``: x265 lossless 12-bit when the values fit (directly or
    through a value table), else FFV1 16-bit; both lossless."""
    if entry.get("codec") == "auto":
        extra = {k: v for k, v in entry.items() if k != "codec"}
        notes = []
        for cand in ({"codec": "x265", "lossless": True, "bits": 12, "preset": "medium", **extra},
                     {"codec": "ffv1", "bits": 16}, {"codec": "jpegls"}):
            try:
                codec, label = make_codec(cand)
                codec.check(ctx)
                vmap = plan_group_mapping(arrays, codec.depth(), True, settings.value_table, codec.name)
                return GroupCoding(codec, label, vmap, "; ".join(notes))
            except (CodecUnavailable, CodecSkip) as exc:
                notes.append(f"{cand['codec']} not used: {exc}")
        raise CodecUnavailable("no lossless codec usable here: " + "; ".join(notes))
    codec, label = make_codec(entry)
    codec.check(ctx)
    try:
        vmap = plan_group_mapping(arrays, codec.depth(), codec.lossless, settings.value_table, codec.name)
    except CodecSkip as exc:
        if not codec.lossless:
            raise
        # a lossless archive stays lossless: FFV1 16-bit takes any integer CT
        fallback = choose_coding({"codec": "ffv1", "bits": 16}, arrays, settings, ctx)
        fallback.note = f"{label} not used: {exc}; coded with {fallback.label} instead"
        return fallback
    return GroupCoding(codec, label, vmap)


# ---------------------------------------------------------------- build

def check_volume(vol) -> None:
    if not vol.headers or not hasattr(vol.headers[0], "file_meta"):
        raise InputError(f"{vol.source}: no DICOM headers (PNG stack?); an archive restores DICOM, so give DICOM "
                         "series")
    if any("colour" in n for n in vol.notes):
        raise InputError(f"{vol.source}: colour images cannot be archived exactly (they were converted to grey)")


def value_offset(vol) -> int:
    """The integer rescale intercept when the slope is 1, else 0: added to the stored values so scans whose
    scanners store HU differently (GE: HU, Philips: HU + 1024) code the same tissue with the same value. Exact:
    restoring subtracts it again."""
    icpt = vol.rescale_intercept
    return int(icpt) if vol.rescale_slope == 1 and float(icpt).is_integer() else 0


def scan_record(sid: str, vol, gid: str) -> dict:
    h = vol.headers[0]
    g = lambda k: str(h.get(k, "") or "")  # noqa: E731
    return {
        "id": sid, "name": vol.name, "source": str(vol.source), "group": gid,
        "patient_id": g("PatientID"), "patient_name": g("PatientName"), "patient_hash": vol.patient_hash,
        "study_uid": g("StudyInstanceUID"), "study_date": g("StudyDate"), "series_uid": g("SeriesInstanceUID"),
        "series_number": g("SeriesNumber"), "series_description": vol.description, "modality": vol.modality,
        "body_part": vol.body_part, "shape": list(vol.shape), "dtype": vol.pixels.dtype.str,
        "bits_stored": vol.bits_stored, "bits_allocated": vol.bits_allocated, "signed": vol.signed,
        "raw_bytes": vol.raw_bytes, "value_range": list(vol.value_range),
        "slice_sha256": [slice_sha(sl, vol.pixels.dtype.str) for sl in vol.pixels],
    }


def write_headers(folder: Path, sid: str, vol) -> list[dict]:
    out = []
    (folder / HEADERS / sid).mkdir(parents=True, exist_ok=True)
    for k, (ds, path) in enumerate(zip(vol.headers, vol.files)):
        rel = f"{HEADERS}/{sid}/{k:04d}.dcm"
        ds.save_as(folder / rel, enforce_file_format=True)
        out.append({"name": Path(path).name, "header": rel, "frames": int(ds.get("NumberOfFrames", 1) or 1),
                    "multiframe": "NumberOfFrames" in ds,
                    "sop_uid": str(ds.get("SOPInstanceUID", "")),
                    "transfer_syntax": str(ds.file_meta.get("TransferSyntaxUID", "")),
                    "header_sha256": sha256((folder / rel).read_bytes())})
    if sum(f["frames"] for f in out) != vol.shape[0]:
        raise InputError(f"{vol.source}: files hold {sum(f['frames'] for f in out)} frames, the volume "
                         f"{vol.shape[0]}; cannot map slices back to files")
    return out


def tool_versions(ctx, codecs: list[Codec]) -> dict:
    out = {"libraries": library_versions()}
    for c in codecs:
        out[c.name] = c.version(ctx)
    return out


def build_archive(volumes: list, out: Path, settings: Settings, ctx, console=None) -> dict:
    """Group, order, encode and write an archive at ``out`` (must not exist); returns the manifest."""
    from .restore import verify_archive

    say = console.print if console else (lambda *a, **k: None)
    out = Path(out)
    if out.exists():
        raise ArchiveError(f"{out}: already exists; choose another --out or remove it first")
    if not volumes:
        raise InputError("no scans to archive")
    for v in volumes:
        check_volume(v)
    plans = group_volumes(volumes, settings)
    with atomic_folder(out) as tmp:
        manifest = _build_into(tmp, volumes, plans, settings, ctx, say)
        verify_archive(tmp, ctx)
    say(f"archive: [bold]{out}[/] ({len(plans)} group(s), {len(volumes)} scan(s)); verified")
    return manifest


def _build_into(folder: Path, volumes, plans: list[GroupPlan], settings: Settings, ctx, say) -> dict:
    started = datetime.now(timezone.utc)
    log_start = len(ctx.commands)  # this build's ffmpeg commands only
    scans: dict[str, dict] = {}
    groups: list[dict] = []
    used: list[Codec] = []
    width = max(2, len(str(len(volumes))))
    sid_of = {i: f"s{i + 1:0{width}d}" for i in range(len(volumes))}
    for gi, plan in enumerate(plans):
        gid = f"g{gi + 1:02d}"
        vols = [volumes[i] for i in plan.members]
        sids = [sid_of[i] for i in plan.members]
        for sid, vol in zip(sids, vols):
            scans[sid] = scan_record(sid, vol, gid)
            scans[sid]["files"] = write_headers(folder, sid, vol)
        offsets = [value_offset(v) if settings.harmonize else 0 for v in vols]
        values = [v.pixels.astype(np.int32) + off for v, off in zip(vols, offsets)]
        coding = choose_coding(settings.codec, values, settings, ctx)
        used.append(coding.codec)
        for sid, off in zip(sids, offsets):
            scans[sid]["value_offset"] = off
        order_how = settings.order if len(vols) > 1 else "sequential"
        thumbs = [thumbnails(coding.vmap.forward(a)) for a in values] if order_how == "similarity" else None
        order = stream_order([v.shape[0] for v in vols], order_how, thumbs)
        stack = np.stack([values[i][k] for i, k in order])
        del values
        rt = round_trip(stack, coding.codec, coding.vmap, ctx, restore_dtype=np.int32)
        del stack
        enc = rt.encoded
        data = b"".join(enc.chunks)
        name = f"{gid}.{coding.codec.container}" if not coding.codec.per_slice else f"{gid}.{coding.codec.name}.bin"
        atomic_write_bytes(folder / name, data)
        raw = sum(v.raw_bytes for v in vols)
        lossless = coding.codec.lossless and coding.vmap.exact
        g = {"id": gid, "scans": sids, "why": plan.why, "similarity": plan.similarity, "order_kind": order_how,
             "order": [[sids[i], k] for i, k in order], "codec": coding.codec.canonical(), "label": coding.label,
             "codec_note": coding.note, "codec_version": coding.codec.version(ctx), "lossless": lossless,
             "mapping": coding.vmap.as_dict(), "stream": name, "stream_bytes": len(data),
             "stream_sha256": sha256(data), "chunk_sizes": [len(c) for c in enc.chunks],
             "encoded": {"shape": list(enc.shape), "dtype": enc.dtype, "side": enc.side},
             "restored_sha256": sha256(np.ascontiguousarray(rt.restored).tobytes()), "raw_bytes": raw,
             "compressed_bytes": rt.size, "cr": raw / rt.size, "encode_ms": rt.encode_ms}
        for j, (sid, vol) in enumerate(zip(sids, vols)):
            mine = (scan_frames(rt.restored, order, j, vol.shape[0]) - offsets[j]).astype(vol.pixels.dtype)
            q = compare(vol.pixels, mine, vol.span_bits, with_ssim=not lossless)
            if lossless and not q.exact:
                raise ArchiveError(f"{gid}: lossless coding of {vol.name} is not exact (max error {q.max_abs_err}); "
                                   "nothing was written")
            scans[sid]["quality"] = q.as_dict()
        groups.append(g)
        alone = " (alone)" if len(vols) == 1 else ""
        say(f"{gid}{alone}: {', '.join(v.name for v in vols)} -> {name} {coding.label}, {order_how}, "
            f"{len(data) / 2**20:.2f} MiB, CR {g['cr']:.2f}, {coding.vmap.describe()}; {plan.why}", highlight=False)
        if coding.note:
            say(f"  [dim]{coding.note}[/]", highlight=False)
    scan_list = [scans[sid_of[i]] for i in range(len(volumes))]
    manifest = {"format": FORMAT, "created": started.isoformat(timespec="seconds"),
                "settings": {**settings.__dict__, "group_by": list(settings.group_by),
                             "key_frames": list(settings.key_frames)},
                "tools": tool_versions(ctx, used), "groups": groups, "scans": scan_list,
                "lossless": all(g["lossless"] for g in groups), "ffmpeg_commands": ctx.commands[log_start:]}
    atomic_write_text(folder / ORDER, order_lines(groups, scans))
    atomic_write_text(folder / PATIENTS, patient_lines(scan_list))
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, default=str))
    return manifest
