"""Input facts the metrics and reports rely on (issue 10): padding from PixelPaddingValue/RangeLimit, the signal
range without it, spacing, a source that was lossy before medpipe touched it, and colour reduced to grey -- said
on the console and recorded in the volume."""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000, JPEGLSNearLossless
from rich.console import Console

from medpipe.volumes import load_dicom_files, load_inputs, load_volume
from medpipe.volumes.dicom import lossy_source_of, padding_of

from conftest import SAMPLE, shared

SLICES = sorted(SAMPLE.glob("*.dcm"))


def test_chest_ct_padding_is_left_out_of_the_signal_range():
    files = sorted(shared("ct_chest/acrin_flt_breast_001/series_2_805941").glob("*.dcm"))[40:46]
    vol = load_dicom_files(files, "chest")
    assert vol.padding == (-2000, -2000) and pydicom.dcmread(files[0]).PixelPaddingValue == -2000
    assert vol.padding_count == int((vol.pixels == -2000).sum()) > 0
    signal = vol.pixels[vol.pixels != -2000]
    assert vol.signal_range == (int(signal.min()), int(signal.max())) and vol.value_range[0] == -2000
    assert vol.signal_bits < vol.span_bits  # -2000 padding would inflate the PSNR peak's B
    assert np.array_equal(vol.padding_mask(), vol.pixels == -2000)
    assert vol.spacing == pytest.approx((4.25, 0.976562, 0.976562))
    facts = vol.describe()
    assert facts["padding"] == [-2000, -2000] and facts["signal_bits"] == vol.signal_bits
    assert facts["spacing_mm"] == list(vol.spacing)


def test_padding_range_limit_and_a_negative_value_written_as_us(tmp_path):
    """PS3.3 C.7.5.1.1.2: PixelPaddingValue with PixelPaddingRangeLimit is a range (either end first)."""
    ds = pydicom.dcmread(SLICES[0])
    ds.PixelPaddingValue, ds.PixelPaddingRangeLimit = -1000, -1500
    assert padding_of(ds, True, 16) == (-1500, -1000)
    del ds.PixelPaddingRangeLimit
    ds["PixelPaddingValue"].VR = "US"
    ds.PixelPaddingValue = 63536  # -2000 in 16-bit two's complement, as some writers store it
    assert padding_of(ds, True, 16) == (-2000, -2000)
    folder = tmp_path / "pad"
    for p in SLICES[:3]:
        d = pydicom.dcmread(p)
        d.PixelPaddingValue, d.PixelPaddingRangeLimit = -1500, -1000
        d["PixelPaddingRangeLimit"].VR = "SS"  # VR 'US or SS' must be resolved before writing
        folder.mkdir(exist_ok=True)
        d.save_as(folder / p.name, enforce_file_format=True)
    vol = load_volume(folder)
    inside = (vol.pixels >= -1500) & (vol.pixels <= -1000)
    assert vol.padding == (-1500, -1000) and vol.padding_count == int(inside.sum())
    assert vol.signal_range[0] > -1000 or vol.signal_range[1] < -1500


def test_lossy_history_is_flagged_from_header_and_codestream():
    src = SLICES[10]
    near0, near2, j2k = pydicom.dcmread(src), pydicom.dcmread(src), pydicom.dcmread(src)
    near0.compress(JPEGLSNearLossless, jls_error=0)
    near2.compress(JPEGLSNearLossless, jls_error=2)
    j2k.compress(JPEG2000, j2k_cr=[20])
    assert lossy_source_of(near0) == ""  # the near-lossless syntax holding a NEAR=0 codestream is lossless
    assert "NEAR=2" in lossy_source_of(near2)
    assert "irreversible 9-7 wavelet" in lossy_source_of(j2k)
    plain = pydicom.dcmread(src)
    assert lossy_source_of(plain) == ""
    plain.LossyImageCompression, plain.LossyImageCompressionRatio = "01", 8.5
    plain.LossyImageCompressionMethod = "ISO_10918_1"
    assert lossy_source_of(plain) == ("LossyImageCompression 01 (lossy compressed earlier; ratio 8.5, "
                                      "method ISO_10918_1)")


def test_svs_pathology_is_read_as_lossy_jpeg_reduced_to_grey(tmp_path):
    console = Console(record=True, width=300)
    vols, errors = load_inputs([shared("pathology/cmu1_small_region.svs")], console)
    assert not errors and vols[0].shape == (1, 2967, 2220) and vols[0].pixels.dtype == np.uint8
    vol = vols[0]
    assert "JPEG Q=30" in vol.lossy_source and "lossy" in vol.lossy_source and vol.modality == "SM"
    assert vol.color == "RGB -> 8-bit grey (BT.601 luma)" and vol.headers == []
    log = console.export_text()
    assert log.count("colour: cmu1_small_region") == 1 and log.count("lossy source: cmu1_small_region") == 1
    assert vol.describe()["lossy_source"] == vol.lossy_source


def test_png_pathology_is_lossless_rgb_converted(tmp_path):
    import imagecodecs

    png = shared("pathology/skimage_ihc.png")
    vol = load_volume(png)
    rgb = imagecodecs.png_decode(png.read_bytes())
    assert vol.lossy_source == "" and vol.color.startswith("RGB -> 8-bit grey") and vol.shape == (1, 512, 512)
    luma = np.rint(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)
    assert np.array_equal(vol.pixels[0], luma.astype(np.uint8))
    parts = load_volume(png, options={"color": "components"})
    assert parts.shape == (3, 512, 512) and parts.color == "RGB coded per component"
    (tmp_path / "ihc.jpg").write_bytes(imagecodecs.jpeg8_encode(rgb, level=90))
    assert "JPEG picture" in load_volume(tmp_path / "ihc.jpg").lossy_source


def test_ultrasound_cine_and_enhanced_mr_multiframe():
    us = load_volume(shared("us/philips_greyscale_cine.dcm"))
    assert us.shape == (27, 600, 800) and us.pixels.dtype == np.uint8 and us.color == ""
    assert us.headers[0].PhotometricInterpretation == "MONOCHROME2" and us.lossy_source == ""
    mr = load_volume(shared("mr/siemens_enhanced_epi_phantom"))
    assert mr.shape == (63, 86, 86) and mr.spacing == pytest.approx((2.2, 2.23256, 2.23256), abs=1e-3)


def test_png_dump_keeps_the_facts(tmp_path):
    files = sorted(shared("ct_chest/acrin_flt_breast_001/series_2_805941").glob("*.dcm"))[40:43]
    vol = load_dicom_files(files, "chest")
    from medpipe.volumes import dump_png

    back = load_volume(dump_png(vol, tmp_path / "png"))
    assert np.array_equal(back.pixels, vol.pixels) and back.padding == vol.padding
    assert back.spacing == pytest.approx(vol.spacing) and back.signal_range == vol.signal_range
    shutil.rmtree(tmp_path / "png")


def test_tiff_stack_lossless_and_jpeg_tiff_lossy(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    vol = load_volume(SAMPLE)
    stack = (vol.pixels[:4].astype(np.int32) + 1500).astype(np.uint16)  # 16-bit grey, as microscopes write
    tifffile.imwrite(tmp_path / "stack.tif", stack, compression="zlib", photometric="minisblack")
    got = load_volume(tmp_path / "stack.tif")
    assert np.array_equal(got.pixels, stack) and got.lossy_source == "" and got.color == ""
    rgb = np.stack([(stack[0] >> 4).astype(np.uint8)] * 3, axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, compression="jpeg", photometric="rgb")
    lossy = load_volume(tmp_path / "rgb.tif")
    assert "coded JPEG" in lossy.lossy_source and lossy.color.startswith("RGB -> 8-bit grey")
    tifffile.imwrite(tmp_path / "planes.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    planes = load_volume(tmp_path / "planes.tif")
    assert planes.shape == (1, 512, 512) and np.array_equal(planes.pixels[0], bt601_grey(rgb))


def bt601_grey(rgb: np.ndarray) -> np.ndarray:
    return np.rint(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.uint8)


def test_whole_slide_image_beyond_the_limit_is_refused_with_one_line():
    vols, errors = load_inputs([shared("pathology/cmu1_small_region.svs")], Console(width=200),
                               {"max_picture_megapixels": 5})
    assert not vols and len(errors) == 1
    assert "20 million samples" in errors[0] and "max_picture_megapixels (5)" in errors[0]
