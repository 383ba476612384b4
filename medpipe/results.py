"""Results files: the schema other tools (and the report) read, and the one CSV writer.

``results.csv``: one row per (volume, codec configuration), columns :data:`COLUMNS`.
``results.json``: ``{"provenance": {...}, "volumes": [...], "configurations": [...], "rows": [...]}`` with the
same rows; ``configurations`` records each label's codec, parameters, quality knobs and rate-distortion curve, so a
report never needs the codec classes. Everything is written to a temporary name and renamed when complete.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import sys
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from importlib import metadata
from pathlib import Path

from .files import atomic_write_text

TIMING_NOTE = ("encode_ms/decode_ms: wall time (time.perf_counter) of the codec call alone, best of `repeat`; "
               "in-process codecs: all slices in one loop; ffmpeg codecs: the whole subprocess including its "
               "start-up and the raw-frame pipe. Value mapping, metrics and file I/O are excluded and timed apart. "
               "A codec's one-time preparation (lossless3d's numba compile or cache load) runs before the timed "
               "calls: prepare_ms, non-zero on the first cell of each worker process; codec_prepare_ms gives the "
               "largest per codec.")

@dataclass(kw_only=True)
class Row:
    """One results row, a (volume, codec configuration) pair: the schema of results.csv and results.json. Its
    fields, in order, are :data:`COLUMNS`; a value the run did not reach stays None (an empty CSV cell)."""

    # what was coded
    volume: str
    codec: str
    setting: str
    label: str
    lossless: bool | None = None  # configured lossless end to end (codec and value mapping)
    bits: int  # B: bits the non-padding stored values span; the span figures' peak is 2^B - 1
    peak: int | None = None
    codec_bits: int | None = None  # depth the codec coded
    mapping: str | None = None
    slices: int
    rows: int
    cols: int
    # what it cost and what it lost
    raw_bytes: int
    compressed_bytes: int | None = None
    cr: float | None = None
    bpv: float | None = None
    mse: float | None = None
    psnr_db: float | None = None
    ssim: float | None = None
    max_abs_err: int | None = None
    padding_voxels: int | None = None
    window: str | None = None
    psnr_window_db: float | None = None
    ssim_window: float | None = None
    encode_ms: float | None = None
    decode_ms: float | None = None
    map_ms: float | None = None
    prepare_ms: float | None = None  # the codec's one-time preparation, before the timed calls
    metrics_ms: float | None = None
    exact: bool | None = None  # verified bit-exact by this run
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
    # about the source
    color: str | None = None
    lossy_source: str | None = None
    # DICOM output (when the run writes it)
    dicom_ts: str | None = None
    dicom_dir: str | None = None
    dicom_bytes: int | None = None
    dicom_cr: float | None = None
    # identity
    version: str | None = None
    modality: str | None = None
    body_part: str | None = None
    volume_hash: str | None = None
    cell_id: str | None = None
    source_transcoded: str | None = None  # a PACS sent other than it stores: stored -> sent syntax

    def update(self, **values) -> "Row":
        """Set columns by name; a name that is not a column is an error (a typo must not make a new column)."""
        unknown = set(values) - _COLUMN_SET
        if unknown:
            raise KeyError(f"not a results column: {', '.join(sorted(unknown))}")
        for k, v in values.items():
            setattr(self, k, v)
        return self

    def as_dict(self) -> dict:
        """The row as results.csv/.json and the result store hold it: every column, in order."""
        return {k: getattr(self, k) for k in COLUMNS}

    @classmethod
    def from_dict(cls, row: dict) -> "Row":
        """A row read back (results.json, the result store): the schema's columns, other keys left out."""
        return cls(**{k: row.get(k) for k in COLUMNS if k in row or k in _REQUIRED})


COLUMNS = [f.name for f in fields(Row)]
_COLUMN_SET = frozenset(COLUMNS)
_REQUIRED = frozenset(f.name for f in fields(Row) if f.default is MISSING)
# each column's type, from Row's annotations ("float | None" -> float): what a row read back must hold
COLUMN_TYPES = {f.name: next(t for t in (bool, int, float, str) if t.__name__ in str(f.type).split(" | "))
                for f in fields(Row)}


def row_problem(row, text_from_csv: bool = False) -> str | None:
    """What is wrong with a row read back (results.json or .csv), or None: a required column missing or empty, a
    value of the wrong type. A results file is input to the report: anyone can edit it. ``text_from_csv``: a CSV
    cell of digits parses as a number although its column is text (a volume named 001), so text takes any value."""
    if not isinstance(row, dict):
        return f"is {type(row).__name__} {repr(row)[:40]}, not an object of columns"
    for key in COLUMNS:
        v = row.get(key)
        if v is None:
            if key in _REQUIRED:
                return f"column {key} is missing or empty"
            continue
        want = COLUMN_TYPES[key]
        if want is str:
            ok = isinstance(v, str) or (text_from_csv and isinstance(v, (int, float)))
        elif want is float:  # written as "inf" (strict JSON has no infinity)
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool)) or v == "inf"
        elif want is int:  # an integral float (1e6) is the same count
            ok = (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
        else:
            ok = isinstance(v, bool)
        if not ok:
            return f"column {key} is {type(v).__name__} {repr(v)[:40]}, expected {want.__name__}"
    return None


LIBRARIES = ["medpipe", "numpy", "pydicom", "imagecodecs", "imageio-ffmpeg", "opencv-python-headless",
             "opencv-python", "pillow", "pillow-jpls", "pyjpegls", "pylibjpeg", "pylibjpeg-libjpeg",
             "pylibjpeg-openjpeg", "glymur", "rich", "pyyaml", "matplotlib", "scipy", "jinja2", "dask", "distributed"]


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


METRICS_NOTE = ("psnr_db/ssim: peak 2^bits-1, bits = span of the stored values that are not padding "
                "(PixelPaddingValue/PixelPaddingRangeLimit); padding voxels (padding_voxels) are left out of MSE, "
                "PSNR and SSIM but checked for exactness and max error. psnr_window_db/ssim_window: both images "
                "clipped to a fixed window, peak = its width: CT HU -1024..3071 (peak 4095), other modalities the "
                "stored depth the header declares (0..2^BitsStored-1). SSIM: Gaussian 11x11 sigma 1.5, K1 0.01, "
                "K2 0.03, 5-px border excluded, mean over slices.")


def machine() -> dict:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "libraries": library_versions()}


def _cell(v):
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        if math.isnan(v):
            return ""
        return f"{v:.6g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else v


def _json_safe(v):
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return None if math.isnan(v) else "inf"
    return v


def _finite(v):
    """``v`` with every NaN / infinity inside written as null: strict JSON has neither, and a bare NaN (a DICOM
    RescaleSlope "NaN" reaches the volume facts) makes results.json unreadable to strict parsers. Rows keep their
    own convention (_json_safe: infinity is "inf", a lossless PSNR)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _as_dict(row: "Row | dict") -> dict:
    return row.as_dict() if isinstance(row, Row) else row


def write_csv(path: Path, rows: "list[Row | dict]", columns: list[str]) -> Path:
    """The one CSV writer: ``columns`` in order, numbers and flags written so :func:`read_rows` reads them back."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in map(_as_dict, rows):
        writer.writerow({k: _cell(r.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def write_results(folder: Path, rows: "list[Row | dict]", volumes: list[dict], prov: dict,
                  configurations: list[dict] | None = None) -> tuple[Path, Path]:
    csv_path, json_path = folder / "results.csv", folder / "results.json"
    write_csv(csv_path, rows, COLUMNS)
    doc = {"provenance": _finite(prov), "volumes": _finite(volumes), "configurations": _finite(configurations or []),
           "rows": [{k: _json_safe(r.get(k)) for k in COLUMNS} for r in map(_as_dict, rows)]}
    atomic_write_text(json_path, json.dumps(doc, indent=1, default=str, allow_nan=False))
    return csv_path, json_path


def read_rows(path: Path) -> list[dict]:
    """Rows of a results.csv with numbers parsed back (for reports and tests)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            if v in ("true", "false"):
                r[k] = v == "true"
            elif v == "inf":
                r[k] = math.inf
            else:
                try:
                    r[k] = int(v) if v.lstrip("-").isdigit() else float(v) if v else None
                except ValueError:
                    pass
    return rows


def run_folder(output: Path, name: str, started: datetime) -> Path:
    stamp = started.astimezone().strftime("%Y%m%d-%H%M%S")
    folder = output / f"{name}-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = output / f"{name}-{stamp}-{n}"
    return folder


# ---------------------------------------------------------------- slices kept for heatmaps

SLICES_FILE, SLICES_INDEX = "slices.npz", "slices.json"


def write_slices(folder: Path, volumes: dict[str, dict], entries: list[tuple[str, str | None, int, "object"]]
                 ) -> None:
    """Slices the report's heatmaps draw, saved by the run: ``entries`` are (volume, label or None for the
    original, slice index, 2-D array); ``volumes`` holds what a heatmap says about each volume (shape, modality,
    rescale, value minimum, span bits). The report reads them back without coding anything again."""
    import numpy as np

    index, arrays = [], {}
    for i, (vol, label, k, arr) in enumerate(entries):
        arrays[f"a{i}"] = np.asarray(arr)
        index.append({"volume": vol, "label": label, "slice": int(k), "array": f"a{i}"})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    from .files import atomic_write_bytes

    atomic_write_bytes(folder / SLICES_FILE, buf.getvalue())
    atomic_write_text(folder / SLICES_INDEX, json.dumps({"volumes": _finite(volumes), "slices": index}, indent=1,
                                                        allow_nan=False))


def read_slices(folder: Path) -> tuple[dict, dict]:
    """(volume facts, {(volume, label or None, slice): array}) or ({}, {}) when the run kept none."""
    import numpy as np

    index_path, data_path = folder / SLICES_INDEX, folder / SLICES_FILE
    if not index_path.is_file() or not data_path.is_file():
        return {}, {}
    index = json.loads(index_path.read_text(encoding="utf-8"))
    with np.load(data_path) as data:
        arrays = {(e["volume"], e["label"], e["slice"]): data[e["array"]] for e in index["slices"]}
    return index.get("volumes") or {}, arrays
