"""What medpipe writes, medpipe reads back: JPEG XL (.110) and Deflated Image Frame (.8.1) DICOM -- syntaxes
pydicom 3.0 has no decoder for -- load as the source's stored values (a run's DICOM output and an archive's
restored series can be inputs again)."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pydicom
from rich.console import Console

from conftest import SAMPLE
from medpipe.preset import parse_preset
from medpipe.runner import run_preset
from medpipe.volumes import load_volume


def test_jpegxl_and_deflated_output_reads_back_as_the_source(tmp_path):
    series = tmp_path / "ct"
    series.mkdir()
    for f in sorted(SAMPLE.glob("*.dcm"))[12:15]:  # signed int16 CT
        shutil.copy(f, series / f.name)
    preset = parse_preset({"name": "back", "input": str(series), "jobs": 1, "ssim": False,
                           "codecs": [{"codec": "jpegxl", "effort": 1}],
                           "dicom_out": {"deflated": True}})
    assert run_preset(preset, Console(file=io.StringIO()), out=tmp_path / "out") == 0
    source = load_volume(series)
    written = {pydicom.dcmread(next(d.glob("*.dcm")), stop_before_pixels=True).file_meta.TransferSyntaxUID: d
               for d in (tmp_path / "out").rglob("*") if d.is_dir() and any(d.glob("*.dcm"))}
    assert {"1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.8.1"} <= set(written)
    for uid in ("1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.8.1"):
        back = load_volume(written[uid])
        assert back.pixels.dtype == source.pixels.dtype and np.array_equal(back.pixels, source.pixels), uid
        assert (back.signed, back.bits_stored) == (source.signed, source.bits_stored) and not back.lossy_source
