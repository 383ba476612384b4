"""JPEG XL JPEG Recompression (.111) of COLOUR baseline JPEG sources -- ultrasound, endoscopy, secondary captures
stored as .50 in YBR_FULL_422, YBR_FULL or RGB: the matrix row (the JPEG bytes back bit for bit, and its values,
converted to grey by the loader's own conversion, equal to the loaded volume), its DICOM output (the same colour
instance), and the archive (the original files back byte for byte). Real files: pydicom's DCMTK / highdicom secondary
captures and its 30-frame ultrasound; slow: the dev data's US cine stored as colour YBR_FULL_422 JPEG."""
from __future__ import annotations

import copy
import shutil
import subprocess

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGBaseline8Bit, generate_uid

import interop
from conftest import shared
from helpers import row_of
from medpipe.codecs import frames
from medpipe.dicom.writer import DicomSink
from medpipe.errors import InputError
from medpipe.syntaxes import JPEGXLJPEGRecompression, PixelAttrs
from medpipe.volumes import load_volume
from medpipe.volumes.colour import to_gray

# (file, Photometric Interpretation): DCMTK's YBR_FULL, a highdicom RGB JPEG without colour transform (Adobe
# APP14), and a real 30-frame ultrasound (YBR_FULL_422 in the header; its JPEG frames are 4:2:0)
SOURCES = [("SC_rgb_jpeg_dcmtk.dcm", "YBR_FULL"), ("SC_jpeg_no_color_transform.dcm", "RGB"),
           ("examples_ybr_color.dcm", "YBR_FULL_422")]


def _jpegs(path) -> list[bytes]:
    ds = pydicom.dcmread(path)
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


def _series(tmp_path, name: str):
    folder = tmp_path / "src" / name.split(".")[0]
    folder.mkdir(parents=True)
    shutil.copy(get_testdata_file(name), folder / name)
    return load_volume(folder)


def _rewrapped_as_50(path, out):
    """The written .111 file with each frame's JPEG rebuilt by djxl (another libjxl than the encoder's), as .50:
    dicom3tools 1.00~20220618 cannot parse .111, so its checks run on the attributes medpipe wrote around the
    JPEG that djxl reconstructs."""
    ds = pydicom.dcmread(path)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    rebuilt = []
    for i, stream in enumerate(generate_frames(ds.PixelData, number_of_frames=n)):
        (out.parent / f"{i}.jxl").write_bytes(stream)
        subprocess.run(["djxl", str(out.parent / f"{i}.jxl"), str(out.parent / f"{i}.jpg")], check=True,
                       capture_output=True)
        rebuilt.append((out.parent / f"{i}.jpg").read_bytes())
    ds.PixelData = encapsulate(rebuilt)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(out, enforce_file_format=True)
    return rebuilt


@pytest.mark.parametrize("name,photometric", SOURCES)
def test_a_colour_jpeg_row_and_its_dicom_output(tmp_path, ctx, name, photometric):
    volume = _series(tmp_path, name)
    assert volume.color.endswith("-> 8-bit grey (BT.601 luma)")
    row = row_of(volume, {"codec": "jpegxl-jpeg", "label": "jpegxl-jpeg"}, ctx, sink=DicomSink(tmp_path / "out", ctx))
    # lossless: the round trip compared its decoded values, converted as the loader did, with the loaded volume
    assert row["status"] == "ok" and row["lossless"] and row["dicom_ts"] == JPEGXLJPEGRecompression, row["reason"]
    assert "against the source's own JPEG" in row["reason"] and "bit for bit" in row["reason"]
    source = volume.files[0]
    src, (path,) = pydicom.dcmread(source), sorted((tmp_path / "out").rglob("*.dcm"))
    out = pydicom.dcmread(path)
    # the same instance, its colour Image Pixel module kept (PS3.5 8.2.15: as the JPEG it reconstructs)
    assert out.SOPInstanceUID == src.SOPInstanceUID and out.SeriesInstanceUID == src.SeriesInstanceUID
    assert (out.SamplesPerPixel, out.PhotometricInterpretation, out.PlanarConfiguration) == (3, photometric, 0)
    for kw in ("LossyImageCompression", "LossyImageCompressionRatio", "ImageType", "StudyInstanceUID"):
        assert out.get(kw) == src.get(kw), kw
    n = int(src.get("NumberOfFrames", 1) or 1)
    streams = list(generate_frames(out.PixelData, number_of_frames=n))
    assert [frames.original_jpeg(s) for s in streams] == _jpegs(source)
    # (b) by hand: the JPEG it gives back, decoded and converted to grey, is the loaded volume
    attrs = PixelAttrs.of(out)
    grey = np.stack([to_gray(frames.decode_frame(JPEGXLJPEGRecompression, s, attrs)) for s in streams])
    assert np.array_equal(grey, volume.pixels)
    if shutil.which("djxl") and shutil.which("dciodvfy"):
        assert _rewrapped_as_50(path, tmp_path / "djxl.dcm") == _jpegs(source)
        added = interop.dciodvfy_errors(tmp_path / "djxl.dcm") - interop.dciodvfy_errors(source)
        assert not added, added


def test_a_colour_row_whose_values_differ_is_not_lossless(tmp_path, ctx):
    """The comparison is real: one loaded sample changed by one and the row no longer passes as exact."""
    volume = _series(tmp_path, "SC_rgb_jpeg_dcmtk.dcm")
    volume.pixels = volume.pixels.copy()
    volume.pixels[0, 50, 50] ^= 1
    row = row_of(volume, {"codec": "jpegxl-jpeg"}, ctx)
    assert row["status"] != "ok" or not row["lossless"], row


def test_a_colour_conversion_it_cannot_reproduce_skips_with_the_reason(tmp_path, ctx):
    volume = _series(tmp_path, "SC_rgb_jpeg_dcmtk.dcm")
    volume.color_mode = ""  # a volume whose colour conversion is not one the loader names
    row = row_of(volume, {"codec": "jpegxl-jpeg"}, ctx)
    assert row["status"] == "skipped" and "cannot reproduce that conversion" in row["reason"], row


def test_colour_coded_per_component_is_reproduced_too(tmp_path, ctx):
    """color: components (3 grey planes per image) is the loader's other conversion: reproduced, not written."""
    folder = tmp_path / "c"
    folder.mkdir()
    shutil.copy(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"), folder / "a.dcm")
    volume = load_volume(folder, options={"color": "components"})
    assert volume.shape == (3, 100, 100)
    row = row_of(volume, {"codec": "jpegxl-jpeg"}, ctx, sink=DicomSink(tmp_path / "out", ctx))
    assert row["status"] == "ok" and row["lossless"], row["reason"]
    assert "no single DICOM form" in row["reason"] and row["dicom_ts"] is None


# ---------------------------------------------------------------- archive

def test_a_colour_jpeg_series_is_archived_from_its_own_jpeg_frames(tmp_path, ctx):
    """The jpegxl-jpeg candidate keeps each colour file's JPEG frames; nothing that codes the grey slices is tried;
    verify passes; extract gives the files back byte for byte (the DCMTK file has a Basic Offset Table, the
    highdicom one an empty one); other output syntaxes are refused for colour."""
    from medpipe.archive import ArchiveError, Settings, build_archive, extract_archive, verify_archive

    vols = [_series(tmp_path, n) for n, _ in SOURCES[:2]]
    arc = tmp_path / "arc"
    index = build_archive(vols, arc, Settings(candidates=["jpegxl-jpeg", "jpegxl", "jpegxl-dicom"], effort=1), ctx)
    assert len(index["groups"]) == 2
    for g in index["groups"]:
        assert g["candidate"] == "jpegxl-jpeg" and g["lossless"]
        assert [c["candidate"] for c in g["candidates"]] == ["jpegxl-jpeg"]  # grey-value candidates never tried
    assert [f["jpeg_bot"] for s in index["scans"] for f in s["files"]] == [True, False]
    verify_archive(arc, ctx)
    folders = extract_archive(arc, tmp_path / "out", ctx)
    for folder, vol in zip(folders, vols):
        assert [p.read_bytes() for p in sorted(folder.iterdir())] == [vol.files[0].read_bytes()]
    with pytest.raises(ArchiveError, match="colour"):
        extract_archive(arc, tmp_path / "out2", ctx, syntax="jpegxl")
    with pytest.raises(ArchiveError, match="only by the jpegxl-jpeg candidate"):
        build_archive(vols[:1], tmp_path / "arc2", Settings(candidates=["jpegxl"], effort=1), ctx)


def test_other_colour_series_are_refused_in_one_line(tmp_path, ctx):
    from medpipe.archive import Settings, build_archive

    native = _series(tmp_path, "examples_rgb_color.dcm")  # colour, Explicit VR Little Endian
    with pytest.raises(InputError, match="colour images cannot be archived exactly"):
        build_archive([native], tmp_path / "arc", Settings(effort=1), ctx)
    assert not (tmp_path / "arc").exists()


def test_colour_and_grey_scans_are_never_grouped():
    from medpipe.archive.plan import meta_mismatch
    from medpipe.archive.settings import Settings

    grey = {"size": (100, 100), "colour": False, "modality": "OT"}
    assert "colour" in meta_mismatch(grey, {**grey, "colour": True}, Settings())


# ---------------------------------------------------------------- a colour ultrasound cine (dev data)

def colour_ultrasound(folder):
    """The dev data's Philips US cine (27 x 600 x 800, grey) COLOURISED -- the dev data has no colour ultrasound:
    a real colour picture (the dev data's IHC microscopy image, skimage's ihc.png) blended into a 256 x 256 box
    of each frame, moving one row of the picture per 8 frames, as a colour Doppler box sits on the B-mode image --
    then stored as an ultrasound archive holds it: JPEG Baseline (.50), quality 85, YBR_FULL_422 (4:2:2 chroma
    subsampling, asked of libjpeg explicitly: imagecodecs' default is 4:2:0), no JFIF APP0 (PS3.5 8.2.1 Note 3),
    one fragment per frame. Returns the file."""
    src = pydicom.dcmread(shared("us/philips_greyscale_cine.dcm"))
    ihc = imagecodecs.png_decode(shared("pathology/skimage_ihc.png").read_bytes())[..., :3].astype(np.float64)
    jpegs = []
    for k, grey in enumerate(src.pixel_array):
        rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float64)
        box = rgb[200:456, 272:528]
        rgb[200:456, 272:528] = 0.4 * box + 0.6 * ihc[k * 8:k * 8 + 256, 128:384]
        jpeg = frames.strip_jpeg_wrappers(bytes(imagecodecs.jpeg8_encode(np.rint(rgb).astype(np.uint8), level=85,
                                                                           subsampling="422")))
        sof = jpeg.find(b"\xff\xc0")
        assert [jpeg[sof + 11 + 3 * c] for c in range(3)] == [0x21, 0x11, 0x11]  # Y 2x1, Cb and Cr 1x1: 4:2:2
        jpegs.append(jpeg)
    ds = copy.deepcopy(src)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate(jpegs)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
    ds.LossyImageCompressionRatio = round(src.pixel_array.size * 3 / sum(len(j) for j in jpegs), 2)
    folder.mkdir(parents=True)
    ds.save_as(folder / "cine.dcm", enforce_file_format=True)
    return folder / "cine.dcm"


@pytest.mark.slow
def test_a_colour_ultrasound_cine(tmp_path, ctx):
    """Row, DICOM output (the same multi-frame colour instance) and archive of a 27-frame YBR_FULL_422 cine."""
    from medpipe.archive import Settings, build_archive, extract_archive, verify_archive

    path = colour_ultrasound(tmp_path / "us")
    volume = load_volume(tmp_path / "us")
    assert volume.shape == (27, 600, 800) and volume.color.startswith("YBR_FULL_422")
    row = row_of(volume, {"codec": "jpegxl-jpeg", "label": "jpegxl-jpeg"}, ctx, sink=DicomSink(tmp_path / "dcm", ctx))
    assert row["status"] == "ok" and row["lossless"] and row["dicom_ts"] == JPEGXLJPEGRecompression, row["reason"]
    print("\n", row["reason"])
    out = pydicom.dcmread(next((tmp_path / "dcm").rglob("*.dcm")))
    assert out.SOPInstanceUID == pydicom.dcmread(path).SOPInstanceUID and out.NumberOfFrames == 27
    assert (out.SamplesPerPixel, out.PhotometricInterpretation) == (3, "YBR_FULL_422")
    assert [frames.original_jpeg(f) for f in generate_frames(out.PixelData, number_of_frames=27)] == _jpegs(path)
    arc = tmp_path / "arc"
    index = build_archive([volume], arc, Settings(effort=1), ctx)  # every candidate: only .111 may take colour
    assert index["groups"][0]["candidate"] == "jpegxl-jpeg"
    assert [c["candidate"] for c in index["groups"][0]["candidates"]] == ["jpegxl-jpeg"]
    verify_archive(arc, ctx)
    folder = extract_archive(arc, tmp_path / "out", ctx)[0]
    assert next(folder.iterdir()).read_bytes() == path.read_bytes()
