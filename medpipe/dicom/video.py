"""DICOM video: one Multi-frame True Color Secondary Capture object holding a benchmark H.264 / HEVC stream.

The container-to-elementary-stream step runs through the run's one ffmpeg runner (``ctx.ffmpeg``): it honours
``--ffmpeg`` / the preset's ``ffmpeg`` / ``MEDPIPE_FFMPEG``, and its command lands in the run's provenance with the
codecs' own. Video is always lossy (PS3.5 8.2.5-8.2.9: 8/10-bit 4:2:0 only), so the object is a new derived
instance (PS3.3 C.7.6.1.1.5).
"""
from __future__ import annotations

import copy
from pathlib import Path

from pydicom.uid import HEVCM10P51, HEVCMP51, MPEG4HP41

from ..files import temp_dir
from .header import MF_TRUE_COLOR_SC, PAIRED_BODY_PARTS, mark_lossy
from .part10 import save
from .syntaxes import NotWritable

UID_H264_HP41, UID_HEVC_MAIN, UID_HEVC_MAIN10 = MPEG4HP41, HEVCMP51, HEVCM10P51  # the video syntaxes medpipe writes
VIDEO_TS = {UID_H264_HP41, UID_HEVC_MAIN, UID_HEVC_MAIN10}
PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                 "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription",
                 "BodyPartExamined", "SpecificCharacterSet")
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
         "AccessionNumber", "ReferringPhysicianName")


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


def write_video(ctx, volume, spec, dmap, enc, uid: str, folder: Path) -> tuple[Path, int]:
    """The video object in `folder`; (its path, its pixel data bytes)."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    fmt = "h264" if uid == UID_H264_HP41 else "hevc"
    with temp_dir() as work:
        src = Path(work) / "stream.mkv"
        src.write_bytes(enc.chunks[0])
        stream = ctx.ffmpeg.run(["-i", str(src), "-map", "0:v:0", "-c:v", "copy", "-bsf:v", f"{fmt}_mp4toannexb",
                                 "-f", fmt, "pipe:1"])
    profile = check_video_stream(stream, uid)
    src_ds = volume.headers[0]
    ds = Dataset()
    for kw in PATIENT_STUDY:
        if kw in src_ds:
            ds[kw] = copy.deepcopy(src_ds[kw])
    for kw in TYPE2:
        if kw not in ds:
            setattr(ds, kw, "")
    ds.SOPClassUID = MF_TRUE_COLOR_SC  # the SOP Instance UID comes with mark_lossy (a new instance, no source)
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
    ds.SeriesDescription = str(src_ds.get("SeriesDescription", "") or volume.name)
    ds.DerivationDescription = (f"slices of {volume.name} coded as video by medpipe ({spec.label}); value "
                                f"mapping {dmap.describe()}; {profile}; the stream is flagged full range")[:1024]
    mark_lossy(ds, spec.codec.lossy_method, volume.raw_bytes / max(1, len(stream)), generate_uid(), spec.label)
    path = folder / "video.dcm"
    # PS3.5 8.2.8: the whole stream is one frame's fragments, the Basic Offset Table empty; items even length
    return path, save(ds, uid, [stream], path, offset_table="empty")
