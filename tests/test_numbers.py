"""Every number true: padding and outliers do not set the peak, a fixed-window figure compares across volumes,
the depth actually coded is shown, a lossy or colour-converted source is said in the table, every input keeps its
own name and rows, and the clinical count is one count."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pydicom
import pytest
from rich.console import Console

from conftest import SAMPLE, shared
from helpers import row_of
from medpipe.metrics import fixed_window
from medpipe.volumes import load_volume


def padded_metal_ct(tmp_path):
    """A real CT (the shipped sample's slices 10-15) written as a copy whose outside-the-body air is padding
    -32000 (PixelPaddingValue, as scanners that pad with the int16 minimum do) and with a few metal voxels at
    6000 HU: stored values span 16 bits, the signal 13, and the 12-bit window holds the tissue."""
    out = tmp_path / "padded"
    out.mkdir()
    for f in sorted(SAMPLE.glob("*.dcm"))[10:16]:
        ds = pydicom.dcmread(f)
        px = ds.pixel_array.astype(np.int16)
        hu = px * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        px[hu <= -1000] = -32000 - int(ds.RescaleIntercept)  # padding (stored units)
        px[250:253, 250:253] = int(6000 - float(ds.RescaleIntercept))  # metal
        ds.PixelPaddingValue = -32000 - int(ds.RescaleIntercept)
        ds["PixelPaddingValue"].VR = "SS"
        ds.PixelData = px.tobytes()
        ds.save_as(out / f.name)
    return load_volume(out)


def independent(vol, restored):
    """The same figures computed here without medpipe.metrics: non-padding MSE, peaks from the definitions."""
    keep = vol.pixels != vol.padding[0]
    o, d = vol.pixels.astype(np.float64), restored.astype(np.float64)
    sig = vol.pixels[keep]
    bits = int(np.ceil(np.log2(int(sig.max()) - int(sig.min()) + 1)))
    mse = np.mean(((o - d) ** 2)[keep])
    lo, hi, peak, _ = fixed_window("CT", vol.rescale_slope, vol.rescale_intercept, vol.bits_stored, vol.signed)
    wmse = np.mean(((np.clip(o, lo, hi) - np.clip(d, lo, hi)) ** 2)[keep])
    return bits, 10 * np.log10(((1 << bits) - 1) ** 2 / mse), 10 * np.log10(peak ** 2 / wmse), mse


@pytest.mark.slow
def test_padding_and_metal_do_not_set_the_peak(tmp_path, ctx):
    from medpipe.codecs import parse_codec
    from medpipe.matrix import CellSettings, measure_cell

    vol = padded_metal_ct(tmp_path)
    assert vol.padding is not None and vol.padding_count > 0 and vol.span_bits == 16 and vol.signal_bits == 13
    for cfg in ({"codec": "x265", "crf": 30, "preset": "ultrafast", "chroma": "gray"}, {"codec": "jpegls", "near": 2}):
        row = measure_cell(vol, parse_codec(cfg, "t"), ctx, CellSettings()).row.as_dict()
        assert row["status"] == "ok", row["reason"]
        bits, psnr, psnr_win, mse = independent(vol, _restore(vol, cfg, ctx))
        assert row["bits"] == bits == 13 and row["peak"] == 8191
        assert row["padding_voxels"] == vol.padding_count
        assert row["psnr_db"] == pytest.approx(psnr, abs=1e-6) and row["mse"] == pytest.approx(mse, rel=1e-9)
        assert row["psnr_window_db"] == pytest.approx(psnr_win, abs=1e-6) and row["window"] == "HU -1024..3071"
        # the figure a dtype- or span-guessed peak over every voxel would have given: inflated by padding
        naive = 10 * np.log10((2 ** 16 - 1) ** 2 / (mse * (1 - vol.padding_count / vol.pixels.size)))
        assert naive > row["psnr_db"] + 5


def _restore(vol, cfg, ctx):
    """Decoded stored values of a configuration, through the one round trip (what the cell measured)."""
    from medpipe.codecs import parse_codec
    from medpipe.depth import plan_depth
    from medpipe.roundtrip import round_trip

    codec = parse_codec(cfg, "t").codec
    mapping = plan_depth(vol.value_range, vol.pixels.dtype, codec.depth(), fill=codec.fills_depth)
    return round_trip(vol.pixels, codec, mapping, ctx).restored


def test_window_figure_per_modality():
    assert fixed_window("CT", 1.0, -1024.0, 12, False)[:3] == (0.0, 4095.0, 4095.0)
    assert fixed_window("CT", 0.5, 0.0, 16, True)[:3] == (-2048.0, 6142.0, 8190.0)  # stored units, 4095 HU
    assert fixed_window("MR", 1.0, 0.0, 12, False)[:3] == (0, 4095, 4095.0)
    assert fixed_window("US", 1.0, 0.0, 8, False)[:3] == (0, 255, 255.0)


def test_bits_shows_the_depth_actually_coded(ctx):
    data = (np.arange(3 * 40 * 50).reshape(3, 40, 50) % 200).astype(np.uint8)
    from helpers import make_volume

    vol = make_volume(data, "eight", 8)
    assert row_of(vol, {"codec": "jpegls"}, ctx)["codec_bits"] == 8  # coded at 8 bits, not the codec's 16


@pytest.mark.slow
def test_identical_contents_keep_every_name(tmp_path):
    """A series exported twice (same pixels, another folder name): both names get rows, computed once."""
    from medpipe.preset import parse_preset
    from medpipe.runner import run_preset
    import json

    a, b = tmp_path / "export_a", tmp_path / "export_b"
    for folder in (a, b):
        folder.mkdir()
        for f in sorted(SAMPLE.glob("*.dcm"))[10:13]:
            shutil.copy(f, folder / f.name)
    preset = parse_preset({"name": "twins", "inputs": [str(a), str(b)], "codecs": ["jpegls", "rle"], "jobs": 1})
    assert run_preset(preset, Console(file=io.StringIO()), out=tmp_path / "out") == 0
    (folder,) = (tmp_path / "out").iterdir()
    doc = json.loads((folder / "results.json").read_text())
    names = [r["volume"] for r in doc["rows"]]
    assert names == ["export_a", "export_a", "export_b", "export_b"]
    assert all(r["status"] == "ok" and r["exact"] for r in doc["rows"])
    assert doc["provenance"]["parallel"]["shared"] == 2  # identical contents shared the work, not the names
    assert "same pixels as export_a" in doc["rows"][2]["reason"]


def test_lossy_and_colour_sources_are_said_in_the_table(ctx):
    from medpipe.matrix import render_table

    svs = shared("pathology/cmu1_small_region.svs")
    vol = load_volume(svs)
    assert vol.lossy_source and vol.color
    small = vol.__class__(**{**vol.__dict__, "pixels": np.ascontiguousarray(vol.pixels[:, :200, :300]),
                             "name": "svs"})
    small.__dict__.pop("value_range", None)
    small.__dict__.pop("content_hash", None)
    row = row_of(small, {"codec": "jpegls"}, ctx)
    assert row["lossy_source"] == vol.lossy_source and row["color"] == vol.color
    buf = io.StringIO()
    render_table([row], Console(file=buf, width=200))
    text = buf.getvalue()
    assert "SOURCE ALREADY LOSSY" in text and "colour" in text and "8/8" in text


def test_one_clinical_count_for_console_and_report():
    from medpipe.report.clinical import beyond_counts, clinical_flags, load_limits

    limits = load_limits()
    rows = [{"volume": "v", "status": "ok", "cr": cr, "modality": "CT", "body_part": "HEAD", "max_abs_err": 40,
             "lossless": False, "exact": False} for cr in (4.0, 6.0, 13.0)]
    flags = clinical_flags(rows, limits)
    counts = beyond_counts(flags, limits)
    assert counts.lossy == 3 and counts.per_source == {"DRG": 2, "CAR": 1}
    assert "2 (" in counts.summary() and "1 (" in counts.summary()
