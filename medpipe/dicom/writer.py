"""Write each verified encoding as standard DICOM: encapsulated pixel data, the right transfer syntax, every other
attribute of the source kept.

The codestreams are the very bytes the benchmark timed and verified (one per slice), encapsulated with pydicom; no
second encoding. Only optional wrapper segments (JFIF APP0, the JPEG-LS SPIFF header) are dropped: DICOM takes the
JPEG interchange format, the image data are untouched. Header rules live in :mod:`.header`, syntax checks in
:mod:`.syntaxes`; DICOM video goes through the run's one ffmpeg runner (``--ffmpeg``, commands in provenance).
"""
from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import MedpipeError, OutputError
from ..files import os_error, safe_component, temp_dir
from ..options import Option
from .header import (DROP_TAGS, MF_TRUE_COLOR_SC, PAIRED_BODY_PARTS, TYPE2_FILL, fit_stored_values,
                     mark_grey_conversion, mark_lossy)
from .syntaxes import (UID_H264_HP41, UID_HEVC_MAIN10, VIDEO_TS, NotWritable, check_video_stream,
                       codestream_precision, pydicom_knows, strip_jpeg_wrappers)

DICOM_OPTIONS: dict[str, Option] = {
    "folder": Option(str, "dicom", "sub-folder of the run folder"),
    "offset_table": Option(str, "basic", "offset table of multi-frame objects", ("basic", "extended")),
    "verify": Option(bool, True, "read the first written file back with pydicom and compare"),
}


def choose_syntax(volume, spec, row: dict) -> str:
    """The transfer syntax to write, from the row (the codec's table, filled by the cell), or NotWritable."""
    if not volume.headers:
        raise NotWritable("no DICOM written: the source is not DICOM (PNG input) and has no header to keep")
    if any(n.startswith("colour") and "per component" in n for n in volume.notes):
        raise NotWritable("no DICOM written: colour coded per component (color: components) has no single "
                          "DICOM form; use color: gray")
    uid = row.get("dicom_ts")
    if not uid:
        raise NotWritable(spec.codec.dicom_syntax(volume.shape)[1] or
                          "no DICOM written: the value mapping loses precision before a lossless codec")
    if not pydicom_knows(uid):
        import pydicom

        raise NotWritable(f"no DICOM written: transfer syntax {uid} is not known to the installed pydicom "
                          f"{pydicom.__version__} (JPEG XL needs a newer release)")
    return uid


class DicomSink:
    """``sink(volume, spec, mapping, encoded, row)``, called by the matrix for each verified cell: writes one DICOM
    series per cell under ``<run>/<folder>/<volume>/<label>/`` and fills ``row["dicom_ts"]`` / ``row["dicom_dir"]``
    (or the reason). ``ctx`` is the run's codec context: DICOM video uses its ffmpeg runner.
    """

    def __init__(self, root: Path, ctx, offset_table: str = "basic", verify: bool = True, console=None):
        self.root = Path(root)
        self.ctx = ctx
        self.offset_table = offset_table
        self.verify = verify
        self.console = console

    def __getstate__(self):
        state = dict(self.__dict__)
        state["console"] = None
        return state

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def __call__(self, volume, spec, dmap, enc, row: dict) -> None:
        try:
            uid = choose_syntax(volume, spec, row)
            out = self.write(volume, spec, dmap, enc, uid, row)
        except NotWritable as exc:
            row["dicom_ts"], row["dicom_dir"] = None, None
            row["reason"] = _join(row.get("reason"), str(exc))
            return
        except OutputError:
            raise  # disk full, read-only: the run stops with one line (finished cells stay in the store)
        except OSError as exc:
            raise os_error(exc, self.target(volume, spec.label)) from None
        except Exception as exc:  # noqa: BLE001 - the codec's row stays valid; say what went wrong with DICOM
            row["dicom_ts"], row["dicom_dir"] = None, None
            row["reason"] = _join(row.get("reason"), f"DICOM not written: {type(exc).__name__}: {exc}")
            row["status"] = "failed"
            self.say(f"[red]DICOM output failed[/] for {volume.name} / {spec.label}: {exc}")
            return
        row["dicom_ts"], row["dicom_dir"] = uid, str(out)

    # -- writing
    def target(self, volume, label: str) -> Path:
        return self.root / safe_component(volume.name) / safe_component(label)

    def write(self, volume, spec, dmap, enc, uid: str, row: dict) -> Path:
        final = self.target(volume, spec.label)
        tmp = final.with_name(final.name + ".part")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            if uid in VIDEO_TS:
                written = self.write_video(volume, spec, dmap, enc, uid, tmp)
            else:
                written = self.write_frames(volume, spec, dmap, enc, uid, row, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written series behind
            raise
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        if self.verify:
            self.check(final / written[0].name, volume, dmap, spec.codec, uid)
        return final

    def write_frames(self, volume, spec, dmap, enc, uid, row, tmp: Path) -> list[Path]:
        from pydicom.uid import generate_uid

        n = volume.shape[0]
        headers = volume.headers
        if len(headers) == n:
            groups = [[i] for i in range(n)]
        elif len(headers) == 1 and int(headers[0].get("NumberOfFrames", 1) or 1) == n:
            order = getattr(volume, "frame_order", None)
            # frames go back in their stored order, so per-frame functional groups still describe them
            groups = [sorted(range(n), key=lambda i: order[i]) if order else list(range(n))]
        else:
            raise NotWritable(f"no DICOM written: {len(headers)} source header(s) for {n} slices")
        if len(enc.chunks) != n:
            raise NotWritable(f"no DICOM written: {len(enc.chunks)} codestreams for {n} slices")
        lossy = not (spec.codec.lossless and dmap.exact)
        grey = any(note.startswith("colour") for note in volume.notes)
        streams = [strip_jpeg_wrappers(c) for c in enc.chunks]
        precision = max((codestream_precision(s, uid) or 0) for s in streams)
        bits_allocated = 8 if np.dtype(enc.dtype).itemsize == 1 else 16
        needed = dmap.bits_out if dmap.shift else max(1, int(dmap.hi - dmap.offset).bit_length())
        bits_stored = min(bits_allocated, max(needed, precision if lossy else 0))
        series_uid = generate_uid() if (lossy or grey) else None
        written = []
        for k, idx in enumerate(groups):
            ds = copy.deepcopy(headers[k])  # group k is header k (one per file)
            for kw in DROP_TAGS:
                if kw in ds:
                    del ds[kw]
            for kw in TYPE2_FILL:
                if kw not in ds:
                    setattr(ds, kw, None)
            if grey:
                mark_grey_conversion(ds)
                series_uid = series_uid or generate_uid()
                ds.SeriesInstanceUID = series_uid
            fit_stored_values(ds, volume, dmap, bits_stored, bits_allocated)
            frames = [streams[i] for i in idx]
            if lossy:
                raw = volume.shape[1] * volume.shape[2] * volume.bits_allocated // 8 * len(idx)
                mark_lossy(ds, spec.codec.lossy_method, raw / max(1, sum(len(f) for f in frames)), series_uid,
                           spec.label)
            name = volume.files[k].name if k < len(volume.files) else f"{k + 1:04d}.dcm"
            path = tmp / name
            self.save(ds, frames, uid, path, multi=len(idx) > 1)
            written.append(path)
        return written

    def save(self, ds, frames: list[bytes], uid: str, path: Path, multi: bool) -> None:
        from pydicom.dataset import FileMetaDataset
        from pydicom.encaps import encapsulate, encapsulate_extended
        from pydicom.uid import UID

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = UID(uid)
        ds.file_meta = meta
        ds.preamble = b"\x00" * 128
        if multi and self.offset_table == "extended":
            data, eot, lengths = encapsulate_extended(frames)
            ds.PixelData = data
            ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = eot, lengths
        else:
            ds.PixelData = encapsulate(frames, has_bot=multi)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        part = path.with_name(path.name + ".part")
        ds.save_as(part, enforce_file_format=True)
        os.replace(part, path)

    # -- video
    def write_video(self, volume, spec, dmap, enc, uid, tmp: Path) -> list[Path]:
        """One multi-frame object (Multi-frame True Color SC) holding the elementary H.264 / HEVC stream."""
        from pydicom.dataset import Dataset
        from pydicom.uid import generate_uid

        fmt = "h264" if uid == UID_H264_HP41 else "hevc"
        with temp_dir() as work:
            src = Path(work) / "stream.mkv"
            src.write_bytes(enc.chunks[0])
            stream = self.ctx.ffmpeg.run(
                ["-i", str(src), "-map", "0:v:0", "-c:v", "copy", "-bsf:v", f"{fmt}_mp4toannexb", "-f", fmt,
                 "pipe:1"])
        profile = check_video_stream(stream, uid)
        src_ds = volume.headers[0]
        ds = Dataset()
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                   "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription",
                   "BodyPartExamined", "SpecificCharacterSet"):
            if kw in src_ds:
                ds[kw] = copy.deepcopy(src_ds[kw])
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "StudyID", "AccessionNumber", "ReferringPhysicianName"):
            if kw not in ds:
                setattr(ds, kw, "")
        ds.SOPClassUID = MF_TRUE_COLOR_SC
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.Modality = src_ds.get("Modality", "OT")
        ds.SeriesNumber, ds.InstanceNumber = "", 1
        ds.ConversionType = "WSD"
        part = str(src_ds.get("BodyPartExamined", "") or "").upper()
        if "Laterality" in src_ds or not part or part in PAIRED_BODY_PARTS:
            # Type 2C: required for paired body parts (empty when unknown), absent for unpaired ones
            ds.Laterality = src_ds.get("Laterality", None)
        ds.PatientOrientation = ""
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ContentDate, ds.ContentTime = src_ds.get("ContentDate", ""), src_ds.get("ContentTime", "")
        n, h, w = volume.shape
        bits = 10 if uid == UID_HEVC_MAIN10 else 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_PARTIAL_420", 0
        ds.Rows, ds.Columns, ds.NumberOfFrames = h, w, n
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = (16 if bits > 8 else 8), bits, bits - 1
        ds.PixelRepresentation = 0
        ds.FrameTime, ds.CineRate = 40.0, 25  # slices as 25 frames/s, as the benchmark coded them
        ds.FrameIncrementPointer = 0x00181063
        ds.BurnedInAnnotation = "NO"
        ds.SeriesDescription = f"{src_ds.get('SeriesDescription', '') or volume.name} [{spec.label}]"[:64]
        ds.DerivationDescription = (f"slices of {volume.name} coded as video by medpipe ({spec.label}); value "
                                    f"mapping {dmap.describe()}; {profile}; the stream is flagged full "
                                    "range")[:1024]
        mark_lossy(ds, spec.codec.lossy_method, volume.raw_bytes / max(1, len(stream)), ds.SeriesInstanceUID,
                   spec.label)
        ds.SOPInstanceUID = generate_uid()
        path = tmp / "video.dcm"
        from pydicom.dataset import FileMetaDataset
        from pydicom.encaps import encapsulate
        from pydicom.uid import UID

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        meta.TransferSyntaxUID = UID(uid)
        ds.file_meta, ds.preamble = meta, b"\x00" * 128
        # PS3.5 8.2.8: the whole stream is one frame's fragments; fragments <= 4 GiB, even length
        ds.PixelData = encapsulate([stream], has_bot=False)
        ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
        part = path.with_name(path.name + ".part")
        ds.save_as(part, enforce_file_format=True)
        os.replace(part, path)
        return [path]

    # -- verification
    def check(self, path: Path, volume, dmap, codec, uid: str) -> None:
        """Read the first file back with pydicom: its modality values must equal the source's (lossless) or be
        within the codec's bound (lossy); video is checked by header only (pydicom does not decode it)."""
        import pydicom

        ds = pydicom.dcmread(path)
        if ds.file_meta.TransferSyntaxUID != uid:
            raise MedpipeError(f"{path}: transfer syntax reads back as {ds.file_meta.TransferSyntaxUID}")
        if uid in VIDEO_TS:
            return
        from ..volumes.dicom import value_transform

        got = np.asarray(ds.pixel_array)
        got = got if got.ndim == 3 else got[None]
        n = got.shape[0]
        order = getattr(volume, "frame_order", None)
        if order and n == len(order):  # the file holds frames in stored order
            got = got[order]
        want = volume.pixels[:n].astype(np.float64) * volume.rescale_slope + volume.rescale_intercept
        slope, intercept = value_transform(ds)
        have = got.astype(np.float64) * slope + intercept
        err = float(np.abs(have - want).max())
        if codec.lossless and dmap.exact:
            if err:
                raise MedpipeError(f"{path}: written DICOM decodes (pydicom) with max error {err} in modality "
                                   "values; expected bit-exact")
        elif codec.error_bound is not None and dmap.exact:
            bound = codec.error_bound * abs(volume.rescale_slope)
            if err > bound + 1e-6:
                raise MedpipeError(f"{path}: written DICOM decodes with max error {err} > bound {bound}")


def _join(a, b) -> str:
    return f"{a}; {b}" if a else b
