"""Independent decoders and validators for the interoperability tests (DCMTK, GDCM, OpenJPEG, libjxl, dicom3tools).

Each helper runs a Debian tool as an argv list with a timeout and skips the test (with the reason) when the tool is
not installed. Test data builders are here too: copies of a real source in another transfer syntax, keeping every
attribute and UID, and derived real sources at other depths (12-bit, 13-bit signed, 8-bit, RGB).
"""
from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

import zlib

from medpipe.depth import values_from_pattern
from medpipe.codecs import frames
from medpipe.dicom import codestreams, streaminfo
from medpipe.dicom.part10 import write_part10
from medpipe.dicom import syntaxes as sx

TIMEOUT = 120

# Which DCMTK 3.6.7 tool decodes which transfer syntax (dcmdjpeg: all JPEG processes; dcmdjpls; dcmdrle).
DCMTK_DECODERS = {
    "1.2.840.10008.1.2.4.50": "dcmdjpeg", "1.2.840.10008.1.2.4.51": "dcmdjpeg", "1.2.840.10008.1.2.4.57": "dcmdjpeg",
    sx.JPEG_LOSSLESS_SV1: "dcmdjpeg", sx.JPEG_LS_LOSSLESS: "dcmdjpls", sx.JPEG_LS_NEAR: "dcmdjpls",
    sx.RLE_LOSSLESS: "dcmdrle",
}
# Which independent decoders read which syntax here (Debian bookworm: DCMTK 3.6.7, GDCM 3.0.21, OpenJPEG 2.5.0,
# libjxl 0.7; the others refuse: DCMTK has no JPEG 2000/HTJ2K/JPEG XL, GDCM no HTJ2K/JPEG XL/deflated frames;
# "inflate" is zlib, the RFC 1951 reference, on the Deflated Image Frame fragments).
DECODERS = {
    sx.JPEG_LOSSLESS_SV1: ("dcmtk", "gdcm"), sx.JPEG_LS_LOSSLESS: ("dcmtk", "gdcm"),
    sx.JPEG_2000_LOSSLESS: ("gdcm", "opj"), sx.HTJ2K_LOSSLESS: ("opj",), sx.HTJ2K_LOSSLESS_RPCL: ("opj",),
    sx.JPEG_XL_LOSSLESS: ("djxl",), sx.RLE_LOSSLESS: ("dcmtk", "gdcm"), sx.DEFLATED_IMAGE_FRAME: ("inflate",),
}
WHOLE_FILE = ("dcmtk", "gdcm")  # these decode the file; the others one frame's codestream


class ToolFailed(AssertionError):
    """A tool ran and refused or failed: the message carries its argv and the tail of its output."""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package: {PACKAGES.get(name, '?')}); .ci/run installs it")
    return path


PACKAGES = {"dcmdjpeg": "dcmtk", "dcmdjpls": "dcmtk", "dcmdrle": "dcmtk", "gdcmconv": "libgdcm-tools",
            "opj_decompress": "libopenjp2-tools", "djxl": "libjxl-tools", "dciodvfy": "dicom3tools",
            "Orthanc": "orthanc"}


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ToolFailed(f"{' '.join(argv)} exited {done.returncode}: " + " | ".join(tail))
    return done


def _read_pixels(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array


def dcmtk_decode(path: Path) -> np.ndarray:
    """Decompress `path` with the DCMTK tool for its transfer syntax; the uncompressed file's pixel_array."""
    uid = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    if uid not in DCMTK_DECODERS:
        pytest.skip(f"DCMTK 3.6.7 has no decoder for transfer syntax {uid}")
    exe = tool(DCMTK_DECODERS[uid])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "decoded.dcm"
        run([exe, str(path), str(out)])
        return _read_pixels(out)


def gdcm_decode(path: Path) -> np.ndarray:
    """Decompress `path` with GDCM's gdcmconv --raw; the uncompressed file's pixel_array."""
    exe = tool("gdcmconv")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "decoded.dcm"
        run([exe, "--raw", str(path), str(out)])
        return _read_pixels(out)


def _parse_pgx(data: bytes) -> tuple[np.ndarray, bool]:
    """PGX (OpenJPEG): 'PG ML|LM [+|-] depth width height\\n' then samples, ML = most significant byte first."""
    header, _, body = data.partition(b"\n")
    m = re.fullmatch(rb"PG\s+(ML|LM)\s*([+-]?)\s*(\d+)\s+(\d+)\s+(\d+)\s*", header)
    if m is None:
        raise ToolFailed(f"not a PGX header: {header[:40]!r}")
    order, sign, depth, width, height = m.group(1), m.group(2) == b"-", *map(int, m.groups()[2:])
    size = 1 if depth <= 8 else 2 if depth <= 16 else 4
    dtype = np.dtype(("i" if sign else "u") + str(size)).newbyteorder(">" if order == b"ML" else "<")
    return np.frombuffer(body[:width * height * size], dtype).reshape(height, width).astype(np.int64), sign


def opj_decode(codestream: bytes, signed: bool | None = None) -> np.ndarray:
    """Decode a JPEG 2000 / HTJ2K codestream with OpenJPEG's opj_decompress (PGX, one file per component).
    When `signed` is given, the decoded component signedness must match it."""
    exe = tool("opj_decompress")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "frame.j2c"
        src.write_bytes(codestream)
        run([exe, "-i", str(src), "-o", str(Path(tmp) / "out.pgx")])
        planes = []
        for pgx in sorted(Path(tmp).glob("out*.pgx")):
            plane, sign = _parse_pgx(pgx.read_bytes())
            if signed is not None and sign != signed:
                raise ToolFailed(f"opj_decompress decoded {'signed' if sign else 'unsigned'} samples, "
                                 f"expected {'signed' if signed else 'unsigned'}")
            planes.append(plane)
    if not planes:
        raise ToolFailed("opj_decompress wrote no PGX file")
    return planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)


def _parse_pnm(data: bytes) -> np.ndarray:
    """Binary PGM/PPM: P5|P6 width height maxval, samples most significant byte first when maxval > 255."""
    m = re.match(rb"(P[56])\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    if m is None:
        raise ToolFailed(f"not a binary PNM: {data[:20]!r}")
    width, height, maxval = map(int, m.groups()[1:])
    channels = 3 if m.group(1) == b"P6" else 1
    dtype = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
    body = np.frombuffer(data[m.end():m.end() + width * height * channels * dtype.itemsize], dtype)
    shape = (height, width, channels) if channels == 3 else (height, width)
    return body.reshape(shape).astype(np.int64)


def djxl_decode(codestream: bytes) -> np.ndarray:
    """Decode a JPEG XL codestream (bare or in its container) with libjxl's djxl to PGM/PPM: the coded samples.

    djxl 0.7 writes PNM samples of a 9..15-bit image rescaled to 16 bits (round(v * 65535 / (2^P - 1))) while the
    header keeps maxval 2^P - 1. So 16-bit output is asked for explicitly and that rescale, injective for
    P <= 16, is inverted with the codestream's own bits_per_sample P."""
    exe = tool("djxl")
    info = streaminfo.jxl_info(codestream)
    grey, precision = info.get("colour", "grey") == "grey", info.get("precision", 8)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "frame.jxl", Path(tmp) / ("out.pgm" if grey else "out.ppm")
        src.write_bytes(codestream)
        run([exe, str(src), str(out)] + (["--bits_per_sample=16"] if precision > 8 else []))
        samples = _parse_pnm(out.read_bytes())
    if 8 < precision < 16:
        samples = np.rint(samples * ((1 << precision) - 1) / 65535).astype(np.int64)
    return samples


def decoded(decoder: str, path: Path, ds: pydicom.Dataset, frame: int = 0) -> np.ndarray:
    """Stored values as the named independent decoder returns them: the whole file for DCMTK / GDCM (as
    pixel_array shapes it), else frame `frame` of `path` (OpenJPEG, djxl, zlib inflate on its codestream)."""
    signed = ds.PixelRepresentation == 1
    if decoder == "dcmtk":
        return dcmtk_decode(path)
    if decoder == "gdcm":
        return gdcm_decode(path)
    data = nth_frame(path, frame)
    if decoder == "opj":
        return opj_decode(data, signed)
    if decoder == "djxl":
        return values_from_pattern(djxl_decode(data), ds.BitsStored, signed)
    # inflate: RFC 1951 with zlib, the result must be the source's native Pixel Data bytes (PS3.5 A.4.13)
    cells = zlib.decompress(data, -zlib.MAX_WBITS)
    kind = ("<i" if signed else "<u") + str(ds.BitsAllocated // 8)
    values = np.frombuffer(cells, kind)
    if ds.SamplesPerPixel > 1:
        return values.reshape(ds.Rows, ds.Columns, -1)
    return values.reshape(ds.Rows, ds.Columns)


def dciodvfy_errors(path: Path) -> set[str]:
    """The Error lines dciodvfy reports for `path`, whitespace-normalised, so source and output compare.
    Skips when this dicom3tools cannot parse the file's transfer syntax (it then reports only that)."""
    done = run([tool("dciodvfy"), str(path)], check=False)
    lines = (done.stderr + done.stdout).splitlines()
    if any("Dicom dataset read failed" in line for line in lines):
        uid = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        pytest.skip(f"dciodvfy (dicom3tools 1.00~20220618) cannot read transfer syntax {uid}")
    return {" ".join(line.split()) for line in lines if line.lstrip().startswith("Error")}


# -- real test data in every syntax -------------------------------------------------------------------------------

def frames_of(ds: pydicom.Dataset) -> list[np.ndarray]:
    pixels = ds.pixel_array
    many = int(ds.get("NumberOfFrames", 1) or 1) > 1
    return list(pixels) if many else [pixels]


def write_in_syntax(source: Path, uid: str, out: Path, effort: int | None = 1) -> Path:
    """`source` re-encoded in transfer syntax `uid`: same attributes, same UIDs, stored values bit-identical."""
    ds = pydicom.dcmread(source)
    signed = ds.PixelRepresentation == 1
    streams = [frames.encode_frame(uid, f, ds.BitsStored, signed, bits_allocated=ds.BitsAllocated,
                                        photometric=ds.PhotometricInterpretation,
                                        planar_configuration=int(ds.get("PlanarConfiguration", 0)), effort=effort)
               for f in frames_of(ds)]
    ds.PixelData = codestreams.encapsulate_frames(streams)[0]
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = uid
    ds.preamble = b"\x00" * 128
    with open(out, "wb") as fh:
        write_part10(fh, ds)
    return out


def derived_source(source: Path, kind: str, out: Path) -> Path:
    """A real source at another depth, saved as a new instance (new UIDs) in Explicit VR Little Endian:
    'u12' (HU + 1024 clipped to 0..4095), 's13' (signed, BitsStored 13), 'u8' (u12 >> 4),
    'rgb8' (three neighbouring CT slices as R, G, B planes of one 8-bit image: real anatomy in colour)."""
    ds = pydicom.dcmread(source)
    values = ds.pixel_array.astype(np.int32)
    new = copy.deepcopy(ds)
    if kind == "s13":
        pixels, bits, signed = values.astype(np.int16), 13, True
    elif kind == "u12":
        pixels, bits, signed = np.clip(values + 1024, 0, 4095).astype(np.uint16), 12, False
    elif kind == "u8":
        pixels, bits, signed = (np.clip(values + 1024, 0, 4095) >> 4).astype(np.uint8), 8, False
    elif kind == "rgb8":
        neighbours = sorted(source.parent.glob("*.dcm"))
        i = neighbours.index(source)
        planes = [pydicom.dcmread(p).pixel_array.astype(np.int32) for p in neighbours[max(i - 1, 0):i + 2]][:3]
        pixels = np.stack([np.clip(p + 1024, 0, 4095) >> 4 for p in planes], axis=-1).astype(np.uint8)
        bits, signed = 8, False
        new.SamplesPerPixel, new.PhotometricInterpretation, new.PlanarConfiguration = 3, "RGB", 0
        new.SOPClassUID = new.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
        for keyword in ("RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth"):
            new.pop(keyword, None)
    else:
        raise ValueError(kind)
    new.BitsAllocated, new.BitsStored, new.HighBit = pixels.dtype.itemsize * 8, bits, bits - 1
    new.PixelRepresentation = int(signed)
    if kind in ("u12", "u8"):
        new.RescaleIntercept = -1024 * (16 if kind == "u8" else 1)
        new.RescaleSlope = 16 if kind == "u8" else 1
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue"):
        new.pop(keyword, None)
    new.PixelData = pixels.tobytes()
    new["PixelData"].VR = "OW" if pixels.dtype.itemsize == 2 else "OB"
    new.SOPInstanceUID = new.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    # one derived series per source series and kind: the copies of a series stay one series
    new.SeriesInstanceUID = generate_uid(entropy_srcs=[str(ds.get("SeriesInstanceUID", source.parent)), kind])
    new.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    new.save_as(out, enforce_file_format=True)
    return out


def nth_frame(path: Path, index: int = 0) -> bytes:
    """Frame `index`'s codestream of an encapsulated file (its fragment, pad byte included)."""
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(path)
    frames = generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1))
    for _ in range(index):
        next(frames)
    return next(frames)


def first_frame(path: Path) -> bytes:
    return nth_frame(path, 0)


def assert_same_instance(source: Path, output: Path) -> None:
    """Every attribute but Pixel Data equal (so every UID and every Image Pixel attribute), same instance in the
    File Meta Information; only the transfer syntax differs."""
    a, b = pydicom.dcmread(source), pydicom.dcmread(output)
    for ds in (a, b):
        del ds.PixelData
    differing = sorted({e.keyword or str(e.tag) for e in a} ^ {e.keyword or str(e.tag) for e in b}
                       | {e.keyword or str(e.tag) for e in a if e.tag in b and b[e.tag] != e})
    assert not differing, f"attributes changed: {differing}"
    for keyword in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID"):
        assert a.file_meta[keyword].value == b.file_meta[keyword].value
