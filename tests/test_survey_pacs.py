"""The survey against a real Orthanc (tests/pacs.py) over DICOMweb: CT, DX and CR stored as JPEG-LS. The survey
uses standard DICOMweb only (QIDO-RS, WADO-RS); the test alone asks Orthanc's REST API what it stores."""
from __future__ import annotations

import json

import pytest

import pacs
from conftest import shared
from medpipe.results import read_rows
from test_survey import CT12, run_cli, small_archive, survey_folder, tree_hash

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    sources = pytest.importorskip("medpipe.sources")
    if getattr(sources, "open_source", None) is None:
        pytest.skip("medpipe.sources.open_source (issue 18) is not in this build")
    root = small_archive(tmp_path_factory.mktemp("src"), CT12[:4], slices=2)
    dx = root / "xray" / "dx.dcm"
    dx.write_bytes(shared("xray/canon_dx_chest_pa.dcm").read_bytes())
    extra = {"DicomModalities": {"medpipe": {"AET": "MEDPIPE", "Host": "127.0.0.1", "Port": pacs.free_port(),
                                             "AllowGet": True, "AllowFind": True, "AllowMove": True,
                                             "AllowStore": False, "AllowEcho": True}}}
    with pacs.orthanc(tmp_path_factory.mktemp("pacs"), ("dicomweb",), extra) as server:
        for f in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "notes.txt"):
            server.upload(f.read_bytes())
        stored = sum(int(server.request("GET", f"/instances/{i}/attachments/dicom/size"))
                     for i in server.instances())
        yield server, stored


def test_survey_of_orthanc_over_dicomweb(loaded, tmp_path, capsys):
    server, stored = loaded
    before = sorted(server.instances())
    url = f"{server.url}/dicom-web"
    args = [url, "--codecs", "jpegls;htj2k", "--out", tmp_path / "out"]
    code, out = run_cli([*args, "--sample", "1", "--name", "full"], capsys)
    assert code == 0, out
    full = {r["codec"]: r for r in read_rows(survey_folder(tmp_path / "out", "full") / "survey.csv")
            if r["modality"] == "ALL"}
    for r in full.values():
        assert abs(r["bytes_now"] / stored - 1) < 0.005, (r["bytes_now"], stored)
        assert r["ci_low"] == r["ci_high"]
    assert abs(full["jpegls"]["bytes_projected"] / stored - 1) < 0.05
    code, out = run_cli([*args, "--sample", "0.5", "--name", "half", "--seed", "1"], capsys)
    assert code == 0, out
    half_folder = survey_folder(tmp_path / "out", "half")
    half = {r["codec"]: r for r in read_rows(half_folder / "survey.csv") if r["modality"] == "ALL"}
    for codec, r in half.items():
        assert r["series_sampled"] < r["series_total"]
        assert r["ci_low"] <= full[codec]["bytes_projected"] <= r["ci_high"], codec
        assert r["bytes_now_low"] <= full[codec]["bytes_now"] <= r["bytes_now_high"], codec
    doc = json.loads((half_folder / "survey.json").read_text())
    assert "retrieved" in doc["inventory"]["sources"][0]["sizes"] or \
        doc["inventory"]["sources"][0]["sizes"] == "file sizes"
    assert sorted(server.instances()) == before  # read-only: the PACS holds the same instances


def test_survey_of_orthanc_over_dimse(loaded, tmp_path, capsys):
    """C-FIND at image level, C-GET of the stored instances: the same bytes as the PACS stores."""
    server, stored = loaded
    before = sorted(server.instances())
    address = f"dicom://{server.node.aet}@127.0.0.1:{server.node.port}"
    code, out = run_cli([address, "--codecs", "jpegls", "--sample", "1", "--out", tmp_path / "out"], capsys)
    assert code == 0, out
    (row,) = [r for r in read_rows(survey_folder(tmp_path / "out") / "survey.csv") if r["modality"] == "ALL"]
    assert abs(row["bytes_now"] / stored - 1) < 0.005 and abs(row["bytes_projected"] / stored - 1) < 0.05
    assert sorted(server.instances()) == before
