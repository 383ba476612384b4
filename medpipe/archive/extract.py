"""Extract: scans back as DICOM series, only under ``--out``, never over anything, never half-written.

Every check of ``verify`` runs on what is restored before a byte is written; names were validated when the index
was opened. Files are written into ``--out/.extract.<pid>.part`` and each series folder is renamed into place when
all are complete; a killed extract leaves only that ``.part`` folder, which the next extract removes.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from ..codecs import codec_class
from ..errors import CodecSkip, DamagedInput
from ..files import clean_stale, inside, make_dirs, os_error, part_name
from ..jpeg_decoder import described_decoder
from ..syntaxes import JPEGXLLossless
from .candidates import decode_codestream, dicom_codestream
from .dicomfile import OUTPUT_SYNTAXES, encapsulated_file, lossy_file
from .index import ArchiveError, select_scans, series_folder, sha256
from .verify import jpeg_claim, jpeg_streams, load_headers, of_scan, open_checked, restore_group, restored_file, \
    stream_chunks, stored_frames


def check_syntax(syntax: str, index: dict, chosen: list[dict]) -> str | None:
    """The output transfer syntax UID (None: native); refuses what cannot be written before anything is."""
    if syntax not in OUTPUT_SYNTAXES:
        raise ArchiveError(f"--syntax {syntax!r}: choose one of {', '.join(OUTPUT_SYNTAXES)}")
    uid = OUTPUT_SYNTAXES[syntax]
    groups = {g["id"]: g for g in index["groups"]}
    if uid and any(not groups[s["group"]]["lossless"] for s in chosen):
        raise ArchiveError(f"--syntax {syntax}: a lossy archive restores as native (uncompressed) DICOM only")
    colour = [s["name"] for s in chosen if s.get("colour")]
    if uid and colour:
        raise ArchiveError(f"--syntax {syntax}: {colour[0]} is colour; it restores as its original files only "
                           "(--syntax native)")
    return uid


def refuse_inside(out: Path, folder: Path) -> None:
    """``--out`` in the archive (directly, through ``..`` or a symbolic link) would add files that make the archive
    fail ``verify``: refused before anything is read or written."""
    real_out, real_arc = (Path(os.path.normcase(p.resolve())) for p in (out, folder))
    if real_out == real_arc or real_arc in real_out.parents:
        raise ArchiveError(f"--out {out}: inside the archive {folder} (resolves to {real_out}); extract never "
                           "writes into an archive: choose a folder outside it")


def _codestreams(uid: str, frames: np.ndarray, slices, scan: dict, reuse: dict | None, effort: int) -> list[bytes]:
    """One codestream per frame; the archive's own JPEG XL DICOM codestreams when it holds them."""
    out = []
    for frame, k in zip(frames, slices):
        data = reuse[int(k)] if reuse is not None else dicom_codestream(uid, frame, scan,
                                                                         effort if uid == JPEGXLLossless else None)
        if not np.array_equal(decode_codestream(uid, data, scan), frame):
            raise ArchiveError(f"{scan['name']} slice {k}: the {uid} codestream does not decode to the stored "
                               "values; nothing was written")
        out.append(data)
    return out


def _reusable(folder: Path, g: dict, sid: str, uid: str | None) -> dict | None:
    """slice -> the archive's PS3.5 JPEG XL codestream of it, when the output is JPEG XL and the group has them."""
    if uid != JPEGXLLossless or g["layout"] != "dicom":
        return None
    chunks = stream_chunks(folder, g)[0]
    return {k: chunks[p] for p, (s, k) in enumerate(g["order"]) if s == sid}


def extract_archive(folder: Path, out: Path, ctx, patient: str | None = None, console=None,
                    syntax: str = "native", key: Path | None = None, require_signature: bool = False) -> list[Path]:
    """Write each selected scan as a DICOM series under ``out``; returns the series folders."""
    folder, out = Path(folder), Path(out)
    refuse_inside(out, folder)
    say = console.print if console else None
    index = open_checked(folder, key, require_signature, say)  # seal, names, every file, both views: first
    chosen = select_scans(index, patient)
    uid = check_syntax(syntax, index, chosen)
    targets = {s["id"]: inside(out, series_folder(s)) for s in chosen}
    clash = [str(p) for p in targets.values() if p.exists()]
    if clash:
        raise ArchiveError(f"{clash[0]}: already exists; extract never overwrites: choose an empty --out or remove it")
    groups = {g["id"]: g for g in index["groups"]}
    created = not out.exists()
    make_dirs(out)
    clean_stale(out)  # what a killed extract left behind
    tmp = part_name(out / "extract")
    report, renamed, ok = [], [], False
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for gid in dict.fromkeys(s["group"] for s in chosen):
            g = groups[gid]
            jpegs = jpeg_streams(folder, g) if uid is None else None  # decoded once: checked, then written
            restored = restore_group(folder, index, g, ctx, say, jpegs)  # every slice's SHA-256 checked first
            for s in (s for s in chosen if s["group"] == gid):
                dest = tmp / targets[s["id"]].name
                dest.mkdir()
                valued = _write_series(folder, dest, s, g, restored[s["id"]], uid, index["settings"]["effort"],
                                       of_scan(jpegs, s["id"]))
                if valued and g["codec"].get("codec") == "jpegxl-jpeg" and say:
                    say(f"note: {s['id']} ({s['name']}): {valued} file(s) written from the values this machine's "
                        f"JPEG decoder gives ({described_decoder()}), not as the original JPEG; another JPEG "
                        "decoder may round differently (ISO 10918-1)", highlight=False, soft_wrap=True)
                q = s.get("quality") or {}
                report.append({"scan": s["id"], "name": s["name"], "patient_id": s["patient_id"],
                               "slices": s["shape"][0], "lossless": g["lossless"], "jpeg": jpeg_claim(g), **q})
        for sid, target in targets.items():
            if target.exists():
                raise ArchiveError(f"{target}: appeared while extracting; extract never overwrites")
            os.rename(tmp / target.name, target)
            renamed.append(target)
        ok = True
    except OSError as exc:
        raise os_error(exc, out) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            for target in renamed:  # only what this run put there: nothing existed there before
                shutil.rmtree(target, ignore_errors=True)
            if created:
                shutil.rmtree(out, ignore_errors=True)  # it was ours and holds nothing else
    if console:
        _print_quality(report, console, syntax)
    return list(targets.values())


def _write_series(folder: Path, dest: Path, s: dict, g: dict, vol: np.ndarray, uid: str | None,
                  effort: int, jpeg: dict | None) -> int:
    """Write the scan's files; returns how many of a lossless scan were made from its values (not the original
    file rebuilt)."""
    valued = 0
    records = load_headers(folder, s)  # each header checked by SHA-256 and against the index
    series_uid = None if g["lossless"] else generate_uid()  # a lossy copy is a new series
    reuse = _reusable(folder, g, s["id"], uid)
    for record, (f, frames, slices) in zip(records, stored_frames(s, vol)):
        if not g["lossless"]:
            method = codec_class(g["codec"]["codec"]).lossy_method if g["codec"].get("codec") else None
            data = lossy_file(record, frames, s, method, g["cr"], series_uid, g["label"])
        elif uid is None:
            data = restored_file(folder, s, record, f, frames, slices, jpeg)
            valued += sha256(data) != f["source_sha256"]
        else:
            valued += 1
            try:
                data = encapsulated_file(record, uid, _codestreams(uid, frames, slices, s, reuse, effort))
            except (CodecSkip, DamagedInput) as exc:
                raise ArchiveError(f"{s['name']}: cannot be written as {uid}: {exc}") from None
        with open(inside(dest, f["name"]), "xb") as fh:  # 'x': never over an existing file
            fh.write(data)
    return valued


def _print_quality(report: list[dict], console, syntax: str) -> None:
    from rich.table import Table

    t = Table(title=f"restored scans ({syntax})", title_justify="left")
    for c in ("scan", "series", "patient", "slices", "exact", "PSNR dB", "max err"):
        t.add_column(c)
    for r in report:
        exact = r.get("exact")
        t.add_row(r["scan"], r["name"], r["patient_id"] or "-", str(r["slices"]),
                  "[green]JPEG frames bit-exact (SHA-256 of every frame and file)[/]" if r.get("jpeg") else
                  "[green]bit-exact (SHA-256 of every slice and file)[/]" if r["lossless"] else "[yellow]lossy[/]",
                  "inf" if exact else f"{r.get('psnr_db', float('nan')):.2f}", str(r.get("max_abs_err", "-")))
    console.print(t)

