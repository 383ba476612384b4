"""One cell of the matrix: a (volume, codec configuration) pair -> one results row.

The cell plans the value mapping the codec needs, runs :func:`medpipe.roundtrip.round_trip`, measures quality and
decides the verdict. A cell that cannot run is ``skipped`` with the reason; one that breaks is ``failed``; neither
stops the matrix. Its identity (:func:`cell_id`: volume content + codec + canonical parameters + library version)
keys the result store behind ``--resume``.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np

from ..codecs import CodecContext, CodecSpec
from ..depth import plan_depth
from ..errors import CodecSkip, CodecUnavailable, MedpipeError, described
from ..metrics import compare, fixed_window
from ..results import Row
from ..roundtrip import round_trip


@dataclass(frozen=True)
class CellSettings:
    """What, besides the cell's identity, changes a row (a stored row made with other settings is not reused)."""

    repeat: int = 1
    ssim: bool = True
    fill_depth: bool = False
    codec_threads: int = 1

    def as_dict(self) -> dict:
        return {"ssim": self.ssim, "repeat": self.repeat, "codec_threads": self.codec_threads,
                "fill_depth": self.fill_depth}


def cell_id(content_hash: str, spec: CodecSpec, version: str) -> str:
    """Stable identity of a cell: volume content + codec + canonical parameters + library version."""
    key = json.dumps([content_hash, spec.canonical(), version], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def new_row(volume, spec: CodecSpec) -> Row:
    """The one place a results row starts: what the volume and the configuration say before anything runs."""
    n, h, w = volume.shape
    return Row(volume=volume.name, codec=spec.codec.name, setting=spec.codec.setting(), label=spec.label, slices=n,
               rows=h, cols=w, raw_bytes=volume.raw_bytes, bits=volume.signal_bits, modality=volume.modality,
               body_part=volume.body_part, volume_hash=volume.content_hash[:16], color=volume.color,
               lossy_source=volume.lossy_source, source_transcoded=volume.source_transcoded)


@dataclass
class CellResult:
    """What one cell gives back, from the worker to the client as it is (it pickles for process pools and Dask):
    its row; the verified streams and the value mapping (so the client can write them as DICOM without encoding
    twice); the restored slices the report's heatmaps draw ({index: 2-D array}). At the client the matrix hands
    it to each sink (:func:`medpipe.matrix.execute`); each takes the part it consumes."""

    row: Row
    encoded: object = None
    mapping: object = None
    kept: dict = field(default_factory=dict)


def dicom_syntax(spec: CodecSpec, shape, mapping) -> tuple[str | None, str]:
    """The DICOM transfer syntax this configuration fits on frames of ``shape``, from the codec's table; a
    lossless codec fed reduced-depth data would claim a lossless image, so it has none."""
    codec = spec.codec
    if codec.lossless and not mapping.exact:
        return None, "no DICOM transfer syntax: the value mapping loses precision before a lossless codec"
    return codec.dicom_syntax(shape)


def measure_cell(volume, spec: CodecSpec, ctx: CodecContext, settings: CellSettings, keep: tuple[int, ...] = ()
                 ) -> CellResult:
    """One cell: plan the mapping, run the round trip, measure, decide the verdict. ``keep``: slice indices whose
    restored values the report's heatmaps need."""
    codec = spec.codec
    row = new_row(volume, spec)
    out = CellResult(row)
    try:
        codec.check(ctx)
        codec.take_source(volume)  # a codec of the source's own bitstreams takes them, or says why there are none
        row.version = codec.version(ctx)
        row.cell_id = cell_id(volume.content_hash, spec, row.version)
        fill = settings.fill_depth and codec.fills_depth and not codec.lossless
        mapping = plan_depth(volume.value_range, volume.pixels.dtype, codec.depth(), spec.window, fill=fill)
        lossless = codec.lossless and mapping.exact
        row.update(lossless=lossless, mapping=mapping.describe(),
                   codec_bits=mapping.bits_out if codec.fixed_depth else mapping.coded_bits)
        row.dicom_ts = dicom_syntax(spec, volume.shape, mapping)[0]
        if codec.lossless and not mapping.exact and not codec.reduces_depth_ok:
            raise CodecSkip(f"values span {mapping.bits_in} bits, {codec.name} codes at most {mapping.bits_out}: "
                            "it would not be lossless (narrow the data or use ffv1/jpegls)")
        rt = round_trip(volume.pixels, codec, mapping, ctx, repeat=settings.repeat)
        row.update(encode_ms=rt.encode_ms, decode_ms=rt.decode_ms, map_ms=rt.map_ms, prepare_ms=rt.prepare_ms)
        if rt.encoded.side.get("note"):  # what a codec reports beside the figures (jpegxl-jpeg: the JPEG's CR)
            row.reason = rt.encoded.side["note"]
        t0 = time.perf_counter()
        window = fixed_window(volume.modality, volume.rescale_slope, volume.rescale_intercept, volume.bits_stored,
                              volume.signed)
        q = compare(volume.pixels, rt.restored, volume.signal_bits, with_ssim=settings.ssim, padding=volume.padding,
                    window=window, base=volume.signal_range[0])
        row.metrics_ms = (time.perf_counter() - t0) * 1000
        row.update(**q.as_dict(), compressed_bytes=rt.size, cr=volume.raw_bytes / rt.size,
                   bpv=rt.size * 8 / volume.pixels.size)
        if rt.codec_mismatches:
            row.update(status="failed", reason=f"LOSSLESS CODEC NOT EXACT: {rt.codec_mismatches} samples differ "
                                               "from its input")
        elif lossless and not q.exact:
            row.update(status="failed", reason=f"LOSSLESS NOT EXACT: max error {q.max_abs_err}")
        elif codec.error_bound and mapping.exact and q.max_abs_err > codec.error_bound:
            row.update(status="failed", reason=f"error bound {codec.error_bound} exceeded: max error "
                                               f"{q.max_abs_err}")
        elif not mapping.exact:
            row.reason = f"precision lost by mapping: {mapping.describe()}"
        if row.status == "ok":
            out.encoded, out.mapping = rt.encoded, mapping
            out.kept = {int(k): np.ascontiguousarray(rt.restored[k]) for k in keep if 0 <= k < volume.shape[0]}
    except (CodecUnavailable, CodecSkip) as exc:
        row.update(status="skipped", reason=str(exc))
    except MedpipeError as exc:
        row.update(status="failed", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - a codec library's own error: record the cell, go on with the matrix
        row.update(status="failed", reason=f"{described(exc)}")
    return out
