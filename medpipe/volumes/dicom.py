"""DICOM files: read a header or a whole file, decode pixel data, and the facts a header holds about its pixels
(transfer syntax, lossy history, padding, value transform, geometry).

Every failure becomes one :class:`InputError` line naming the file; pydicom's own warnings about odd files are
kept off the console (the file either reads, or gets its one line).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
import zlib
from pathlib import Path

import numpy as np

from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGLSNearLossless

from ..errors import InputError, described
from ..memory import TooLarge, check_fits, free_memory
from ..syntaxes import JXL_FAMILY, TABLE, DeflatedImageFrameCompression, JPEGXL, PixelAttrs, is_encapsulated, \
    lossy_description

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# Transfer syntaxes whose codestreams are lossy, or may be (PS3.5 Section 8 and Annex A.4; the table says which).
# "may" syntaxes are left unflagged only when both the header (LossyImageCompression "00") and the codestream say
# lossless.
MAYBE_LOSSY = {u for u, r in TABLE.items() if r.lossless is None}
JPEG_LS_NEAR_LOSSLESS = JPEGLSNearLossless
J2K_LIKE = MAYBE_LOSSY - {JPEGXL}


# pydicom converts values lazily and warns about odd ones (a 122-character LO) wherever one is first read, long
# after quiet() below, in this process or a worker: a file either reads or gets its one line, never those warnings
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\b")


@contextlib.contextmanager
def quiet():
    """pydicom warns (not raises) about many oddities of real files; medpipe reports per file instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _looks_like_dataset(ds) -> bool:
    """A data set read with force=True that is a DICOM object, not a random file pydicom happened to parse:
    it names its SOP class, or it holds an image (rows, columns and pixel data)."""
    try:
        uid = str(ds.get("SOPClassUID", "") or "")
        if uid and uid.replace(".", "").isdigit() and uid.startswith("1.2."):
            return True
        return "Rows" in ds and "Columns" in ds and any(k in ds for k in PIXEL_KEYWORDS)
    except Exception:  # noqa: BLE001 - a garbage element raising on access means "not a data set"
        return False


def _fill_transfer_syntax(ds) -> None:
    """A bare data set (no file meta) says nothing of its encoding; record how pydicom read it, so pixel data
    can be decoded (PS3.5 10.1: a data set without meta is implicit or explicit VR as found)."""
    if "TransferSyntaxUID" in getattr(ds, "file_meta", {}):
        return
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    implicit, little = ds.original_encoding if ds.original_encoding[0] is not None else (True, True)
    ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                      ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def read_dicom(path: Path, *, pixels: bool = True, defer_size: int | None = None):
    """The data set of ``path``; files without the 128-byte preamble and 'DICM' (old exports, bare data sets)
    are read too when pydicom can parse them and they look like a DICOM object. Raises one InputError line."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    kwargs = {"stop_before_pixels": not pixels, "defer_size": defer_size}
    try:
        with quiet():
            ds = read_deflated(path, not pixels) or pydicom.dcmread(path, **kwargs)
    except InputError:
        raise
    except InvalidDicomError:
        ds = None
    except (OSError, MemoryError) as exc:
        raise InputError(f"{path}: cannot be read ({described(exc)})")
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged headers
        raise InputError(f"{path}: damaged DICOM header ({described(exc)}); is the file truncated?")
    if ds is None:
        try:
            with quiet():
                ds = pydicom.dcmread(path, force=True, **kwargs)
            if not _looks_like_dataset(ds):
                ds = None
        except Exception:  # noqa: BLE001 - any parse failure of a file without preamble means "not DICOM"
            ds = None
        if ds is None:
            raise InputError(f"{path}: not a DICOM file (no DICM preamble, and pydicom cannot read it as a bare "
                             "DICOM data set either)")
    _fill_transfer_syntax(ds)
    problem = _unreadable_element(ds)
    if problem:
        raise InputError(f"{path}: damaged DICOM header: {problem}")
    return ds


PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
PREFIX = 16 << 20  # inflated first: the header up to Pixel Data (a header larger than this: the free-memory bound)
SLACK = 1 << 20  # elements after Pixel Data (PS3.5 7.5: Data Set Trailing Padding is all that should follow)


def read_deflated(path: Path, stop_before_pixels: bool = False):
    """A Deflated Explicit VR Little Endian file (PS3.5 A.5: the whole data set after the File Meta Information
    deflated, RFC 1951) read with its inflation bounded: the header up to Pixel Data first, then no more than the
    pixel bytes its Rows x Columns x frames x samples x BitsAllocated declare (pydicom inflates all of it,
    unbounded: 2.4 MB became more than 4.7 GB); None for any other file. Raises one InputError line."""
    import pydicom
    from pydicom.filereader import read_dataset, read_file_meta_info

    with open(path, "rb") as fh:
        head = fh.read(144)  # preamble, DICM, (0002,0000) UL: the File Meta group's length (PS3.10 7.1)
        if head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
            return None
        # every DICOM file passes here: only a meta group naming the deflated syntax is parsed a second time
        if DeflatedExplicitVRLittleEndian.encode() not in fh.read(min(int.from_bytes(head[140:144], "little"),
                                                                      1 << 16)):
            return None
        try:
            meta = read_file_meta_info(path)
        except Exception:  # noqa: BLE001 - a damaged meta: the ordinary read names it
            return None
        if (str(meta.get("TransferSyntaxUID", "")) != DeflatedExplicitVRLittleEndian
                or "FileMetaInformationGroupLength" not in meta):  # PS3.10 7.1: Type 1; without it, pydicom reads
            return None
        fh.seek(132 + 12 + int(meta.get("FileMetaInformationGroupLength", 0) or 0))
        deflated = fh.read()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        data = inflater.decompress(deflated, PREFIX)
        if not inflater.eof:
            header = io.BytesIO(data)
            try:
                with quiet():
                    declared = decoded_bytes(read_dataset(header, False, True,
                                                          stop_when=lambda t, *_: t == 0x7FE00010))
            except Exception:  # noqa: BLE001 - a header longer than PREFIX (or damaged): the free-memory bound
                declared = 0
            limit = header.tell() + 12 + declared + SLACK if declared else (free_memory() or PREFIX) // 4
            check_fits(limit, str(path))
            if len(data) <= limit:
                data += inflater.decompress(inflater.unconsumed_tail, limit - len(data) + 1)
            if len(data) > limit:
                raise InputError(f"{path}: the deflated data set inflates to more than {limit} bytes, its header "
                                 f"declares {declared} bytes of pixel data; refused (a deflate bomb)")
    except TooLarge as exc:
        raise InputError(str(exc)) from None
    except zlib.error as exc:
        raise InputError(f"{path}: damaged DICOM header (the deflated data set does not inflate: zlib: {exc})") \
            from None
    with quiet():
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=stop_before_pixels)
    ds.file_meta, ds.filename = meta, str(path)
    return ds


def _unreadable_element(ds) -> str | None:
    """The first top-level element whose VR pydicom does not know (a flipped byte, PS3.5 7.1.2: pydicom parses
    values lazily and would raise NotImplementedError wherever the element is first used), converted here so its
    damage is one line. Only such elements are converted (converting every element costs 3 x the header read);
    others, deferred values and pixel data are left as they are."""
    from pydicom.valuerep import VR

    known = set(VR.__members__.values())
    for tag, elem in list(ds._dict.items()):
        if tag in PIXEL_TAGS or getattr(elem, "VR", None) in known or getattr(elem, "VR", None) is None:
            continue
        try:
            with quiet():
                ds[tag]
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on a damaged element
            return f"element {elem.tag} cannot be read ({described(exc)})"
    return None


def looks_like_dicom(path: Path) -> bool:
    """True when the file has the DICM prefix after its 128-byte preamble (PS3.10 7.1); a cheap first test."""
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def is_image(ds) -> bool:
    return any(k in ds for k in PIXEL_KEYWORDS)


def is_dicomdir(ds, path: Path) -> bool:
    meta_class = ds.file_meta.get("MediaStorageSOPClassUID", "") if hasattr(ds, "file_meta") else ""
    return path.name.upper() == "DICOMDIR" or meta_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds


def transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def sop_class_name(ds) -> str:
    uid = ds.get("SOPClassUID", "")
    name = getattr(uid, "name", "") or str(uid)
    return name.replace(" Storage", "") if name else "unknown SOP class"


# Syntaxes pydicom 3.0 has no decoder for, decoded by the frame coders (PS3.5 8.2.15 JPEG XL, 8.2.16 Deflated
# Image Frame).
JPEG_XL_SYNTAXES = set(JXL_FAMILY)
DEFLATED_IMAGE_FRAME = DeflatedImageFrameCompression


def is_compressed_syntax(uid) -> bool:
    """True for an encapsulated (compressed) transfer syntax, also those pydicom 3.0 does not know."""
    if uid is None:
        return False
    if is_encapsulated(uid):
        return True
    try:
        return bool(uid.is_compressed)
    except (ValueError, AttributeError):  # not a transfer syntax pydicom knows: treat as native only if it says
        return False


def decode_frames_here(ds, ts: str) -> np.ndarray:
    """Pixel data in JPEG XL or Deflated Image Frame Compression, as pydicom's pixel_array would give it, decoded by
    the frame coders (:mod:`medpipe.codecs.frames`: JPEG XL's bit pattern read back through Bits Stored and Pixel
    Representation, Deflated Image Frame's native cells)."""
    from pydicom.encaps import generate_frames

    from ..codecs.frames import decode_frame  # here: loading the codec package only when such a file is read

    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    attrs = PixelAttrs.of(ds)
    dtype = np.dtype(f"{'i' if attrs.signed else 'u'}{max(1, attrs.bits_allocated // 8)}")
    shape = (attrs.rows, attrs.columns, attrs.samples) if attrs.samples > 1 else (attrs.rows, attrs.columns)
    frames = [decode_frame(ts, data, attrs).reshape(shape).astype(dtype, copy=False)
              for data in generate_frames(ds.PixelData, number_of_frames=nframes)]
    return frames[0] if nframes == 1 else np.stack(frames)


def decoded_bytes(ds) -> int:
    """Bytes the header's Rows x Columns x frames x samples x BitsAllocated decode to (0 when it does not say)."""
    try:
        return (int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames", 1) or 1) *
                int(ds.get("SamplesPerPixel", 1) or 1) * max(1, (int(ds.BitsAllocated) + 7) // 8))
    except (AttributeError, TypeError, ValueError):
        return 0


def decode_pixels(ds, path: Path) -> np.ndarray:
    """ds.pixel_array, any decoder failure turned into one line that names the file and what to do."""
    if not is_image(ds):
        raise InputError(f"{path}: has no pixel data (SOP class {ds.get('SOPClassUID', '?')}); not an image")
    ts = transfer_syntax(ds) or "?"
    try:
        check_fits(2 * decoded_bytes(ds), str(path))  # the decoded array and a working copy
        with quiet():
            if ts in JPEG_XL_SYNTAXES or ts == DEFLATED_IMAGE_FRAME:
                return decode_frames_here(ds, ts)
            return ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        name = getattr(ds.file_meta.get("TransferSyntaxUID"), "name", ts) if hasattr(ds, "file_meta") else ts
        if "is not supported" in str(exc) or "no pixel data decoders" in str(exc).lower():
            raise InputError(f"{path}: unsupported transfer syntax {ts} ({name}): medpipe cannot decode its "
                             "pixel data; convert the file to an uncompressed or JPEG syntax or leave it out")
        if "missing" in str(exc).lower() or "install" in str(exc).lower():
            raise InputError(f"{path}: no decoder installed for transfer syntax {ts} ({name}): install the "
                             "decoders in requirements.txt (pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, "
                             "pyjpegls)")
        raise InputError(f"{path}: pixel data cannot be decoded ({described(exc)}); damaged?")
    except MemoryError:
        raise InputError(f"{path}: pixel data too large for the memory here")
    except TooLarge as exc:
        raise InputError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on a damaged codestream
        raise InputError(f"{path}: pixel data is damaged or truncated ({described(exc)})")


def first_fragment(ds) -> bytes | None:
    """The first frame's codestream of encapsulated pixel data (None for native data or when unreadable)."""
    from pydicom.encaps import generate_frames

    try:
        if "PixelData" not in ds or not is_compressed_syntax(ds.file_meta.TransferSyntaxUID):
            return None
        nframes = int(ds.get("NumberOfFrames", 1) or 1)
        return next(generate_frames(ds.PixelData, number_of_frames=nframes))
    except Exception:  # noqa: BLE001 - a damaged encapsulation is reported by the decoder, not here
        return None


def jpeg_ls_near(stream: bytes) -> int | None:
    """NEAR of a JPEG-LS codestream's first scan (ISO 14495-1 C.2.3: SOS = Ls, Ns, Ns x (Ci, Tmi), NEAR, ...)."""
    at = stream.find(b"\xff\xda")
    if at < 0 or at + 5 > len(stream):
        return None
    ns = stream[at + 4]
    near_at = at + 5 + 2 * ns
    return stream[near_at] if near_at < len(stream) else None


def j2k_reversible(stream: bytes) -> bool | None:
    """True when a JPEG 2000 / HTJ2K codestream's COD marker names the reversible 5-3 wavelet (ISO 15444-1
    A.6.1: COD = Lcod, Scod, SGcod(4), SPcod: levels, xcb, ycb, style, transformation), False for 9-7."""
    at = stream.find(b"\xff\x52")
    if at < 0 or at + 14 > len(stream):
        return None
    return stream[at + 13] == 1


def lossy_source_of(ds) -> str:
    """"" or why this file's pixels were already lossy before medpipe read them."""
    if str(ds.get("LossyImageCompression", "")).strip() == "01":
        ratio = ds.get("LossyImageCompressionRatio")
        method = ds.get("LossyImageCompressionMethod")
        parts = [f"ratio {':'.join(str(r) for r in ratio) if isinstance(ratio, list) else ratio}" if ratio else "",
                 f"method {'/'.join(str(m) for m in method) if isinstance(method, list) else method}"
                 if method else ""]
        detail = ", ".join(p for p in parts if p)
        return f"LossyImageCompression 01 (lossy compressed earlier{'; ' + detail if detail else ''})"
    ts = transfer_syntax(ds)
    if not lossy_description(ts):
        return ""
    why = f"transfer syntax {ts}: {lossy_description(ts)}"
    stream = first_fragment(ds) if ts == JPEG_LS_NEAR_LOSSLESS or ts in J2K_LIKE else None
    if ts == JPEG_LS_NEAR_LOSSLESS and stream:
        near = jpeg_ls_near(stream)
        if near == 0:
            return ""  # the near-lossless syntax holding a NEAR=0 (lossless) codestream
        if near:
            return f"{why} with NEAR={near}"
    if ts in MAYBE_LOSSY:
        reversible = j2k_reversible(stream) if (stream and ts in J2K_LIKE) else None
        if reversible is False:
            return f"{why}; the codestream uses the irreversible 9-7 wavelet"
        if reversible and str(ds.get("LossyImageCompression", "")).strip() == "00":
            return ""  # header and codestream both say lossless
    return why


def _as_stored(value, signed: bool, bits_allocated: int) -> int | None:
    try:
        v = int(value[0] if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else value)
    except (TypeError, ValueError, IndexError):
        return None
    if signed and v >= 1 << (bits_allocated - 1):  # a negative value written with VR US
        v -= 1 << bits_allocated
    return v


def padding_of(ds, signed: bool, bits_allocated: int) -> tuple[int, int] | None:
    """Inclusive range of stored padding values (PS3.3 C.7.5.1.1.2): PixelPaddingValue alone, or the range
    between it and PixelPaddingRangeLimit (either may be the larger); None when absent."""
    value = _as_stored(ds.get("PixelPaddingValue"), signed, bits_allocated) if "PixelPaddingValue" in ds else None
    if value is None:
        return None
    limit = (_as_stored(ds.get("PixelPaddingRangeLimit"), signed, bits_allocated)
             if "PixelPaddingRangeLimit" in ds else None)
    if limit is None:
        return value, value
    return min(value, limit), max(value, limit)


def value_transform(ds) -> tuple[float, float]:
    """(slope, intercept): top-level Rescale, else the enhanced objects' shared Pixel Value Transformation."""
    try:
        if "RescaleSlope" in ds or "RescaleIntercept" in ds:
            return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        for groups in (ds.get("SharedFunctionalGroupsSequence"), ds.get("PerFrameFunctionalGroupsSequence")):
            if groups:
                seq = groups[0].get("PixelValueTransformationSequence")
                if seq:
                    return float(seq[0].get("RescaleSlope", 1) or 1), float(seq[0].get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        pass  # an unreadable rescale is reported as none rather than stopping the file
    return 1.0, 0.0


def patient_hash(ds) -> str:
    """Short hash of PatientID + PatientName: names a patient in listings without printing PHI."""
    key = f"{ds.get('PatientID', '')}|{ds.get('PatientName', '')}".encode()
    return hashlib.sha256(key).hexdigest()[:10]


def strip_pixels(ds):
    """Header copy without pixel data (kept for DICOM output and restoring)."""
    ds = ds.copy()
    for tag in PIXEL_KEYWORDS:
        if tag in ds:
            del ds[tag]
    return ds


def _floats(value, n: int) -> list[float] | None:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _shared_item(ds, sequence: str):
    """The first item of a functional group macro of an enhanced object: shared, else the first frame's."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        holder = ds.get(groups)
        if holder:
            seq = holder[0].get(sequence)
            if seq:
                return seq[0]
    return None


def orientation(ds) -> list[float] | None:
    """ImageOrientationPatient (top level, or the enhanced objects' shared Plane Orientation)."""
    iop = _floats(ds.get("ImageOrientationPatient") or [], 6)
    if iop is None:
        item = _shared_item(ds, "PlaneOrientationSequence")
        iop = _floats(item.get("ImageOrientationPatient") or [], 6) if item is not None else None
    return iop


def slice_position(ds) -> float | None:
    """Position along the slice normal (ImageOrientationPatient x ImagePositionPatient), or None."""
    iop, ipp = _floats(ds.get("ImageOrientationPatient") or [], 6), _floats(ds.get("ImagePositionPatient") or [], 3)
    if iop is None or ipp is None:
        return None
    normal = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
    return float(np.dot(normal, np.asarray(ipp)))


def frame_positions(ds) -> list[float] | None:
    """Per-frame positions along the normal of an enhanced multi-frame object (functional groups), or None."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return None
    shared_iop = orientation(ds)
    out = []
    for item in per_frame:
        seq = item.get("PlaneOrientationSequence")
        iop = _floats(seq[0].get("ImageOrientationPatient") or [], 6) if seq else shared_iop
        pos = item.get("PlanePositionSequence")
        ipp = _floats(pos[0].get("ImagePositionPatient") or [], 3) if pos else None
        if iop is None or ipp is None:
            return None
        normal = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
        out.append(float(np.dot(normal, np.asarray(ipp))))
    return out


def pixel_spacing(ds) -> tuple[float, float] | None:
    """(row spacing, column spacing) in mm: PixelSpacing, the enhanced objects' Pixel Measures, or (for
    projection X-ray) ImagerPixelSpacing."""
    for value in (ds.get("PixelSpacing"),
                  (_shared_item(ds, "PixelMeasuresSequence") or {}).get("PixelSpacing")
                  if _shared_item(ds, "PixelMeasuresSequence") is not None else None,
                  ds.get("ImagerPixelSpacing")):
        pair = _floats(value or [], 2)
        if pair and all(v > 0 for v in pair):
            return pair[0], pair[1]
    return None


def nominal_slice_spacing(ds) -> float | None:
    """SpacingBetweenSlices, else SliceThickness (top level or Pixel Measures): the slice spacing when positions
    cannot give it."""
    item = _shared_item(ds, "PixelMeasuresSequence")
    for holder in (ds, item):
        if holder is None:
            continue
        for kw in ("SpacingBetweenSlices", "SliceThickness"):
            try:
                v = float(holder.get(kw) or 0)
            except (TypeError, ValueError):
                continue
            if v > 0:
                return v
    return None
