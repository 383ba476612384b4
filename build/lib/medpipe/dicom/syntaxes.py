"""DICOM transfer syntax facts medpipe writes by (PS3.5): names, what pydicom knows, video stream checks and
codestream clean-up. Which codec configuration fits which syntax is declared in each codec class
(``Codec.dicom``); this module checks the bytes."""
from __future__ import annotations

from ..errors import MedpipeError

UID_H264_HP41 = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile / Level 4.1
UID_HEVC_MAIN = "1.2.840.10008.1.2.4.107"  # HEVC/H.265 Main Profile / Level 5.1
UID_HEVC_MAIN10 = "1.2.840.10008.1.2.4.108"  # HEVC/H.265 Main 10 Profile / Level 5.1
VIDEO_TS = {UID_H264_HP41, UID_HEVC_MAIN, UID_HEVC_MAIN10}


class NotWritable(MedpipeError):
    """This configuration has no DICOM form; the row says why."""


def pydicom_knows(uid: str) -> bool:
    from pydicom.uid import UID

    u = UID(uid)
    return u.is_transfer_syntax and u.name != uid


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
