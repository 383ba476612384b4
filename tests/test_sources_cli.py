"""A PACS address wherever an input is accepted: ``run.py PRESET --input ADDRESS`` gives the same rows (compressed
bytes included) as the exported folder, by DICOMweb and by DIMSE; ``archive build ADDRESS`` restores the stored
series; the PACS holds the same instances afterwards."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

import pacs
from conftest import ROOT, SAMPLE
from medpipe.cli import main as cli_main

TIMING = {"volume", "encode_ms", "decode_ms", "map_ms", "metrics_ms", "dicom_dir"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    medpipe = {"AET": "MEDPIPE", "Host": "127.0.0.1", "Port": pacs.free_port(), "AllowFind": True, "AllowGet": True,
               "AllowMove": True}
    with pacs.orthanc(tmp_path_factory.mktemp("pacs"), ("dicomweb",), {"DicomModalities": {"m": medpipe}}) as o:
        for f in sorted(SAMPLE.glob("*.dcm")):
            o.upload(f.read_bytes())
        yield o


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def rows(out: Path) -> list[dict]:
    (results,) = out.glob("*/results.csv")
    with open(results, newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_quick_preset_on_an_address_gives_the_folder_rows(server, tmp_path):
    study = pydicom.dcmread(sorted(SAMPLE.glob("*.dcm"))[0], stop_before_pixels=True).StudyInstanceUID
    before = server.json("GET", "/statistics")["CountInstances"]
    inputs = {"folder": str(SAMPLE), "dicomweb": f"{server.url}/dicom-web/studies/{study}",
              "dimse": f"dicom://{server.node.aet}@127.0.0.1:{server.node.port}/studies/{study}"}
    got = {}
    for name, address in inputs.items():
        done = run([str(ROOT / "presets" / "quick.yaml"), "--input", address, "--out", str(tmp_path / name)],
                   tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        got[name] = rows(tmp_path / name)
    again = run([str(ROOT / "presets" / "quick.yaml"), "--input", inputs["dicomweb"], "--out",
                 str(tmp_path / "dicomweb"), "--resume"], tmp_path)  # the cache is whole: nothing fetched again
    assert again.returncode == 0 and f"0 fetched (0.0 MiB, 0.0 MiB/s), {len(list(SAMPLE.glob('*.dcm')))} already " \
        "cached" in " ".join(again.stdout.split()), again.stdout[-2000:]
    assert len(got["folder"]) == 7 and all(r["compressed_bytes"] for r in got["folder"])
    assert got["dicomweb"] == got["folder"]
    assert got["dimse"] == got["folder"]
    assert server.json("GET", "/statistics")["CountInstances"] == before


def test_archive_build_reads_an_address(server, tmp_path, capsys):
    study = pydicom.dcmread(sorted(SAMPLE.glob("*.dcm"))[0], stop_before_pixels=True)
    address = f"{server.url}/dicom-web/studies/{study.StudyInstanceUID}/series/{study.SeriesInstanceUID}"
    rc = cli_main(["archive", "build", address, "--out", str(tmp_path / "arc"), "--candidates", "jpegxl-dicom",
                   "--effort", "1", "--pacs-requests", "2"])
    assert rc == 0, capsys.readouterr().out
    from medpipe.archive import open_archive

    index = open_archive(tmp_path / "arc")
    assert [s["shape"][0] for s in index["scans"]] == [len(list(SAMPLE.glob("*.dcm")))]
    assert list((tmp_path / ".medpipe-cache").glob("*/*/*/*.dcm"))  # the cache sits beside the archive
