"""Write each verified encoding as standard DICOM: encapsulated pixel data, the right transfer syntax, every other
attribute of the source kept.

The codestreams are the very bytes the benchmark timed and verified (one per slice), encapsulated with pydicom; no
second encoding. Only optional wrapper segments (JFIF APP0, the JPEG-LS SPIFF header) are dropped: DICOM takes the
JPEG interchange format, the image data are untouched.

Stored values. A codec codes ``coded = (v - offset) >> shift`` (medpipe.depth). For DICOM the stored values must
be what the codestream decodes to, so when the mapping is not the identity (signed CT: offset = the minimum) the
objects are written with PixelRepresentation 0, BitsStored of the coded values, and RescaleSlope/-Intercept
adjusted so the modality values (HU) are exactly those of the source:
``HU = slope * 2^shift * coded + intercept + slope * (offset + centre of bin)``. Every PACS applies the rescale,
so the images display and measure as the source does; a signed (two's complement) codestream would need a second
encoding, which medpipe never does. Stored-value attributes (smallest/largest pixel value, pixel padding) are
mapped the same way or removed when they fall outside the new range.

Lossless output keeps the source UIDs (the modality values are bit-identical). Lossy output follows PS3.3
C.7.6.1.1.5: new SOP Instance UID (and a new series for the derived set), ImageType DERIVED, LossyImageCompression
"01", ratio and method appended, Derivation Code "Lossy Compression" and a Source Image Sequence pointing at the
original.
"""
from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np

from .depth import DepthMap
from .errors import MedpipeError, PresetError
from .volumes import Volume

UID_H264_HP41 = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile / Level 4.1
UID_HEVC_MAIN = "1.2.840.10008.1.2.4.107"  # HEVC/H.265 Main Profile / Level 5.1
UID_HEVC_MAIN10 = "1.2.840.10008.1.2.4.108"  # HEVC/H.265 Main 10 Profile / Level 5.1
VIDEO_TS = {UID_H264_HP41, UID_HEVC_MAIN, UID_HEVC_MAIN10}
# PS3.3 C.7.6.1.1.5.1 Lossy Image Compression Method defined terms, per transfer syntax
LOSSY_METHOD = {
    "1.2.840.10008.1.2.4.81": "ISO_14495_1", "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15", "1.2.840.10008.1.2.4.112": "ISO_18181_1",
    "1.2.840.10008.1.2.4.50": "ISO_10918_1", "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    UID_H264_HP41: "ISO_14496_10", UID_HEVC_MAIN: "ISO_23008_2", UID_HEVC_MAIN10: "ISO_23008_2",
}
PAIRED_BODY_PARTS = {"BREAST", "EYE", "EAR", "KIDNEY", "LUNG", "OVARY", "TESTIS", "ADRENAL", "ARM", "UPPERARM",
                     "FOREARM", "ELBOW", "WRIST", "HAND", "FINGER", "THUMB", "SHOULDER", "CLAVICLE", "SCAPULA",
                     "HIP", "LEG", "THIGH", "FEMUR", "KNEE", "TIBIA", "FIBULA", "ANKLE", "FOOT", "TOE", "HEEL",
                     "PATELLA", "EXTREMITY", "ORBIT", "TMJ", "JAW", "PAROTID", "SUBMANDIBULAR", "BREASTIMPLANT"}
MF_TRUE_COLOR_SC = "1.2.840.10008.5.1.4.1.1.7.4"  # Multi-frame True Color Secondary Capture Image Storage
STORED_VALUE_TAGS = ("SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
                     "LargestPixelValueInSeries", "PixelPaddingValue", "PixelPaddingRangeLimit")
# Type 2 attributes of the Patient, General Study/Series/Equipment/Image modules (present in every image IOD):
# de-identified exports often drop them; adding them empty is conformant and loses nothing (dciodvfy errors).
TYPE2_FILL = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
              "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber", "Manufacturer",
              "InstanceNumber")
DROP_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable",
             "ExtendedOffsetTableLengths", "DataSetTrailingPadding")
OPTIONS = {"folder": "sub-folder of the run folder (default 'dicom')",
           "offset_table": "'basic' (default) or 'extended' (Extended Offset Table, for multi-frame objects)",
           "verify": "read the first written file back with pydicom and compare (default true)"}


class NotWritable(MedpipeError):
    """This configuration has no DICOM form; the row says why."""


# ---------------------------------------------------------------- which transfer syntax

def pydicom_knows(uid: str) -> bool:
    from pydicom.uid import UID

    u = UID(uid)
    return u.is_transfer_syntax and u.name != uid


def video_syntax(codec, volume: Volume) -> str:
    """The DICOM video transfer syntax this ffmpeg configuration fits, or NotWritable with the reason."""
    name, p = codec.name, codec.p
    if name not in ("x264", "x265"):
        raise NotWritable(f"no DICOM transfer syntax: {name} is not a DICOM pixel encoding "
                          "(DICOM video is H.264 or HEVC only)")
    std = "H.264" if name == "x264" else "HEVC"
    if p.get("chroma") != "420":
        raise NotWritable(f"no DICOM transfer syntax: DICOM {std} needs 4:2:0 colour (YBR_PARTIAL_420); this "
                          f"stream is {'monochrome' if p.get('chroma') == 'gray' else '4:4:4'}")
    bits = int(p["bits"])
    if name == "x264" and bits != 8:
        raise NotWritable(f"no DICOM transfer syntax: DICOM H.264 (High Profile) is 8-bit; this stream is "
                          f"{bits}-bit")
    if name == "x265" and bits not in (8, 10):
        raise NotWritable(f"no DICOM transfer syntax: DICOM HEVC is Main (8-bit) or Main 10; this stream is "
                          f"{bits}-bit")
    n, h, w = volume.shape
    if h % 2 or w % 2:
        raise NotWritable(f"no DICOM transfer syntax: {h}x{w} is odd; the 4:2:0 stream was padded to even size")
    if name == "x264" and (h * w > 1920 * 1088 or max(h, w) > 1920 * 2):
        raise NotWritable(f"no DICOM transfer syntax: {w}x{h} exceeds H.264 Level 4.1's frame size")
    if name == "x265" and (h * w > 4096 * 2304):
        raise NotWritable(f"no DICOM transfer syntax: {w}x{h} exceeds HEVC Level 5.1's frame size")
    if name == "x264":
        return UID_H264_HP41
    return UID_HEVC_MAIN if bits == 8 else UID_HEVC_MAIN10


def choose_syntax(volume: Volume, spec, dmap: DepthMap, row: dict) -> str:
    codec = spec.codec
    if not volume.headers:
        raise NotWritable("no DICOM written: the source is not DICOM (PNG input) and has no header to keep")
    if any(n.startswith("colour") and "per component" in n for n in volume.notes):
        raise NotWritable("no DICOM written: colour coded per component (color: components) has no single "
                          "DICOM form; use color: gray")
    if not codec.per_slice:
        uid = video_syntax(codec, volume)
    else:
        uid = row.get("dicom_ts") or codec.dicom_ts
        if not uid:
            raise NotWritable(f"no DICOM transfer syntax: {codec.name} is not a DICOM pixel encoding")
        if not row.get("dicom_ts"):
            raise NotWritable(f"no DICOM written: the mapping ({dmap.describe()}) loses precision before a "
                              f"lossless codec; {uid} would claim a lossless image")
    if not pydicom_knows(uid):
        import pydicom

        raise NotWritable(f"no DICOM written: transfer syntax {uid} is not known to the installed pydicom "
                          f"{pydicom.__version__} (JPEG XL needs a newer release)")
    return uid


# ---------------------------------------------------------------- video streams

def _nal_units(stream: bytes):
    """Annex B NAL units (payload after the start code), emulation-prevention bytes removed."""
    for part in stream.split(b"\x00\x00\x01")[1:]:
        yield part.rstrip(b"\x00").replace(b"\x00\x00\x03", b"\x00\x00")


def stream_profile(stream: bytes, uid: str) -> tuple[int, int, int]:
    """(profile_idc, constraint flags byte or tier, level_idc) from the first SPS of an H.264 / HEVC stream."""
    for nal in _nal_units(stream):
        if not nal:
            continue
        if uid == UID_H264_HP41 and nal[0] & 0x1F == 7 and len(nal) >= 4:  # H.264 SPS
            return nal[1], nal[2], nal[3]
        if uid != UID_H264_HP41 and (nal[0] >> 1) & 0x3F == 33 and len(nal) >= 15:  # HEVC SPS
            return nal[3] & 0x1F, (nal[3] >> 5) & 1, nal[14]
    raise NotWritable("no DICOM written: no sequence parameter set found in the video stream")


def check_video_stream(stream: bytes, uid: str) -> str:
    """The stream must be decodable as the syntax says: H.264 High Profile (or its Constrained Baseline /
    Main subsets) at level <= 4.1; HEVC Main / Main 10 at level <= 5.1 (PS3.5 8.2.8-8.2.9)."""
    profile, flags, level = stream_profile(stream, uid)
    if uid == UID_H264_HP41:
        names = {66: "Constrained Baseline" if flags & 0x40 else "Baseline", 77: "Main", 100: "High"}
        if profile not in (77, 100) and not (profile == 66 and flags & 0x40):
            raise NotWritable(f"no DICOM transfer syntax: H.264 profile_idc {profile} is not decodable as High "
                              "Profile")
        if level > 41:
            raise NotWritable(f"no DICOM transfer syntax: H.264 level {level / 10:g} exceeds 4.1")
        return f"H.264 {names[profile]} profile, level {level / 10:g}"
    want = 1 if uid == UID_HEVC_MAIN else 2
    if profile != want:
        raise NotWritable(f"no DICOM transfer syntax: HEVC general_profile_idc {profile}, the syntax needs "
                          f"{'Main (1)' if want == 1 else 'Main 10 (2)'}")
    if level > 153:
        raise NotWritable(f"no DICOM transfer syntax: HEVC level {level / 30:g} exceeds 5.1")
    return f"HEVC {'Main' if want == 1 else 'Main 10'} profile, level {level / 30:g}"


# ---------------------------------------------------------------- codestream clean-up

def strip_jpeg_wrappers(stream: bytes) -> bytes:
    """Drop a JFIF APP0 segment or a JPEG-LS SPIFF header (APP8 + directory, ending in its own SOI)."""
    if stream[:2] != b"\xff\xd8" or len(stream) < 8:
        return stream
    if stream[2:4] == b"\xff\xe0" and stream[6:11] == b"JFIF\x00":
        seg = int.from_bytes(stream[4:6], "big")
        return b"\xff\xd8" + stream[4 + seg:]
    if stream[2:4] == b"\xff\xe8" and stream[6:12] == b"SPIFF\x00":
        pos = 4 + int.from_bytes(stream[4:6], "big")
        while stream[pos:pos + 2] == b"\xff\xe8":  # directory entries; the end-of-directory one holds the SOI
            seg = int.from_bytes(stream[pos + 2:pos + 4], "big")
            entry = stream[pos + 4:pos + 2 + seg]
            if entry[:4] == b"\x00\x00\x00\x01":  # EOD: its last two bytes are the image's SOI
                return stream[pos + 2 + seg - 2:]
            pos += 2 + seg
    return stream


def codestream_precision(stream: bytes, uid: str) -> int | None:
    """Sample precision P written in a JPEG / JPEG-LS / JPEG 2000 codestream (None when not parsed)."""
    from pydicom.pixels.utils import get_j2k_parameters

    if uid.startswith("1.2.840.10008.1.2.4.9") or uid.startswith("1.2.840.10008.1.2.4.20"):
        return get_j2k_parameters(stream).get("precision")
    if uid.startswith("1.2.840.10008.1.2.4.") and stream[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 < len(stream) and stream[pos] == 0xFF:
            marker = stream[pos + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xF7):  # SOF (JPEG) / SOF55 (JPEG-LS)
                return stream[pos + 4]
            pos += 2 + int.from_bytes(stream[pos + 2:pos + 4], "big")
    return None


# ---------------------------------------------------------------- headers

def fit_stored_values(ds, volume: Volume, dmap: DepthMap, bits_stored: int, bits_allocated: int) -> None:
    """Make ``ds`` describe the coded values (see the module docstring); the identity leaves it untouched."""
    from pydicom.valuerep import DSfloat

    identity = dmap.offset == 0 and dmap.shift == 0
    ds.BitsAllocated = bits_allocated
    if identity and not volume.signed:
        if bits_stored > int(ds.get("BitsStored", bits_stored)):
            ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
        return
    if "ModalityLUTSequence" in ds:
        raise NotWritable("no DICOM written: the source maps values with a Modality LUT, which medpipe cannot "
                          "re-map to the coded values")
    centre = (1 << (dmap.shift - 1)) if dmap.shift else 0
    if not identity:
        for item in rescale_holders(ds):
            slope = float(item.get("RescaleSlope", 1) or 1)
            intercept = float(item.get("RescaleIntercept", 0) or 0)
            item.RescaleSlope = DSfloat(_ds_text(slope * (1 << dmap.shift)), auto_format=False)
            item.RescaleIntercept = DSfloat(_ds_text(intercept + slope * (dmap.offset + centre)),
                                            auto_format=False)
            if "RescaleType" not in item and ds.get("Modality") != "CT":
                item.RescaleType = "US"
    ds.PixelRepresentation = 0
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    top = (1 << bits_stored) - 1
    for kw in STORED_VALUE_TAGS:
        if kw not in ds:
            continue
        value = ds[kw].value
        if isinstance(value, (bytes, bytearray)) or value is None:
            del ds[kw]
            continue
        new = (int(value) - dmap.offset) >> dmap.shift
        if 0 <= new <= top:
            ds[kw].VR = "US"
            ds[kw].value = new
        else:
            del ds[kw]


def rescale_holders(ds) -> list:
    """Where the rescale lives: enhanced objects' Pixel Value Transformation items (shared and per frame),
    else the data set itself (the attributes are added there when absent)."""
    items = []
    for groups in (ds.get("SharedFunctionalGroupsSequence"), ds.get("PerFrameFunctionalGroupsSequence")):
        for group in groups or []:
            items += list(group.get("PixelValueTransformationSequence") or [])
    return items or [ds]


def _ds_text(v: float) -> str:
    """A Decimal String of at most 16 characters."""
    text = f"{v:.10g}"
    return text if len(text) <= 16 else f"{v:.6g}"


def mark_lossy(ds, uid: str, ratio: float, series_uid: str, label: str) -> None:
    """PS3.3 C.7.6.1.1.5: a lossy compressed image is a new, derived instance."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    old_class, old_inst = ds.get("SOPClassUID"), ds.get("SOPInstanceUID")
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid
    ds.LossyImageCompression = "01"
    ratios = [str(r) for r in _multi(ds.get("LossyImageCompressionRatio"))]
    methods = [str(m) for m in _multi(ds.get("LossyImageCompressionMethod"))]
    ds.LossyImageCompressionRatio = ratios + [_ds_text(round(ratio, 2))]
    ds.LossyImageCompressionMethod = methods + [LOSSY_METHOD.get(uid, "ISO_15444_1")]
    image_type = [str(v) for v in _multi(ds.get("ImageType"))] or ["DERIVED", "SECONDARY"]
    image_type[0] = "DERIVED"
    if len(image_type) == 1:
        image_type.append("SECONDARY")
    ds.ImageType = image_type
    text = f"lossy compressed by medpipe ({label})"
    prior = str(ds.get("DerivationDescription", "") or "")
    ds.DerivationDescription = (f"{prior}; {text}" if prior else text)[:1024]
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "113040", "DCM", "Lossy Compression"
    ds.DerivationCodeSequence = [code]
    if old_class and old_inst:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = old_class, old_inst
        purpose = Dataset()
        purpose.CodeValue, purpose.CodingSchemeDesignator = "121320", "DCM"
        purpose.CodeMeaning = "Uncompressed predecessor"
        ref.PurposeOfReferenceCodeSequence = [purpose]
        ds.SourceImageSequence = [ref]
    desc = str(ds.get("SeriesDescription", "") or "")
    ds.SeriesDescription = (f"{desc} [{label}]" if desc else f"[{label}]")[:64]


def _multi(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def mark_grey_conversion(ds) -> None:
    """A colour source coded as luma: a new derived MONOCHROME2 instance."""
    from pydicom.uid import generate_uid

    ds.SOPInstanceUID = generate_uid()
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    for kw in ("PlanarConfiguration", "RedPaletteColorLookupTableDescriptor", "ICCProfile"):
        if kw in ds:
            del ds[kw]
    image_type = [str(v) for v in _multi(ds.get("ImageType"))] or ["DERIVED", "SECONDARY"]
    image_type[0] = "DERIVED"
    ds.ImageType = image_type if len(image_type) > 1 else image_type + ["SECONDARY"]
    prior = str(ds.get("DerivationDescription", "") or "")
    text = "colour converted to grey (BT.601 luma) by medpipe"
    ds.DerivationDescription = (f"{prior}; {text}" if prior else text)[:1024]


# ---------------------------------------------------------------- the sink

class DicomSink:
    """``sink(volume, spec, depth_map, encoded, row)`` for bench.run_cell: writes one DICOM series per cell under
    ``<run>/<folder>/<volume>/<label>/`` and fills ``row["dicom_ts"]`` / ``row["dicom_dir"]`` (or the reason).

    Picklable (the console is dropped), so parallel runners can call it in worker processes.
    """

    def __init__(self, root: Path, offset_table: str = "basic", verify: bool = True, ffmpeg: str | None = None,
                 console=None):
        self.root = Path(root)
        self.offset_table = offset_table
        self.verify = verify
        self.ffmpeg_path = ffmpeg
        self.console = console

    def __getstate__(self):
        state = dict(self.__dict__)
        state["console"] = None
        return state

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def __call__(self, volume: Volume, spec, dmap: DepthMap, enc, row: dict) -> None:
        try:
            uid = choose_syntax(volume, spec, dmap, row)
            out = self.write(volume, spec, dmap, enc, uid, row)
        except NotWritable as exc:
            row["dicom_ts"], row["dicom_dir"] = None, None
            row["reason"] = _join(row.get("reason"), str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the codec's row stays valid; say what went wrong with DICOM
            row["dicom_ts"], row["dicom_dir"] = None, None
            row["reason"] = _join(row.get("reason"), f"DICOM not written: {type(exc).__name__}: {exc}")
            row["status"] = "failed"
            self.say(f"[red]DICOM output failed[/] for {volume.name} / {spec.label}: {exc}")
            return
        row["dicom_ts"], row["dicom_dir"] = uid, str(out)

    # -- writing
    def target(self, volume: Volume, label: str) -> Path:
        return self.root / _safe(volume.name) / _safe(label)

    def write(self, volume: Volume, spec, dmap: DepthMap, enc, uid: str, row: dict) -> Path:
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
                mark_lossy(ds, uid, raw / max(1, sum(len(f) for f in frames)), series_uid, spec.label)
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

        from .ffmpeg import Ffmpeg

        fmt = "h264" if uid == UID_H264_HP41 else "hevc"
        with _tempdir() as work:
            src = Path(work) / "stream.mkv"
            src.write_bytes(enc.chunks[0])
            stream = Ffmpeg.locate(self.ffmpeg_path).run(
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
        mark_lossy(ds, uid, volume.raw_bytes / max(1, len(stream)), ds.SeriesInstanceUID, spec.label)
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
    def check(self, path: Path, volume: Volume, dmap: DepthMap, codec, uid: str) -> None:
        """Read the first file back with pydicom: its modality values must equal the source's (lossless) or be
        within the codec's bound (lossy); video is checked by header only (pydicom does not decode it)."""
        import pydicom

        ds = pydicom.dcmread(path)
        if ds.file_meta.TransferSyntaxUID != uid:
            raise MedpipeError(f"{path}: transfer syntax reads back as {ds.file_meta.TransferSyntaxUID}")
        if uid in VIDEO_TS:
            return
        from .volumes.dicom import value_transform

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


def _tempdir():
    import tempfile

    return tempfile.TemporaryDirectory(prefix="medpipe-dcm-")


def _join(a, b) -> str:
    return f"{a}; {b}" if a else b


def _safe(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_.+=" else "_" for c in str(text).strip())
    return keep.strip("._") or "x"


def parse_options(value) -> dict:
    """``dicom_out: true`` or a mapping of OPTIONS; unknown keys refused with the valid ones."""
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise PresetError(f"dicom_out: expected true/false or a mapping ({', '.join(OPTIONS)})")
    unknown = set(value) - set(OPTIONS)
    if unknown:
        raise PresetError(f"dicom_out: unknown key(s) {sorted(unknown)}; valid: "
                          + "; ".join(f"{k}: {v}" for k, v in OPTIONS.items()))
    if value.get("offset_table", "basic") not in ("basic", "extended"):
        raise PresetError(f"dicom_out.offset_table: {value['offset_table']!r} is not 'basic' or 'extended'")
    return value


def make_sink(preset, folder: Path, console) -> DicomSink:
    """The sink the runner passes to bench.run_cell when the preset sets ``dicom_out``."""
    opts = parse_options(preset.dicom_out)
    root = Path(folder) / str(opts.get("folder", "dicom"))
    if console is not None:
        console.print(f"DICOM output: {root}", highlight=False)
    return DicomSink(root, offset_table=str(opts.get("offset_table", "basic")),
                     verify=bool(opts.get("verify", True)), ffmpeg=preset.ffmpeg, console=console)
