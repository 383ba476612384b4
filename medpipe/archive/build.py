"""Building an archive: survey the scans (one at a time), group them, and for each group try every candidate
coding, keep the smallest verified one, store each scan's headers compactly, and seal the folder. Everything is
written into a temporary folder, verified as ``verify`` would, then renamed into place.

Memory: the survey loads one scan at a time and keeps only what grouping needs; coding loads one group
(``max_group`` scans at most) at a time. Inputs are read twice, and a scan that changed in between is refused.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..codecs.frames import original_jpeg
from ..errors import CodecSkip, InputError
from ..files import atomic_folder, atomic_write_bytes, safe_component
from ..jpeg_decoder import described_decoder
from ..metrics import compare
from ..results import library_versions
from ..syntaxes import BASELINE_JPEG
from ..volumes import Volume
from .candidates import CANDIDATES, Trial, choose, codec_from_record, pick_candidates, try_candidate, \
    user_candidate
from .dicomfile import jpeg_layout, native_file, native_value
from .headers import EXPLICIT_BE, NAME, NATIVE, RESIDUAL, header_sha, pack_store, read_header, record_syntax, xor
from .index import DTYPES, FORMAT, HEADERS, ArchiveError, sha256, seal, slice_sha
from .plan import GroupPlan, group_scans, scan_facts
from .settings import Settings


FFV1 = next(c for c in CANDIDATES if c.name == "ffv1")  # a lossless user codec that cannot take the values


def check_volume(vol) -> None:
    """Only what an archive can restore exactly: DICOM, integer cells of 8/16/32 bits, grey -- or colour stored as
    baseline JPEG, whose own JPEG frames the jpegxl-jpeg candidate keeps (:func:`colour_problem`)."""
    if not vol.headers or not hasattr(vol.headers[0], "file_meta"):
        raise InputError(f"{vol.source}: no DICOM headers (PNG stack?); an archive restores DICOM, so give DICOM "
                         "series")
    problem = colour_problem(vol) if is_colour(vol) else None
    if problem:
        raise InputError(f"{vol.source}: {problem}")
    if (vol.bits_allocated, vol.signed) not in DTYPES or any("converted exactly" in n for n in vol.notes):
        raise InputError(f"{vol.source}: Bits Allocated {vol.bits_allocated} ({vol.pixels.dtype}) is not an "
                         "integer cell of 8, 16 or 32 bits; not archived")


def is_colour(vol) -> bool:
    return bool(vol.color) or any("colour" in n for n in vol.notes)


def colour_problem(vol) -> str | None:
    """Why a colour series cannot be archived, or None. Its slices are grey (converted on loading), so only its
    own colour JPEG frames, kept as .111 streams and given back bit for bit, restore the files; any other colour
    series would need the archive to code colour samples, which none of its layouts does."""
    from ..codecs.jpeg_recompression import colour_of

    stored = {str(getattr(h, "file_meta", {}).get("TransferSyntaxUID", "")) for h in vol.headers}
    if not stored <= set(BASELINE_JPEG):
        return ("colour images cannot be archived exactly (they were converted to grey); only a colour series "
                "stored as baseline JPEG is, by the jpegxl-jpeg candidate")
    try:
        colour = colour_of(vol)
    except CodecSkip as exc:
        return str(exc)
    if colour is None:
        return "colour images cannot be archived exactly (they were converted to grey)"
    if colour["mode"] != "gray":
        return "colour coded per component (color: components) is not archived; load it with color: gray"
    return None


def colour_candidates(gid: str, tried: tuple) -> tuple:
    """A colour group's slices are grey conversions: only the candidate that keeps its own JPEG frames may code it
    (never one that codes the grey values, which would restore no file)."""
    keep = tuple(c for c in tried if c.codec.get("codec") == "jpegxl-jpeg")
    if not keep:
        raise ArchiveError(f"{gid}: a colour series is archived only by the jpegxl-jpeg candidate (its own JPEG "
                           f"frames, kept bit for bit); not among those tried: {', '.join(c.name for c in tried)}")
    return keep


def value_offset(vol) -> int:
    """The integer rescale intercept when the slope is 1, else 0: added to the stored values so scans whose
    scanners store HU differently (GE: HU, Philips: HU + 1024) code the same tissue with the same value. Exact:
    restoring subtracts it again."""
    icpt = vol.rescale_intercept
    return int(icpt) if vol.rescale_slope == 1 and float(icpt).is_integer() else 0


def _load(item, errors: list[str]):
    """A Volume as given, or a VolumeSource loaded now."""
    return item if isinstance(item, Volume) else item.load(errors)


def unique_names(paths: list[Path]) -> list[str]:
    """Restored file names: the originals', made safe and unique (case-insensitively) within the series."""
    out, seen = [], set()
    for p in paths:
        name = safe_component(Path(p).name, "file")
        stem, n = name, 1
        while name.casefold() in seen:
            n += 1
            name = f"{stem}_{n}"
        seen.add(name.casefold())
        out.append(name)
    return out


def scan_record(sid: str, vol, gid: str) -> dict:
    h = vol.headers[0]
    g = lambda k: str(h.get(k, "") or "")  # noqa: E731
    return {
        "id": sid, "name": safe_component(vol.name, "scan"), "source": str(vol.source), "group": gid,
        "patient_id": g("PatientID"), "patient_name": g("PatientName"), "patient_hash": vol.patient_hash,
        "study_uid": g("StudyInstanceUID"), "study_date": g("StudyDate"), "series_uid": g("SeriesInstanceUID"),
        "series_number": g("SeriesNumber"), "series_description": vol.description, "modality": vol.modality,
        "body_part": vol.body_part, "shape": list(vol.shape), "dtype": DTYPES[(vol.bits_allocated, vol.signed)],
        "bits_stored": vol.bits_stored, "bits_allocated": vol.bits_allocated, "signed": vol.signed,
        "raw_bytes": vol.raw_bytes, "value_range": list(vol.value_range),
        "frame_order": [int(i) for i in vol.frame_order] if vol.frame_order is not None else None,
        "slice_sha256": [slice_sha(sl, DTYPES[(vol.bits_allocated, vol.signed)]) for sl in vol.pixels],
        "colour": vol.color,  # "" for grey; else the slices are its conversion, and only the files restore it
    }


def stored_order(scan: dict, pixels: np.ndarray) -> np.ndarray:
    """The scan's slices in the order the files store them (a multi-frame object's frames were sorted)."""
    fo = scan["frame_order"]
    return pixels if fo is None else pixels[np.argsort(fo)]


def write_headers(folder: Path, scan: dict, vol) -> None:
    """The compact header store of one scan, and per file what restoring it must reproduce."""
    records, files = [], []
    stored = stored_order(scan, vol.pixels)
    at = 0
    for path, name, ds in zip(vol.files, unique_names(vol.files), vol.headers):
        record, pixel, source_sha = read_header(Path(path))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        files.append({"name": name, "frames": frames, "sop_uid": str(ds.get("SOPInstanceUID", "")),
                      "transfer_syntax": record_syntax(record), "source_bytes": Path(path).stat().st_size,
                      "source_sha256": source_sha, "header_sha256": header_sha(record)})
        layout = jpeg_layout(record, pixel, frames, source_sha)
        if layout:  # a baseline JPEG file that jpeg_original rebuilds from its own JPEG frames
            files[-1].update(layout)
        if scan["colour"]:  # the slices are grey: only the original file, from its own JPEG frames, restores it
            if not layout:
                raise InputError(f"{path}: a colour file whose JPEG encapsulation (several fragments per frame, or "
                                 "other padding) medpipe cannot rebuild byte for byte; not archived")
            files[-1].update(exact_copy=False, restored_sha256=source_sha)
            records.append([*record, (NAME, name.encode("utf-8"))])
            at += frames
            continue
        restored = native_file(record, stored[at:at + frames], scan)
        files[-1]["exact_copy"] = record_syntax(record) in NATIVE or not record_syntax(record)
        if files[-1]["exact_copy"] and sha256(restored) != source_sha:
            rebuilt = native_value(stored[at:at + frames], scan, record_syntax(record) != EXPLICIT_BE)
            if len(rebuilt) == len(pixel):  # keep the bits the stored values do not hold (headers.py)
                record.append((RESIDUAL, xor(rebuilt, pixel)))
                restored = native_file(record, stored[at:at + frames], scan)
        files[-1]["restored_sha256"] = sha256(restored)
        if files[-1]["exact_copy"] and files[-1]["restored_sha256"] != source_sha:
            raise InputError(f"{path}: its native pixel data does not come back byte-identical from the stored "
                             "values; not archived")
        records.append([*record, (NAME, name.encode("utf-8"))])
        at += frames
    if at != vol.shape[0]:
        raise InputError(f"{vol.source}: files hold {at} frames, the volume {vol.shape[0]}; cannot map slices back "
                         "to files")
    scan["files"] = files
    scan["headers"] = f"{HEADERS}/{scan['id']}.hdr"
    atomic_write_bytes(folder / HEADERS / f"{scan['id']}.hdr", pack_store(records))


def build_archive(inputs: list, out: Path, settings: Settings, ctx, console=None, sign: Path | None = None) -> dict:
    """Survey, group, code and write an archive at ``out`` (must not exist); returns the index. ``inputs`` are
    Volumes or VolumeSources (loaded one at a time). ``sign``: an Ed25519 private key (PEM) to sign the index with."""
    from .sign import load_private, sign_archive
    from .verify import verify_archive

    say = console.print if console else (lambda *a, **k: None)
    out = Path(out)
    if out.exists():
        raise ArchiveError(f"{out}: already exists; choose another --out or remove it first")
    if not inputs:
        raise InputError("no scans to archive")
    private = load_private(sign) if sign is not None else None  # a wrong key is said before any work
    errors: list[str] = []
    facts, fingerprints = [], []
    for item in inputs:  # the survey: one volume in memory at a time
        vol = _load(item, errors)
        check_volume(vol)
        facts.append(scan_facts(vol, settings))
        fingerprints.append(vol.content_hash)
        del vol
    plans = group_scans(facts, settings)
    with atomic_folder(out) as tmp:
        index = _build_into(tmp, inputs, plans, fingerprints, settings, ctx, say, errors)
        signed = f", signed by key {sign_archive(tmp, private)}" if private is not None else ""
        verify_archive(tmp, ctx, key=sign)
    say(f"archive: [bold]{out}[/] ({len(plans)} group(s), {len(inputs)} scan(s), "
        f"{sum(f['bytes'] for f in index['files']) / 2**20:.2f} MiB); sealed{signed} and verified", highlight=False)
    return index


def _build_into(folder: Path, inputs: list, plans: list[GroupPlan], fingerprints: list[str], settings: Settings,
                ctx, say, errors: list[str]) -> dict:
    started = datetime.now(timezone.utc)
    log_start = len(ctx.commands)
    width = max(2, len(str(len(inputs))))
    sid_of = {i: f"s{i + 1:0{width}d}" for i in range(len(inputs))}
    scans: dict[str, dict] = {}
    groups, written, used = [], [], {}
    auto = settings.codec.get("codec") == "auto"
    tried = pick_candidates(settings.candidates, "archive.candidates") if auto else (user_candidate(settings.codec),)
    for gi, plan in enumerate(plans):
        gid = f"g{gi + 1:02d}"
        vols = [_load(inputs[i], errors) for i in plan.members]
        sids = [sid_of[i] for i in plan.members]
        for i, vol in zip(plan.members, vols):
            if vol.content_hash != fingerprints[i]:
                raise InputError(f"{vol.source}: changed while it was being archived; nothing was written")
        recs = [scan_record(sid, vol, gid) for sid, vol in zip(sids, vols)]
        for rec, vol in zip(recs, vols):
            rec["value_offset"] = value_offset(vol) if settings.harmonize else 0
            write_headers(folder, rec, vol)
            scans[rec["id"]] = rec
            written.append(rec["headers"])
        values = [v.pixels.astype(np.int32) + r["value_offset"] for v, r in zip(vols, recs)]
        colour = any(r["colour"] for r in recs)
        here = colour_candidates(gid, tried) if colour else tried
        names = tuple(c.name for c in here)
        trials = [try_candidate(c, vols, values, recs, settings, ctx, not auto, names) for c in here]
        best = choose(trials)
        if best is None and not auto and not colour and trials[0].status == "skipped":  # stays lossless
            fallback = try_candidate(FFV1, vols, values, recs, settings, ctx)
            fallback.reason = f"{trials[0].candidate.name} not used: {trials[0].reason}"
            trials.append(fallback)
            best = choose(trials)
        if best is None:
            raise ArchiveError(f"{gid}: no candidate could code {', '.join(v.name for v in vols)}: " +
                               "; ".join(f"{t.candidate.name}: {t.reason}" for t in trials))
        del values
        g = _group_record(gid, plan, sids, best, trials, vols, settings)
        atomic_write_bytes(folder / g["stream"], b"".join(best.chunks))
        written.append(g["stream"])
        used[best.codec.get("codec", "")] = best
        _quality(best, vols, recs)
        groups.append(g)
        _say_group(say, g, vols, plan)
        del vols, vol, trials, best  # (the loop variable too: the next group's volumes replace these)
    index = {"format": FORMAT, "created": started.isoformat(timespec="seconds"),
             "settings": {**settings.__dict__, "candidates": list(settings.candidates),
                          "group_by": list(settings.group_by), "key_frames": list(settings.key_frames)},
             "tools": _versions(used, ctx), "lossless": all(g["lossless"] for g in groups),
             "groups": groups, "scans": [scans[sid_of[i]] for i in range(len(inputs))],
             "input_errors": errors, "ffmpeg_commands": ctx.commands[log_start:]}
    seal(folder, index, written)
    return index



def _group_record(gid: str, plan: GroupPlan, sids: list[str], best: Trial, trials: list[Trial], vols,
                  settings: Settings) -> dict:
    raw = sum(v.raw_bytes for v in vols)
    restored = _restored_frames(best, vols, sids)
    g = {"id": gid, "scans": sids, "why": plan.why, "similarity": plan.similarity,
         "candidate": best.candidate.name, "layout": best.candidate.layout, "codec": best.codec,
         "label": best.label, "note": best.reason, "lossless": best.lossless,
         "mapping": best.mapping.as_dict() if best.mapping is not None else None,
         "order_kind": settings.order if best.candidate.layout == "stream" and len(vols) > 1 else "sequential",
         "order": [[sids[i], k] for i, k in best.order], "stream": f"{gid}.bin",
         "parts": [{"chunk_sizes": [len(c) for c in p.chunks], "shape": list(p.shape), "dtype": p.dtype,
                    "side": p.side} for p in best.parts],
         "restored_sha256": sha256(np.ascontiguousarray(restored).tobytes()),
         "candidates": [t.row() for t in trials], "raw_bytes": raw, "compressed_bytes": best.size,
         "cr": raw / best.size, "encode_ms": round(best.encode_ms, 1)}
    if best.codec.get("codec") == "jpegxl-jpeg":  # its exactness: the JPEG frames (verify.jpeg_claim)
        g.update(jpeg_sha256=[sha256(original_jpeg(c)) for c in best.chunks], jpeg_decoder=described_decoder())
    return g


def _restored_frames(best: Trial, vols, sids) -> np.ndarray:
    """The frames, in stream order, that decoding the kept candidate gives (int32, before the value offset)."""
    if best.restored is not None:  # a lossy user codec: what it decoded
        return np.stack([best.restored[i][k] for i, k in best.order]).astype(np.int32)
    if best.mapping is None:  # layout dicom: the stored values themselves
        return np.stack([vols[i].pixels[k] for i, k in best.order]).astype(np.int32)
    offsets = [value_offset(v) for v in vols]
    return np.stack([vols[i].pixels[k].astype(np.int32) + offsets[i] for i, k in best.order])


def _quality(best: Trial, vols, recs) -> None:
    for j, (vol, rec) in enumerate(zip(vols, recs)):
        if best.restored is None:
            rec["quality"] = {"exact": True, "max_abs_err": 0}
            continue
        mine = (best.restored[j] - rec["value_offset"]).astype(vol.pixels.dtype)
        rec["quality"] = compare(vol.pixels, mine, vol.span_bits, with_ssim=not best.lossless).as_dict()
        if best.lossless and not rec["quality"]["exact"]:
            raise ArchiveError(f"lossless coding of {vol.name} is not exact; nothing was written")


def _versions(used: dict, ctx) -> dict:
    out = {"libraries": library_versions()}
    for name, trial in used.items():
        try:
            out[name] = codec_from_record(trial.codec).version(ctx)
        except Exception:  # noqa: BLE001 - a version string must never fail a build
            out[name] = "unknown"
    return out


def _say_group(say, g: dict, vols, plan: GroupPlan) -> None:
    from rich.table import Table

    alone = " (alone)" if len(vols) == 1 else ""
    t = Table(title=f"{g['id']}{alone}: {', '.join(v.name for v in vols)} -- {plan.why}", title_justify="left")
    for c in ("candidate", "coding", "bytes", "vs kept", "encode s", "status"):
        t.add_column(c, overflow="fold")
    for row in g["candidates"]:
        kept = row["candidate"] == g["candidate"]
        size = f"{row['bytes']:,}" if row["bytes"] else "-"
        ratio = f"{row['bytes'] / g['compressed_bytes']:.3f}" if row["bytes"] else ""
        status = "[green]kept[/]" if kept else (row["status"] if row["status"] == "ok" else
                                                f"[yellow]{row['status']}[/]: {row['reason'][:90]}")
        t.add_row(row["candidate"], row["label"] or "-", size, ratio, f"{row['encode_ms'] / 1000:.1f}", status)
    say(t)
