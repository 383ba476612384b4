"""Write each verified cell as standard DICOM, one series per (volume, configuration).

What a row writes (``<run>/<folder>/<volume>/<label>/``, one file per source file, the source's file names):

- **Lossless** (a lossless codec on an exact mapping): the *same instance*. Every attribute of the source stays,
  every UID and every Image Pixel module attribute included; only the transfer syntax and the encapsulation
  change. The frames hold the source's stored values, coded as PS3.5 says for that syntax
  (:mod:`medpipe.codecs.frames` cites the sections; signed data stays signed). The benchmark coded the mapped values
  (signed CT offset by its minimum), so such frames are coded again from the stored values. The benchmark's own
  stream is reused, frame by frame, only when the mapping is the identity and the stream passes the syntax's
  checks for the source's attributes (:func:`.validate.frame_problems`) -- in practice RLE of unsigned data, and
  JPEG-LS / HTJ2K (.201) / JPEG 2000 / JPEG XL frames of unsigned data whose codestream precision is Bits
  Stored; never .202 (the benchmark's HTJ2K has no TLM) and never signed data in the JPEG family, whose bit
  pattern differs from the offset values.
- **Offset copy** (``offset_copy: true``, rows whose mapping offsets the values): the offset values, PS3.5-coded,
  as a new *derived* series in ``<volume>/_offset/<label>/`` (new SOP and Series Instance UIDs, Image Type
  DERIVED, Derivation Description, Pixel Representation 0, Bits Stored and Rescale Intercept adjusted so the
  modality values are unchanged). Its size and CR are in the row's reason; ``cr`` stays the benchmark's.
- **Lossy**: the benchmark's streams as a derived series (PS3.3 C.7.6.1.1.5; the method term from the codec's
  ``lossy_method``). A colour source coded as grey is a derived MONOCHROME2 series either way.
- **Video** (H.264 / HEVC): :mod:`.video`, through the run's ffmpeg runner.
- ``deflated: true`` adds, per volume, the same instances in Deflated Image Frame Compression (.8.1) in
  ``<volume>/_deflated/`` (no codec row codes it; :meth:`DicomSink.finish`).

Every file is checked before its series folder is renamed into place: its encapsulation and each frame against
the syntax's rules, then every frame decoded and compared with the values it must hold (:mod:`.validate`). Fills
``dicom_ts``, ``dicom_dir``, ``dicom_bytes`` (the pixel data as stored, :mod:`.part10`) and ``dicom_cr`` =
raw_bytes / dicom_bytes. Folder names starting with "_" never come from a label (labels are made safe, and a safe
name never starts with "_").
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ..codecs.frames import encode_frame, strip_jpeg_wrappers
from ..errors import CodecSkip, DamagedInput, MedpipeError, OutputError, described
from ..files import atomic_folder, os_error, safe_component
from ..options import Option
from ..syntaxes import TABLE, JPEGXLJPEGRecompression, pixel_module_problems
from .header import (DROP_TAGS, SOURCE_FOR_PROCESSING, TYPE2_FILL, derive, fit_stored_values, grey_pixel_module,
                     mark_lossy, mark_offset_copy)
from .part10 import save
from .streaminfo import codestream_info, read_items
from .syntaxes import (DEFLATED_IMAGE_FRAME, HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, J2K_FAMILY, JPEG_FAMILY, JXL_FAMILY,
                       SYNTAXES, NotWritable, PixelAttrs)
from .validate import check_file, decode_frames, frame_problems
from .video import VIDEO_TS, write_video

DICOM_OPTIONS: dict[str, Option] = {
    "folder": Option(str, "dicom", "sub-folder of the run folder"),
    "offset_table": Option(str, "basic", "offset table of multi-frame objects", ("basic", "extended")),
    "verify": Option(bool, True, "decode every written frame and compare it with the values it must hold"),
    "htj2k": Option(str, "rpcl", "HTJ2K rows: rpcl = HTJ2K Lossless RPCL (.202, what AWS HealthImaging stores), "
                    "plain = HTJ2K Lossless (.201)", ("rpcl", "plain")),
    "offset_copy": Option(bool, False, "also write lossless rows of offset data as a derived series in the "
                          "offset-coded form (_offset/<label>/)"),
    "deflated": Option(bool, False, "also write each volume in Deflated Image Frame Compression (.8.1), _deflated/"),
    "send": Option((str, dict), None, "after the run, send the lossless series by C-STORE to AET@HOST:PORT"),
    "send_lossy": Option(bool, False, "send the lossy (derived) series too"),
}
SAME, GREY, OFFSET, LOSSY = "same instance", "grey", "offset copy", "lossy"
OFFSET_DIR, DEFLATED_DIR = "_offset", "_deflated"


def choose_syntax(volume, spec, uid: str | None, htj2k: str = "rpcl") -> str:
    """The transfer syntax to write, from the row's ``dicom_ts`` (the codec's table, filled by the cell), or
    NotWritable."""
    if not volume.headers:
        raise NotWritable("no DICOM written: the source is not DICOM (PNG input) and has no header to keep")
    if any(n.startswith("colour") and "per component" in n for n in volume.notes):
        raise NotWritable("no DICOM written: colour coded per component (color: components) has no single "
                          "DICOM form; use color: gray")
    if not uid:
        raise NotWritable(spec.codec.dicom_syntax(volume.shape)[1] or
                          "no DICOM written: the value mapping loses precision before a lossless codec")
    return HTJ2K_LOSSLESS_RPCL if uid == HTJ2K_LOSSLESS and htj2k == "rpcl" else uid


def kind_of(volume, codec, dmap, uid: str) -> str:
    """Same instance only where the values are unchanged and the table says the syntax may keep it. A colour
    source's .111 streams are its own colour JPEG: the same instance too, not a grey derived series."""
    if not (codec.lossless and dmap.exact) or not TABLE[uid].keeps_instance:
        return LOSSY
    colour = any(n.startswith("colour") for n in volume.notes)
    return GREY if colour and uid != JPEGXLJPEGRecompression else SAME


def recompressed_pixel_module(ds, uid: str, colour: dict | None):
    """The Image Pixel module of a .111 instance, which is the source's own (its JPEG bitstream, re-coded): PS3.5
    8.2.15 wants the Pixel Data related attributes "consistent with the characteristics of the compressed data
    stream", for .111 the reconstructed JPEG (Table 8.2.15-1: as baseline JPEG, PS3.5 8.2.1): Samples per Pixel 3,
    Photometric Interpretation YBR_FULL_422 / YBR_FULL / RGB as the source says, 8 bits, and Planar Configuration 0
    (irrelevant to a coding that interleaves components itself, hence 0 as 8.2.1 and 8.2.4 say; PS3.3 C.7.6.3.1.3
    requires 0 for YBR_FULL_422). Returns the check's conversion of a decoded colour frame (None for grey)."""
    from ..volumes.colour import colour_to_slices

    if int(ds.get("SamplesPerPixel", 1) or 1) == 3:
        ds.PlanarConfiguration = 0
    attrs = PixelAttrs.of(ds)
    problems = pixel_module_problems(uid, attrs.samples, attrs.photometric, int(attrs.signed), attrs.bits_allocated,
                                     attrs.bits_stored, attrs.high_bit, attrs.planar)
    if problems:
        raise NotWritable("no DICOM written: " + "; ".join(problems))
    if not colour:
        return None
    if colour["mode"] != "gray" or colour["photometric"] != attrs.photometric:
        raise NotWritable(f"no DICOM written: the streams were decoded as {colour}, the header says "
                          f"{attrs.photometric}")
    return lambda rgb: colour_to_slices(rgb, colour["photometric"], colour["mode"])[0][0]


def file_groups(volume) -> list[list[int]]:
    """The slice indices each written file holds, in the file's stored frame order (a multi-frame source's
    frames go back where they were, so per-frame functional groups still describe them)."""
    n, headers = volume.shape[0], volume.headers
    if len(headers) == n:
        return [[i] for i in range(n)]
    if len(headers) == 1 and int(headers[0].get("NumberOfFrames", 1) or 1) == n:
        order = getattr(volume, "frame_order", None)
        return [sorted(range(n), key=lambda i: order[i]) if order else list(range(n))]
    raise NotWritable(f"no DICOM written: {len(headers)} source header(s) for {n} slices")


class DicomSink:
    """``sink(volume, spec, result)``, called by the matrix at the client for each finished cell
    (:class:`medpipe.matrix.CellResult`): writes a verified cell's streams with its value mapping (module docstring)
    and records what it wrote in the cell's row. ``ctx`` is the run's codec context: DICOM video uses its ffmpeg
    runner."""

    needs_streams = True  # the matrix sends the verified streams back from the workers for it

    def __init__(self, root: Path, ctx, offset_table: str = "basic", verify: bool = True, console=None,
                 htj2k: str = "rpcl", offset_copy: bool = False, deflated: bool = False):
        self.root = Path(root)
        self.ctx = ctx
        self.offset_table = offset_table
        self.verify = verify
        self.console = console
        self.htj2k = htj2k
        self.offset_copy = offset_copy
        self.deflated = deflated
        self.last_reused = 0  # benchmark frames reused as they were in the last series (tests read it)
        self.extras: list[dict] = []  # series written besides the rows' own: offset copies, Deflated Image Frame

    @classmethod
    def from_options(cls, root: Path, ctx, options: dict, console=None) -> "DicomSink":
        return cls(root, ctx, offset_table=options["offset_table"], verify=options["verify"], console=console,
                   htj2k=options["htj2k"], offset_copy=options["offset_copy"], deflated=options["deflated"])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["console"] = None
        return state

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def __call__(self, volume, spec, result) -> None:
        row, dmap, enc = result.row, result.mapping, result.encoded
        if enc is None or row.status != "ok":
            return  # nothing verified to write
        final = self.root / safe_component(volume.name) / safe_component(spec.label)
        try:
            uid = choose_syntax(volume, spec, row.dicom_ts, self.htj2k)
            kind = kind_of(volume, spec.codec, dmap, uid)
            if uid in VIDEO_TS:
                size = self.write(final, lambda tmp: write_video(self.ctx, volume, spec, dmap, enc, uid, tmp)[1])
            else:
                size = self.write(final, lambda tmp: self.write_series(volume, uid, kind, tmp, spec.label,
                                                                       spec.codec, dmap, enc))
        except NotWritable as exc:
            row.update(dicom_ts=None, dicom_dir=None, reason=_join(row.reason, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - the codec's row stays; say what went wrong with DICOM
            self.failed(exc, final, volume, spec, row)
            return
        row.update(dicom_ts=uid, dicom_dir=str(final), dicom_bytes=size, dicom_cr=volume.raw_bytes / size)
        if self.offset_copy and kind == SAME and getattr(dmap, "kind", "") == "depth" and dmap.offset:
            self.write_offset_copy(volume, spec, dmap, enc, uid, row)

    def failed(self, exc: Exception, final: Path, volume, spec, row) -> None:
        if isinstance(exc, OutputError):
            raise exc  # disk full, read-only: the run stops with one line (finished cells stay in the store)
        if isinstance(exc, OSError):
            raise os_error(exc, final) from None
        row.update(dicom_ts=None, dicom_dir=None, status="failed",
                   reason=_join(row.reason, f"DICOM not written: {described(exc)}"))
        self.say(f"[red]DICOM output failed[/] for {volume.name} / {spec.label}: {described(exc)}")

    def write_offset_copy(self, volume, spec, dmap, enc, uid: str, row) -> None:
        final = self.root / safe_component(volume.name) / OFFSET_DIR / safe_component(spec.label)
        try:
            size = self.write(final, lambda tmp: self.write_series(volume, uid, OFFSET, tmp, spec.label, spec.codec,
                                                                   dmap, enc))
        except NotWritable as exc:
            row.reason = _join(row.reason, f"offset copy not written: {exc}")
            return
        except Exception as exc:  # noqa: BLE001
            self.failed(exc, final, volume, spec, row)
            return
        row.reason = _join(row.reason, f"offset copy (derived series, stored values {-dmap.offset:+d}): "
                                                 f"{size} bytes, CR {volume.raw_bytes / size:.3f}, {final}")
        self.extras.append(_record(volume, uid, OFFSET, final, size, spec.label))

    def finish(self, volumes) -> list[dict]:
        """After the matrix: the extra per-volume series (``deflated``); returns a record of every series written
        besides the rows' own (offset copies, Deflated Image Frame)."""
        for volume in volumes if self.deflated else []:
            final = self.root / safe_component(volume.name) / DEFLATED_DIR
            try:
                choose_syntax(volume, None, DEFLATED_IMAGE_FRAME)
                kind = GREY if any(n.startswith("colour") for n in volume.notes) else SAME
                size = self.write(final, lambda tmp: self.write_series(volume, DEFLATED_IMAGE_FRAME, kind, tmp,
                                                                       "Deflated Image Frame"))
            except NotWritable as exc:
                self.say(f"Deflated Image Frame: {volume.name}: {exc}")
                continue
            except OutputError:
                raise
            except OSError as exc:
                raise os_error(exc, final) from None
            except Exception as exc:  # noqa: BLE001 - the matrix's results still get written
                self.say(f"[red]Deflated Image Frame not written[/] for {volume.name}: {described(exc)}")
                continue
            self.extras.append(_record(volume, DEFLATED_IMAGE_FRAME, kind, final, size))
        return self.extras

    # -- writing
    @staticmethod
    def write(final: Path, fill) -> int:
        """Run ``fill(tmp)`` into a temporary folder and rename it to ``final`` when complete: never a
        half-written series under the final name. Returns what ``fill`` returns (the pixel data bytes)."""
        with atomic_folder(final, replace=True) as tmp:
            return fill(tmp)

    def write_series(self, volume, uid: str, kind: str, folder: Path, label: str, codec=None, dmap=None,
                     enc=None) -> int:
        """One file per source file in `folder`, each checked (module docstring); the pixel data bytes."""
        from pydicom.uid import generate_uid

        if kind == LOSSY and uid in SYNTAXES:
            raise NotWritable(f"no DICOM written: {SYNTAXES[uid].name} is lossless, the values are not")
        recompressed = uid == JPEGXLJPEGRecompression  # the row's .111 streams: the source's JPEG, re-coded
        if kind != LOSSY and uid not in SYNTAXES and not recompressed:
            raise NotWritable(f"no DICOM written: {uid} is not a lossless syntax medpipe writes")
        n = volume.shape[0]
        chunks = enc.chunks if enc is not None and len(enc.chunks) == n else None
        if (kind == LOSSY or recompressed) and chunks is None:
            raise NotWritable(f"no DICOM written: {len(enc.chunks)} codestreams for {n} slices")
        reuse = kind == OFFSET or (kind in (SAME, GREY) and getattr(dmap, "identity", False))
        lossy_bits = self.lossy_bits(dmap, enc, uid) if kind == LOSSY else None
        effort = codec.p.get("effort") if codec is not None else None
        series_uid = None if kind == SAME else generate_uid()
        total, self.last_reused = 0, 0
        for k, idx in enumerate(file_groups(volume)):
            ds = copy.deepcopy(volume.headers[k])  # file k holds group k
            for _ in ds.iterall():
                pass  # decode every raw element: pydicom writes a still-raw implicit-VR element with no VR (TypeError)
            for kw in DROP_TAGS:
                ds.pop(kw, None)
            if kind != SAME:  # a new instance, made by medpipe: its Type 2 attributes exist (possibly empty)
                for kw in TYPE2_FILL:
                    if kw not in ds:
                        setattr(ds, kw, None)
            if kind in (GREY, LOSSY) and any(n.startswith("colour") for n in volume.notes):
                grey_pixel_module(ds)
            expected, convert = None, None
            if kind == LOSSY:
                fit_stored_values(ds, volume, dmap, *lossy_bits)
                frames = [strip_jpeg_wrappers(chunks[i]) for i in idx]
                raw = volume.shape[1] * volume.shape[2] * volume.bits_allocated // 8 * len(idx)
                mark_lossy(ds, codec.lossy_method, raw / max(1, sum(len(f) for f in frames)), series_uid, label)
            else:
                if kind == GREY:
                    derive(ds, series_uid, f"coded losslessly by medpipe ({label})", label, SOURCE_FOR_PROCESSING)
                elif kind == OFFSET:
                    fit_stored_values(ds, volume, dmap, max(1, dmap.bits_in), volume.bits_allocated)
                    mark_offset_copy(ds, dmap.offset, series_uid, label)
                if recompressed:
                    convert = recompressed_pixel_module(ds, uid, enc.side.get("colour"))
                attrs = PixelAttrs.of(ds)
                expected = [dmap.forward(volume.pixels[i]) if kind == OFFSET else volume.pixels[i] for i in idx]
                frames = [chunks[i] for i in idx] if recompressed else [
                    self.frame(uid, values, attrs, chunks[i] if reuse and chunks else None, effort)
                    for values, i in zip(expected, idx)]
            name = safe_component(volume.files[k].name) if k < len(volume.files) else f"{k + 1:04d}.dcm"
            path = folder / name
            total += save(ds, uid, frames, path, self.offset_table if len(idx) > 1 else "basic")
            self.check(path, uid, expected, kind, volume, idx, codec, dmap, convert)
        return total

    def frame(self, uid: str, values: np.ndarray, attrs: PixelAttrs, candidate: bytes | None, effort) -> bytes:
        """The benchmark's codestream when it already is what PS3.5 wants for these attributes, else the values
        coded anew (:func:`medpipe.codecs.frames.encode_frame`)."""
        if candidate is not None:
            stream = strip_jpeg_wrappers(bytes(candidate))
            if not frame_problems(uid, stream, attrs):
                self.last_reused += 1
                return stream
        try:
            return encode_frame(uid, values, attrs.bits_stored, attrs.signed, bits_allocated=attrs.bits_allocated,
                                photometric=attrs.photometric, planar_configuration=attrs.planar, effort=effort)
        except (CodecSkip, DamagedInput) as exc:
            raise NotWritable(f"no DICOM written: {exc}") from None

    @staticmethod
    def lossy_bits(dmap, enc, uid: str) -> tuple[int, int]:
        """(Bits Stored, Bits Allocated) describing a lossy series' coded values: the codestreams' precision where
        they say it (it must agree with Bits Stored, PS3.5 8.2), else the mapped values' width."""
        precision = 0
        if uid in J2K_FAMILY or uid in JPEG_FAMILY or uid in JXL_FAMILY:
            precision = max(codestream_info(uid, strip_jpeg_wrappers(c)).get("precision") or 0 for c in enc.chunks)
        allocated = 8 if np.dtype(enc.dtype).itemsize == 1 else 16
        needed = dmap.bits_out if dmap.shift else max(1, int(dmap.hi - dmap.offset).bit_length())
        return min(allocated, max(needed, precision)), allocated

    # -- verification
    def check(self, path: Path, uid: str, expected, kind: str, volume, idx: list[int], codec, dmap,
              convert=None) -> None:
        """Before the series is renamed into place: the file's structure and frames against the syntax's rules,
        then (``verify``) every frame decoded: exactly the values it must hold (lossless; ``convert``: a colour
        frame as the loader converted it), or within the codec's bound of the source's modality values (lossy)."""
        problems = check_file(path, uid, expected if self.verify else None, convert)
        if not problems and self.verify and kind == LOSSY:
            problems = self.lossy_problems(path, uid, volume, idx, codec, dmap)
        if problems:
            raise MedpipeError(f"{path.name}: " + "; ".join(problems[:3]))

    @staticmethod
    def lossy_problems(path: Path, uid: str, volume, idx: list[int], codec, dmap) -> list[str]:
        import pydicom

        from ..volumes.dicom import value_transform

        ds = pydicom.dcmread(path)
        decoded = decode_frames(ds, uid, [data for _, data in read_items(ds.PixelData)[1:]])
        if decoded is None:
            return [f"cannot verify: no decoder for transfer syntax {uid} is installed here"]
        slope, intercept = value_transform(ds)
        have = np.stack(decoded).astype(np.float64) * slope + intercept
        want = volume.pixels[idx].astype(np.float64) * volume.rescale_slope + volume.rescale_intercept
        err = float(np.abs(have - want).max())
        if codec.error_bound is not None and dmap.exact and err > codec.error_bound * abs(volume.rescale_slope) + 1e-6:
            return [f"decodes with max error {err} in modality values, over the codec's bound {codec.error_bound}"]
        return []


def _record(volume, uid: str, kind: str, folder: Path, size: int, label: str = "-") -> dict:
    return {"volume": volume.name, "label": label, "transfer_syntax": uid, "kind": kind, "folder": str(folder),
            "dicom_bytes": size, "dicom_cr": volume.raw_bytes / size}


def _join(a, b) -> str:
    return f"{a}; {b}" if a else b
