"""Build, verify, list and extract intertwined archives (thesis 4.2, plus restoring).

An archive is a folder::

    manifest.json        everything restoring needs: groups, value mappings, codec settings and versions,
                         stream and header checksums, SHA-256 of every original slice's pixel data
    order.txt            one line per stream frame: group, position, scan, slice, file (readable by a person)
    patients.txt         who is inside: scan, group, patient, study/series identity, slices
    g01.mkv ...          one stream per group (video), or g01.jpegxl.bin (per-slice streams, concatenated)
    headers/s01/0000.dcm each original file's header: DICOM without PixelData

It is written under a temporary name, verified by decoding every frame, and only then renamed. ``verify`` and
``extract`` check the manifest, order.txt, every stream and header checksum and every slice's SHA-256 before a
file is written, and ``extract`` writes into a temporary folder renamed when complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..codecs import Codec, Encoded, codec_class
from ..errors import CodecSkip, CodecUnavailable, InputError, MedpipeError, PresetError
from ..metrics import compare
from ..volumes import Volume
from .mapping import ValueMap, plan_mapping
from .plan import GroupPlan, Settings, group_volumes, stream_order, thumbnails

FORMAT = "medpipe-intertwined-archive/1"
MANIFEST, ORDER, PATIENTS, HEADERS = "manifest.json", "order.txt", "patients.txt", "headers"
# DICOM Lossy Image Compression Method (0028,2114) per coding standard
LOSSY_METHOD = {"x265": "ISO_23008_2", "x264": "ISO_14496_10", "jpegls": "ISO_14495_1", "jpeg2000": "ISO_15444_1",
                "jpeg8": "ISO_10918_1", "jpegxl": "ISO_18181_1"}


class ArchiveError(MedpipeError):
    """An archive is missing, damaged or inconsistent; the message names the file and what is wrong."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def slice_sha(sl: np.ndarray, dtype: str) -> str:
    """SHA-256 of one slice's pixel values as little-endian samples of the source dtype."""
    return sha256(np.ascontiguousarray(sl.astype(np.dtype(dtype).newbyteorder("<"), copy=False)).tobytes())


# ---------------------------------------------------------------- codec choice

@dataclass
class GroupCoding:
    codec: Codec
    label: str
    vmap: ValueMap
    note: str = ""


def make_codec(entry: dict) -> tuple[Codec, str]:
    from ..preset import parse_codec

    spec = parse_codec(entry, 0, "archive.")
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
                vmap = plan_mapping(arrays, codec.depth(), True, settings.value_table, codec.name)
                return GroupCoding(codec, label, vmap, "; ".join(notes))
            except (CodecUnavailable, CodecSkip) as exc:
                notes.append(f"{cand['codec']} not used: {exc}")
        raise CodecUnavailable("no lossless codec usable here: " + "; ".join(notes))
    codec, label = make_codec(entry)
    codec.check(ctx)
    try:
        vmap = plan_mapping(arrays, codec.depth(), codec.lossless, settings.value_table, codec.name)
    except CodecSkip as exc:
        if not codec.lossless:
            raise
        # a lossless archive stays lossless: FFV1 16-bit takes any integer CT
        fallback = choose_coding({"codec": "ffv1", "bits": 16}, arrays, settings, ctx)
        fallback.note = f"{label} not used: {exc}; coded with {fallback.label} instead"
        return fallback
    return GroupCoding(codec, label, vmap)


def encode(codec: Codec, coded: np.ndarray, ctx) -> tuple[Encoded, float]:
    """(encoded, encode ms): the codec call alone, timed as the bench times it."""
    from ..bench import timed

    return timed(lambda: codec.encode(coded, ctx), 1)


def stream_bytes(enc: Encoded) -> bytes:
    return b"".join(enc.chunks)


# ---------------------------------------------------------------- build

def check_volume(vol: Volume) -> None:
    if not vol.headers or not hasattr(vol.headers[0], "file_meta"):
        raise InputError(f"{vol.source}: no DICOM headers (PNG stack?); an archive restores DICOM, so give DICOM "
                         "series")
    if any("colour" in n for n in vol.notes):
        raise InputError(f"{vol.source}: colour images cannot be archived exactly (they were converted to grey)")


def value_offset(vol: Volume) -> int:
    """The integer rescale intercept when the slope is 1, else 0: added to the stored values so scans whose
    scanners store HU differently (GE: HU, Philips: HU + 1024) code the same tissue with the same value. Exact:
    restoring subtracts it again."""
    icpt = vol.rescale_intercept
    return int(icpt) if vol.rescale_slope == 1 and float(icpt).is_integer() else 0


def scan_record(sid: str, vol: Volume, gid: str) -> dict:
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


def write_headers(folder: Path, sid: str, vol: Volume) -> list[dict]:
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


def write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def order_lines(groups: list[dict], scans: dict[str, dict]) -> str:
    lines = ["# medpipe intertwined archive: one line per frame of each group's stream",
             "# group  position  scan  slice  file   (slice: 0-based index in the restored series)"]
    for g in groups:
        for pos, (sid, k) in enumerate(g["order"]):
            lines.append(f"{g['id']}\t{pos}\t{sid}\t{k}\t{file_of_slice(scans[sid], k)}")
    return "\n".join(lines) + "\n"


def file_of_slice(scan: dict, k: int) -> str:
    start = 0
    for f in scan["files"]:
        if k < start + f["frames"]:
            return f["name"] if f["frames"] == 1 else f"{f['name']}#{k - start}"
        start += f["frames"]
    return "?"


def patient_lines(scans: list[dict]) -> str:
    cols = ["scan", "group", "patient_id", "patient_name", "study_date", "series_number", "series_description",
            "modality", "slices", "rows x cols", "series_uid", "source folder"]
    lines = ["# medpipe intertwined archive: who is inside (tab-separated)", "\t".join(cols)]
    for s in scans:
        lines.append("\t".join(str(x) for x in (
            s["id"], s["group"], s["patient_id"], s["patient_name"], s["study_date"], s["series_number"],
            s["series_description"], s["modality"], s["shape"][0], f"{s['shape'][1]}x{s['shape'][2]}",
            s["series_uid"], s["name"])))
    return "\n".join(lines) + "\n"


def tool_versions(ctx, codecs: list[Codec]) -> dict:
    from ..results import library_versions

    out = {"libraries": library_versions()}
    for c in codecs:
        out[c.name] = c.version(ctx)
    return out


def build_archive(volumes: list[Volume], out: Path, settings: Settings, ctx, console=None) -> dict:
    """Group, order, encode and write an archive at ``out`` (must not exist); returns the manifest."""
    say = console.print if console else (lambda *a, **k: None)
    out = Path(out)
    if out.exists():
        raise ArchiveError(f"{out}: already exists; choose another --out or remove it first")
    if not volumes:
        raise InputError("no scans to archive")
    names = [v.name for v in volumes]
    for v in volumes:
        check_volume(v)
    plans = group_volumes(volumes, settings)
    tmp = out.with_name(f".{out.name}.part")
    if tmp.exists():
        shutil.rmtree(tmp)  # left over from an interrupted build of this same archive
    tmp.mkdir(parents=True)
    try:
        manifest = _build_into(tmp, volumes, plans, settings, ctx, say)
        verify_archive(tmp, ctx)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"archive: [bold]{out}[/] ({len(plans)} group(s), {len(names)} scan(s)); verified")
    return manifest


def _build_into(folder: Path, volumes, plans: list[GroupPlan], settings: Settings, ctx, say) -> dict:
    started = datetime.now(timezone.utc)
    log_start = len(ctx._ffmpeg.log) if getattr(ctx, "_ffmpeg", None) else 0  # this build's commands only
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
        coded_scans = [coding.vmap.forward(a) for a in values]
        del values
        for sid, off in zip(sids, offsets):
            scans[sid]["value_offset"] = off
        order_how = settings.order if len(vols) > 1 else "sequential"
        thumbs = [thumbnails(c) for c in coded_scans] if order_how == "similarity" else None
        order = stream_order([v.shape[0] for v in vols], order_how, thumbs)
        stack = np.stack([coded_scans[i][k] for i, k in order])
        enc, enc_ms = encode(coding.codec, stack, ctx)
        data = stream_bytes(enc)
        name = f"{gid}.{coding.codec.container}" if not coding.codec.per_slice else f"{gid}.{coding.codec.name}.bin"
        (folder / name).write_bytes(data)
        dec = coding.codec.decode(enc, ctx)
        raw = sum(v.raw_bytes for v in vols)
        lossless = coding.codec.lossless and coding.vmap.exact
        g = {"id": gid, "scans": sids, "why": plan.why, "similarity": plan.similarity, "order_kind": order_how,
             "order": [[sids[i], k] for i, k in order], "codec": coding.codec.canonical(), "label": coding.label,
             "codec_note": coding.note, "codec_version": coding.codec.version(ctx), "lossless": lossless,
             "mapping": coding.vmap.as_dict(), "stream": name, "stream_bytes": len(data),
             "stream_sha256": sha256(data), "chunk_sizes": [len(c) for c in enc.chunks],
             "encoded": {"shape": list(enc.shape), "dtype": enc.dtype, "side": enc.side},
             "decoded_sha256": sha256(np.ascontiguousarray(dec).tobytes()), "raw_bytes": raw,
             "compressed_bytes": len(data) + coding.vmap.side_bytes,
             "cr": raw / (len(data) + coding.vmap.side_bytes), "encode_ms": enc_ms}
        restored = coding.vmap.inverse(dec)
        for j, (sid, vol) in enumerate(zip(sids, vols)):
            mine = (_scan_frames(restored, order, j, vol.shape[0]) - offsets[j]).astype(vol.pixels.dtype)
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
                "lossless": all(g["lossless"] for g in groups),
                "ffmpeg_commands": list(ctx._ffmpeg.log[log_start:]) if getattr(ctx, "_ffmpeg", None) else []}
    write_text(folder / ORDER, order_lines(groups, scans))
    write_text(folder / PATIENTS, patient_lines(scan_list))
    write_text(folder / MANIFEST, json.dumps(manifest, indent=1, default=str))
    return manifest


def _scan_frames(frames: np.ndarray, order: list[tuple[int, int]], scan_index: int, n: int) -> np.ndarray:
    """Frames of one scan, back in slice order, from a stream in ``order``."""
    pos = np.empty(n, np.int64)
    for p, (i, k) in enumerate(order):
        if i == scan_index:
            pos[k] = p
    return frames[pos]


# ---------------------------------------------------------------- read / verify

def read_manifest(folder: Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise ArchiveError(f"{folder}: not an archive folder (does not exist)")
    path = folder / MANIFEST
    if not path.is_file():
        raise ArchiveError(f"{path}: missing; {folder} is not a complete medpipe archive")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{path}: damaged (not valid JSON: {exc}); restore the archive from a copy")
    if m.get("format") != FORMAT:
        raise ArchiveError(f"{path}: format {m.get('format')!r} is not {FORMAT!r}; a newer or foreign archive")
    return m


def read_order(folder: Path, manifest: dict) -> None:
    """order.txt must list exactly the manifest's frames, in order: a missing or changed line is damage."""
    path = folder / ORDER
    if not path.is_file():
        raise ArchiveError(f"{path}: missing; the archive is incomplete")
    got: dict[str, list] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            gid, pos, sid, k = parts[0], int(parts[1]), parts[2], int(parts[3])
        except (IndexError, ValueError):
            raise ArchiveError(f"{path}: line {n} is damaged ({line[:60]!r}); expected group, position, scan, slice")
        got.setdefault(gid, []).append((pos, sid, k, n))
    for g in manifest["groups"]:
        rows = got.pop(g["id"], [])
        if len(rows) != len(g["order"]):
            raise ArchiveError(f"{path}: group {g['id']} lists {len(rows)} frames, the manifest {len(g['order'])} "
                               f"({abs(len(g['order']) - len(rows))} line(s) missing or extra); the archive is "
                               "damaged - restore it from a copy")
        for expect_pos, ((pos, sid, k, n), (msid, mk)) in enumerate(zip(rows, g["order"])):
            if (pos, sid, k) != (expect_pos, msid, mk):
                raise ArchiveError(f"{path}: line {n} says {g['id']} position {pos} = {sid} slice {k}, the manifest "
                                   f"{expect_pos} = {msid} slice {mk}; the archive is damaged")
    if got:
        raise ArchiveError(f"{path}: lists unknown group(s) {sorted(got)}; the archive is damaged")


def decode_group(folder: Path, g: dict, ctx) -> np.ndarray:
    """Check the stream's size and SHA-256, decode it, check the decoded frames' SHA-256 -> coded frames."""
    path = folder / g["stream"]
    if not path.is_file():
        raise ArchiveError(f"{path}: missing; the archive is incomplete")
    data = path.read_bytes()
    if len(data) != g["stream_bytes"]:
        raise ArchiveError(f"{path}: {len(data)} bytes, the manifest says {g['stream_bytes']}: truncated or damaged")
    if sha256(data) != g["stream_sha256"]:
        raise ArchiveError(f"{path}: SHA-256 mismatch: the stream is damaged (changed bytes); restore it from a copy")
    chunks, at = [], 0
    for n in g["chunk_sizes"]:
        chunks.append(data[at: at + n])
        at += n
    e = g["encoded"]
    enc = Encoded(chunks, tuple(e["shape"]), e["dtype"], e["side"])
    entry = dict(g["codec"])
    codec = codec_class(entry.pop("codec"))(**entry)
    codec.check(ctx)
    try:
        dec = codec.decode(enc, ctx)
    except MedpipeError as exc:
        raise ArchiveError(f"{path}: cannot be decoded ({exc})")
    if tuple(dec.shape) != tuple(e["shape"]) or sha256(np.ascontiguousarray(dec).tobytes()) != g["decoded_sha256"]:
        raise ArchiveError(f"{path}: decoded frames differ from those recorded at build time; the stream or the "
                           "decoder changed")
    return dec


def restore_group(folder: Path, manifest: dict, g: dict, ctx) -> dict[str, np.ndarray]:
    """scan id -> restored stored values (source dtype), every slice checked against its SHA-256 if lossless."""
    scans = {s["id"]: s for s in manifest["scans"]}
    frames = ValueMap.from_dict(g["mapping"]).inverse(decode_group(folder, g, ctx))
    out = {}
    for j, sid in enumerate(g["scans"]):
        s = scans[sid]
        order = [(g["scans"].index(x), k) for x, k in g["order"]]
        vol = (_scan_frames(frames, order, j, s["shape"][0]) - s.get("value_offset", 0)).astype(np.dtype(s["dtype"]))
        if g["lossless"]:
            bad = [k for k, sl in enumerate(vol) if slice_sha(sl, s["dtype"]) != s["slice_sha256"][k]]
            if bad:
                raise ArchiveError(f"{folder}: scan {sid} ({s['name']}): {len(bad)} slice(s) fail their SHA-256 "
                                   f"(first: slice {bad[0]}); the archive is damaged")
        out[sid] = vol
    return out


def check_headers(folder: Path, manifest: dict, sids=None) -> None:
    for s in manifest["scans"]:
        if sids is not None and s["id"] not in sids:
            continue
        for f in s["files"]:
            p = folder / f["header"]
            if not p.is_file():
                raise ArchiveError(f"{p}: missing header of {s['id']} file {f['name']}; the archive is incomplete")
            if sha256(p.read_bytes()) != f["header_sha256"]:
                raise ArchiveError(f"{p}: SHA-256 mismatch: header of {s['id']} file {f['name']} is damaged")


def verify_archive(folder: Path, ctx, console=None) -> dict:
    """Decode every group and check every checksum; raises ArchiveError on the first problem."""
    folder = Path(folder)
    m = read_manifest(folder)
    read_order(folder, m)
    check_headers(folder, m)
    t0 = time.perf_counter()
    n = 0
    for g in m["groups"]:
        n += len(restore_group(folder, m, g, ctx))
        if console:
            what = ("bit-exact, every slice SHA-256 checked" if g["lossless"]
                    else "lossy: decoded frames match the build")
            console.print(f"{g['id']}: {g['stream']} ok ({what})", highlight=False)
    return {"groups": len(m["groups"]), "scans": n, "seconds": time.perf_counter() - t0, "lossless": m["lossless"]}


# ---------------------------------------------------------------- extract

def select_scans(manifest: dict, patient: str | None) -> list[dict]:
    if not patient:
        return list(manifest["scans"])
    hit = [s for s in manifest["scans"]
           if patient in (s["id"], s["name"], s["patient_id"], s["patient_hash"], s["series_uid"])]
    if not hit:
        known = ", ".join(f"{s['id']} ({s['patient_id'] or s['name']})" for s in manifest["scans"])
        raise ArchiveError(f"no scan of patient {patient!r} in the archive; inside: {known}")
    return hit


def restored_dataset(header: Path, pixels: np.ndarray, scan: dict, group: dict):
    """A complete DICOM dataset: the original header plus uncompressed pixel data (Explicit VR Little Endian)."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = pydicom.dcmread(header)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    arr = np.ascontiguousarray(pixels.astype(np.dtype(scan["dtype"]).newbyteorder("<"), copy=False))
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OW" if arr.dtype.itemsize > 1 else "OB"
    ds.BitsAllocated, ds.BitsStored = scan["bits_allocated"], scan["bits_stored"]
    ds.PixelRepresentation = 1 if scan["signed"] else 0
    if not group["lossless"]:
        from pydicom.dataset import Dataset

        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        ds.SourceImageSequence = [ref]
        ds.SOPInstanceUID = generate_uid()  # a lossy copy is a new instance (PS3.3 C.7.6.1.1.5)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = f"{group['cr']:.2f}"[:16]
        ds.LossyImageCompressionMethod = LOSSY_METHOD.get(group["codec"]["codec"], "unknown")
        it = list(ds.get("ImageType", ["ORIGINAL", "PRIMARY"]))
        ds.ImageType = ["DERIVED", *it[1:]] if it else ["DERIVED", "SECONDARY"]
        ds.DerivationDescription = (f"medpipe intertwined archive, {group['label']}, lossy, CR "
                                    f"{group['cr']:.2f}")[:1024]
    return ds


def extract_archive(folder: Path, out: Path, ctx, patient: str | None = None, console=None) -> list[Path]:
    """Write each selected scan back as a DICOM series under ``out``; returns the series folders."""
    folder, out = Path(folder), Path(out)
    m = read_manifest(folder)
    read_order(folder, m)
    chosen = select_scans(m, patient)
    sids = {s["id"] for s in chosen}
    check_headers(folder, m, sids)
    targets = {s["id"]: out / f"{s['id']}_{s['name']}" for s in chosen}
    clash = [str(p) for p in targets.values() if p.exists()]
    if clash:
        raise ArchiveError(f"{clash[0]}: already exists; extract into an empty folder or remove it")
    groups = {g["id"]: g for g in m["groups"]}
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".medpipe-extract-{os.getpid()}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    report = []
    ok = False
    try:
        for gid in dict.fromkeys(s["group"] for s in chosen):
            g = groups[gid]
            restored = restore_group(folder, m, g, ctx)  # every slice's SHA-256 checked before writing
            for s in chosen:
                if s["group"] != gid:
                    continue
                dest = tmp / targets[s["id"]].name
                dest.mkdir()
                vol, start = restored[s["id"]], 0
                for f in s["files"]:
                    px = vol[start: start + f["frames"]] if f["multiframe"] else vol[start]
                    ds = restored_dataset(folder / f["header"], px, s, g)
                    ds.save_as(dest / f["name"], enforce_file_format=True)
                    start += f["frames"]
                q = s.get("quality") or {}
                report.append({"scan": s["id"], "name": s["name"], "patient_id": s["patient_id"],
                               "slices": s["shape"][0], "lossless": g["lossless"], **q})
        for sid, target in targets.items():
            os.replace(tmp / target.name, target)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok and created:
            shutil.rmtree(out, ignore_errors=True)  # it was ours and holds nothing else
    if console:
        _print_quality(report, console)
    return list(targets.values())


def _print_quality(report: list[dict], console) -> None:
    from rich.table import Table

    t = Table(title="restored scans", title_justify="left")
    for c in ("scan", "series", "patient", "slices", "exact", "PSNR dB", "SSIM", "max err"):
        t.add_column(c)
    for r in report:
        exact = r.get("exact")
        t.add_row(r["scan"], r["name"], r["patient_id"] or "-", str(r["slices"]),
                  "[green]bit-exact (SHA-256)[/]" if r["lossless"] else "[yellow]lossy[/]",
                  "inf" if exact else f"{r.get('psnr_db', float('nan')):.2f}",
                  "1" if exact else f"{r.get('ssim', float('nan')):.5f}", str(r.get("max_abs_err", "-")))
    console.print(t)
