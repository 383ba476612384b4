"""Runs the codec matrix: the only place that times and sizes.

For each (volume, codec configuration) cell: map values to the codec's depth (recorded), time ``encode`` and
``decode`` separately with ``time.perf_counter`` around the codec call alone (best of ``repeat``), undo the
mapping, then measure quality. Mapping, metrics and I/O are timed apart (``map_ms``, ``metrics_ms``). A cell
that cannot run is ``skipped`` with the reason; one that breaks is ``failed``; the matrix goes on.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np

from .codecs import Codec
from .depth import plan_depth
from .errors import CodecSkip, CodecUnavailable, MedpipeError
from .ffmpeg import Ffmpeg
from .metrics import compare
from .preset import CodecSpec
from .volumes import Volume

TIMING_NOTE = ("encode_ms/decode_ms: wall time (time.perf_counter) of the codec call alone, best of `repeat`; "
               "in-process codecs: all slices in one loop; ffmpeg codecs: the whole subprocess including its "
               "start-up and the raw-frame pipe. Value mapping, metrics and file I/O are excluded and timed apart.")

COLUMNS = ["volume", "codec", "setting", "label", "lossless", "bits", "codec_bits", "mapping", "slices", "rows",
           "cols", "raw_bytes", "compressed_bytes", "cr", "bpv", "mse", "psnr_db", "ssim", "max_abs_err",
           "encode_ms", "decode_ms", "map_ms", "metrics_ms", "exact", "status", "reason", "dicom_ts", "dicom_dir",
           "version", "modality", "body_part", "volume_hash", "cell_id"]


@dataclass
class Context:
    """What codecs may need from the run: the ffmpeg binary (resolved lazily, on first video codec)."""

    ffmpeg_path: str | None = None
    _ffmpeg: Ffmpeg | None = field(default=None, repr=False)
    repeat: int = 1
    ssim: bool = True
    threads: int = 0  # threads per ffmpeg call (0: ffmpeg's choice); the matrix runner fixes it, see parallel.py

    @property
    def ffmpeg(self) -> Ffmpeg:
        if self._ffmpeg is None:
            self._ffmpeg = Ffmpeg.locate(self.ffmpeg_path)
            self._ffmpeg.threads = self.threads
        return self._ffmpeg


def cell_id(volume: Volume, spec: CodecSpec, version: str) -> str:
    """Stable identity of a cell: volume content + codec + canonical parameters + library version."""
    key = json.dumps([volume.content_hash, spec.canonical(), version], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def by_slice(fn, volume: np.ndarray, dtype) -> np.ndarray:
    """``fn`` applied slice by slice into one new array: no whole-volume int32 temporaries (bounded memory)."""
    out = np.empty(volume.shape, dtype)
    for i, sl in enumerate(volume):
        out[i] = fn(sl)
    return out


def dicom_syntax(codec: Codec, volume: Volume, dmap) -> str | None:
    """The DICOM transfer syntax this configuration fits on this volume (whether or not DICOM is written)."""
    if not codec.per_slice:
        from .dicom_out import NotWritable, video_syntax

        try:
            return video_syntax(codec, volume)
        except NotWritable:
            return None
    # a lossless codec fed reduced-depth data would claim a lossless image: no syntax then
    return codec.dicom_ts if dmap.exact or not codec.lossless else None


def timed(fn, repeat: int):
    """(result of the last call, fastest wall time in ms)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return result, best * 1000.0


def run_cell(volume: Volume, spec: CodecSpec, ctx: Context, sink=None) -> dict:
    """One cell of the matrix -> one results row (never raises for a codec's own failure).

    ``sink(volume, spec, depth_map, encoded, row)``, if given, receives each verified encoding (e.g. to write
    it as DICOM) without encoding twice.
    """
    codec: Codec = spec.codec
    n, h, w = volume.shape
    row = {c: None for c in COLUMNS}
    row.update(volume=volume.name, codec=codec.name, setting=codec.setting(), label=spec.label, slices=n, rows=h,
               cols=w, raw_bytes=volume.raw_bytes, bits=volume.span_bits, modality=volume.modality,
               body_part=volume.body_part, volume_hash=volume.content_hash[:16], status="ok", reason="")
    try:
        codec.check(ctx)
        row["version"] = codec.version(ctx)
        row["cell_id"] = cell_id(volume, spec, row["version"])
        t0 = time.perf_counter()
        dmap = plan_depth(volume.value_range, volume.pixels.dtype, codec.depth(), spec.window)
        lossless = codec.lossless and dmap.exact
        row.update(lossless=lossless, codec_bits=dmap.bits_out, mapping=dmap.describe())
        row["dicom_ts"] = dicom_syntax(codec, volume, dmap)
        if codec.lossless and not dmap.exact and not codec.reduces_depth_ok:
            raise CodecSkip(f"values span {dmap.bits_in} bits, {codec.name} codes at most {dmap.bits_out}: "
                            "it would not be lossless (narrow the data or use ffv1/jpegls)")
        coded = by_slice(dmap.forward, volume.pixels, dmap.coded_dtype)
        map_ms = (time.perf_counter() - t0) * 1000
        enc, row["encode_ms"] = timed(lambda: codec.encode(coded, ctx), ctx.repeat)
        dec, row["decode_ms"] = timed(lambda: codec.decode(enc, ctx), ctx.repeat)
        t0 = time.perf_counter()
        if dec.shape != coded.shape:
            raise MedpipeError(f"decoder returned shape {dec.shape}, expected {coded.shape}")
        codec_err = 0 if not codec.lossless else sum(int(np.count_nonzero(d != c)) for d, c in zip(dec, coded))
        del coded  # memory: a cell holds at most the volume and two coded-size arrays at a time
        restored = by_slice(dmap.inverse, dec, volume.pixels.dtype)
        del dec
        row["map_ms"] = map_ms + (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        q = compare(volume.pixels, restored, volume.span_bits, with_ssim=ctx.ssim)
        row["metrics_ms"] = (time.perf_counter() - t0) * 1000
        side = 0 if dmap.describe() == "identity" else 8  # offset + shift, two int32 the decoder needs
        size = enc.nbytes + side
        row.update(q.as_dict(), compressed_bytes=size, cr=volume.raw_bytes / size,
                   bpv=size * 8 / volume.pixels.size)
        if codec_err:
            row.update(status="failed", reason=f"LOSSLESS CODEC NOT EXACT: {codec_err} samples differ from its "
                                               "input")
        elif lossless and not q.exact:
            row.update(status="failed", reason=f"LOSSLESS NOT EXACT: max error {q.max_abs_err}")
        elif codec.error_bound and dmap.exact and q.max_abs_err > codec.error_bound:
            row.update(status="failed", reason=f"error bound {codec.error_bound} exceeded: max error "
                                               f"{q.max_abs_err}")
        elif not dmap.exact:
            row["reason"] = f"precision lost by mapping: {dmap.describe()}"
        if sink is not None and row["status"] == "ok":
            sink(volume, spec, dmap, enc, row)
    except (CodecUnavailable, CodecSkip) as exc:
        row.update(status="skipped", reason=str(exc))
    except MedpipeError as exc:
        row.update(status="failed", reason=str(exc))
    except Exception as exc:  # a codec library's own error: record the cell, go on with the matrix
        row.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
    return row
