"""Measuring one sampled series: every codec by the matrix's cell (the one round trip, checked bit-exact), then
the verified streams written as DICOM by the DICOM writer into a scratch folder, whose file sizes are the bytes a
PACS would store (every file's header + encapsulated pixel data). A codec with no DICOM transfer syntax
(lossless3d) is sized as its codestream plus the series' headers as stored (what medpipe's archive keeps besides
the streams). A series a codec cannot code losslessly stays as stored for that codec (its bytes count unchanged).

A series is one task: in this process, a worker process, or a Dask worker (then the files must be visible to the
worker at the same path).
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from ..archive.headers import read_header
from ..codecs import CodecContext
from ..dicom.writer import DicomSink
from ..errors import MedpipeError, OutputError, described
from ..matrix import CellSettings, measure_cell
from ..volumes import VolumeSource
from ..volumes.dicom import read_dicom
from ..volumes.series import Member, assemble

SETTINGS = CellSettings(repeat=1, ssim=False, fill_depth=False, codec_threads=1)
LOSSY_SETTINGS = CellSettings(repeat=1, ssim=True, fill_depth=False, codec_threads=1)  # lossy rows: SSIM too
QUALITY = ("max_abs_err", "psnr_db", "ssim")  # of a lossy setting; a series' worst volume counts


# The readers' damage heuristic (values far outside the neighbours' range) is for telling a decoder's garbage from
# an image; the survey measures what the archive stores, and every codec's round trip is checked bit-exact against
# what was decoded, so a legitimate odd slice (a phantom's insert) must not take its series out of the survey.
READ_OPTIONS = {"damage_check": False}


def series_volumes(paths: list[Path], name: str) -> list:
    """The files of one series as the volumes the readers make of them (a series may hold several)."""
    groups = assemble([Member(p, read_dicom(p, defer_size=4096)) for p in paths], 0.1)
    out = []
    for k, group in enumerate(groups):
        src = VolumeSource("dicom", group.paths, f"{name}-{k + 1}" if len(groups) > 1 else name, READ_OPTIONS,
                           label=group.label, source=paths[0].parent, events=group.events,
                           alternates=group.alternates)
        out.append(src.load([]))
    return out


def header_bytes(files: list[Path]) -> int:
    """Bytes of the files besides their Pixel Data value."""
    total = 0
    for f in files:
        _, pixel, _ = read_header(Path(f))
        total += Path(f).stat().st_size - len(pixel)
    return total


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def code_volume(vol, spec, ctx, scratch: Path, lossy: bool = False) -> dict:
    """One (volume, codec): bytes as DICOM (or codestream + headers), codestream bytes, times, verdict. ``lossy``:
    a setting of the --lossy ladder (its quality is kept; it need not be bit-exact)."""
    out = measure_cell(vol, spec, ctx, LOSSY_SETTINGS if lossy else SETTINGS)
    row = out.row
    result = {"status": row.status, "reason": row.reason or "", "codestream_bytes": row.compressed_bytes,
              "encode_s": (row.encode_ms or 0) / 1000, "decode_s": (row.decode_ms or 0) / 1000,
              "raw_bytes": vol.raw_bytes, "dicom_ts": None}
    if lossy:
        result.update({k: getattr(row, k) for k in QUALITY})
    if row.status != "ok":
        return result
    if not lossy and not (row.lossless and row.exact):
        return {**result, "status": "lossy", "reason": "not bit-exact: only lossless rows are surveyed"}
    if row.dicom_ts:
        DicomSink(scratch, ctx, verify=True)(vol, spec, out)  # records what it wrote in the row
        if row.dicom_dir and row.dicom_bytes:
            result.update(bytes=folder_bytes(Path(row.dicom_dir)), dicom_ts=row.dicom_ts, sized="DICOM files")
            shutil.rmtree(row.dicom_dir, ignore_errors=True)
            return result
        if row.status != "ok":
            return {**result, "status": "failed", "reason": row.reason or "DICOM not written"}
    result.update(bytes=header_bytes(vol.files) + row.compressed_bytes, sized="codestream + stored headers")
    return result


def add(total: dict | None, part: dict) -> dict:
    """Sum a series' volumes for one codec: ok only when every volume is."""
    if total is None:
        return dict(part)
    out = dict(total)
    for key in ("codestream_bytes", "encode_s", "decode_s", "raw_bytes", "bytes"):
        out[key] = (total.get(key) or 0) + (part.get(key) or 0)
    for key in QUALITY:  # max error: the largest; PSNR, SSIM: the lowest
        values = [v for v in (total.get(key), part.get(key)) if v is not None]
        if key in total:
            out[key] = (max if key == "max_abs_err" else min)(values) if values else None
    if part["status"] != "ok" and out["status"] == "ok":
        out.update(status=part["status"], reason=part["reason"])
    return out


def code_series(vols: list, spec, ctx, scratch: Path, lossy: bool = False) -> dict:
    total = None
    for vol in vols:
        total = add(total, code_volume(vol, spec, ctx, scratch, lossy))
    return total


def measure_series(task: dict) -> dict:
    """One sampled series -> its measurement record (never raises for a series' own problem)."""
    t0 = time.perf_counter()
    paths = [Path(p) for p in task["paths"]]
    record = {"series_uid": task["series_uid"], "stored_bytes": sum(p.stat().st_size for p in paths),
              "files": len(paths), "codecs": {}, "status": "ok", "reason": ""}
    ctx = CodecContext(task.get("ffmpeg"), threads=1)
    scratch = Path(tempfile.mkdtemp(prefix=".measure-", dir=task.get("scratch")))
    try:
        vols = series_volumes(paths, "series")
        record.update(raw_bytes=sum(v.raw_bytes for v in vols), modality=vols[0].modality,
                      body_part=vols[0].body_part)
        for spec in task["specs"]:
            record["codecs"][spec.label] = code_series(vols, spec, ctx, scratch)
        if task.get("lossy_specs"):  # --lossy: the ladder, kept apart from the lossless codecs
            record["lossy"] = {spec.label: code_series(vols, spec, ctx, scratch, lossy=True)
                               for spec in task["lossy_specs"]}
    except OutputError:
        raise  # disk full or read-only scratch: the survey stops with one line (measured series are kept)
    except MedpipeError as exc:
        record.update(status="unreadable", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - one odd series must not end the survey: it is recorded
        record.update(status="unreadable", reason=f"{described(exc)}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - t0, 3)
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"  # where it was measured (a process, a Dask worker)
    return record
