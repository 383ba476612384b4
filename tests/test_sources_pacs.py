"""Reading a real PACS: Debian's Orthanc on 127.0.0.1 with the DICOMweb plugin, C-FIND/C-GET allowed for MEDPIPE
and MEDPIPE registered as a modality for C-MOVE. Dev data of several modalities and stored syntaxes is loaded
(a few slices per series, the shipped CT whole); what medpipe retrieves must be the stored files byte for byte,
the volumes read from them must equal the folder reads, and the PACS must hold the same instances afterwards."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

import pacs
from conftest import ROOT, SAMPLE, SHARED_DATA
from medpipe.sources import fetch_address, open_source
from medpipe.sources.settings import SourceSettings
from medpipe.volumes import load_inputs

# (dev data path, how many files): CT and MR series, CR, US cine, Enhanced MR multi-frame; uncompressed and JPEG-LS
DEV = [("mr/siemens_t1_sag_brain", 3), ("ct_head/cq500_ct5", 3), ("xray/RG3_tibia_cr.dcm", 1),
       ("us/philips_greyscale_cine.dcm", 1), ("mr/siemens_enhanced_epi_phantom", 1)]


def dev_files() -> dict[str, list[Path]]:
    """{name: files} for the sample and whichever dev entries are present (absent ones are left out)."""
    out = {"sample_ct": sorted(SAMPLE.glob("*.dcm"))}
    for rel, n in DEV:
        p = SHARED_DATA / rel
        if p.exists():
            out[rel] = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file())[:n]
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(Orthanc, {name: files}, {sha256 of every uploaded file}, medpipe's C-MOVE port)."""
    scp_port = pacs.free_port()
    extra = {"DicomModalities": {"medpipe": {"AET": "MEDPIPE", "Host": "127.0.0.1", "Port": scp_port,
                                             "AllowGet": True, "AllowFind": True, "AllowMove": True,
                                             "AllowStore": False, "AllowEcho": True}}}
    with pacs.orthanc(tmp_path_factory.mktemp("pacs"), ("dicomweb",), extra) as server:
        files = dev_files()
        hashes = set()
        for group in files.values():
            for f in group:
                server.upload(f.read_bytes())
                hashes.add(sha(f.read_bytes()))
        yield server, files, hashes, scp_port


def count(server) -> int:
    return server.json("GET", "/statistics")["CountInstances"]


def uid(path: Path, key: str) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True)[key].value)


def settings(tmp_path, **kw) -> SourceSettings:
    return SourceSettings(cache=tmp_path / "cache", **kw)


def test_dicomweb_lists_every_instance_with_its_metadata(loaded, tmp_path):
    server, files, _, _ = loaded
    infos = list(open_source(server.url + "/dicom-web", settings(tmp_path), lambda _: None).instances())
    assert len(infos) == sum(len(v) for v in files.values())
    ct = [i for i in infos if i.sop_uid == uid(files["sample_ct"][0], "SOPInstanceUID")][0]
    ds = pydicom.dcmread(files["sample_ct"][0], stop_before_pixels=True)
    assert (ct.modality, ct.rows, ct.columns, ct.bits_stored, ct.sop_class, ct.study_date) == (
        "CT", ds.Rows, ds.Columns, ds.BitsStored, ds.SOPClassUID, ds.StudyDate)
    assert ct.stored_bytes is None  # Orthanc's QIDO-RS says no size; the survey is told so
    if "us/philips_greyscale_cine.dcm" in files:
        us = [i for i in infos if i.modality == "US"][0]
        assert us.frames == 27


def test_dicomweb_retrieves_the_stored_bytes_and_leaves_the_pacs_as_it_was(loaded, tmp_path):
    server, files, hashes, _ = loaded
    before = count(server)
    lines: list[str] = []
    folders, errors = fetch_address(server.url + "/dicom-web", settings(tmp_path), lines.append)
    got = {sha(p.read_bytes()) for f in folders for p in f.glob("*.dcm")}
    assert not errors and got == hashes  # every stored file, byte for byte: compressed ones included
    assert count(server) == before
    assert "instances found" in lines[-1] and "fetched" in lines[-1]


def test_resume_fetches_nothing_it_has_and_refetches_a_damaged_file(loaded, tmp_path):
    server, files, _, _ = loaded
    study = uid(files["sample_ct"][0], "StudyInstanceUID")
    address = f"{server.url}/dicom-web/studies/{study}"
    fetch_address(address, settings(tmp_path), lambda _: None)
    source = open_source(address, settings(tmp_path), lambda _: None)
    folder = next(iter(Path(tmp_path / "cache").glob("*/*/*")))
    victim = sorted(folder.glob("*.dcm"))[3]
    victim.write_bytes(victim.read_bytes()[:1000])  # as a run killed mid-write would leave it (or a bad disk)
    for study_uid, series_uid, found in source.series_list():
        source.fetch_series(study_uid, series_uid, folder, instances=found)
    assert (source.progress.fetched, source.progress.cached) == (1, len(files["sample_ct"]) - 1)
    assert sha(victim.read_bytes()) in {sha(f.read_bytes()) for f in files["sample_ct"]}


def test_a_series_read_by_dicomweb_equals_the_folder_read(loaded, tmp_path):
    server, files, _, _ = loaded
    for name, group in files.items():
        address = (f"{server.url}/dicom-web/studies/{uid(group[0], 'StudyInstanceUID')}/series/"
                   f"{uid(group[0], 'SeriesInstanceUID')}")
        options = {"pacs": {"cache": str(tmp_path / "cache")}}
        (web,), errors = load_inputs([address], None, options)
        assert not errors, errors
        folder = tmp_path / "export" / name.replace("/", "_")
        folder.mkdir(parents=True)
        for f in group:
            (folder / f.name).write_bytes(f.read_bytes())
        (local,), _ = load_inputs([folder])
        assert web.pixels.dtype == local.pixels.dtype and np.array_equal(web.pixels, local.pixels), name
        assert (web.bits_stored, web.signed, web.modality, web.spacing, web.padding, web.frame_order) == (
            local.bits_stored, local.signed, local.modality, local.spacing, local.padding, local.frame_order)
        assert [h.SOPInstanceUID for h in web.headers] == [h.SOPInstanceUID for h in local.headers]


def same_instance(got: Path, stored: Path) -> bool:
    """Same transfer syntax, same element values, same Pixel Data bytes (compressed or not). DIMSE carries the
    dataset, not the file: Orthanc's DCMTK drops Data Set Trailing Padding (FFFC,FFFC), which has no meaning
    (PS3.10 7.2), and may re-encode lengths, so the bytes around the values may differ where the values do not."""
    a, b = pydicom.dcmread(got), pydicom.dcmread(stored)
    for ds in (a, b):
        ds.pop(0xFFFCFFFC, None)
    return (a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID and a == b
            and a.get("PixelData") == b.get("PixelData"))


def check_dimse(server, files, tmp_path, port: int, lines: list[str]) -> None:
    before = count(server)
    address = f"dicom://{server.node.aet}@127.0.0.1:{server.node.port}"
    folders, errors = fetch_address(address, settings(tmp_path, port=port), lines.append)
    assert not errors, errors
    got = {uid(p, "SOPInstanceUID"): p for f in folders for p in f.glob("*.dcm")}
    stored = {uid(f, "SOPInstanceUID"): f for group in files.values() for f in group}
    assert got.keys() == stored.keys()
    different = [k for k in got if not same_instance(got[k], stored[k])]
    assert not different, different
    assert count(server) == before


def test_c_get_retrieves_every_stored_instance_in_its_stored_syntax(loaded, tmp_path):
    server, files, _, port = loaded
    lines: list[str] = []
    check_dimse(server, files, tmp_path, port, lines)
    assert not any("C-MOVE" in line for line in lines)


def test_c_move_when_the_peer_refuses_c_get(loaded, tmp_path):
    server, files, _, port = loaded
    entry = {"AET": "MEDPIPE", "Host": "127.0.0.1", "Port": port, "AllowGet": False, "AllowMove": True,
             "AllowFind": True}
    server.request("PUT", "/modalities/medpipe", json.dumps(entry).encode())
    try:
        lines: list[str] = []
        check_dimse(server, files, tmp_path, port, lines)
        assert sum("C-GET refused" in line for line in lines) == 1  # said once, then C-MOVE for every series
    finally:
        server.request("PUT", "/modalities/medpipe", json.dumps({**entry, "AllowGet": True}).encode())


def test_c_get_splits_sop_classes_over_associations_and_resumes_by_instance(loaded, tmp_path, monkeypatch):
    """A series of three SOP classes with one class per association (as 20 syntaxes x 7+ classes would need):
    three C-GET associations; then, one cached file damaged, only that instance is asked for again."""
    import medpipe.sources.dimse_get as dg

    server, _, _, port = loaded
    sources = sorted(SAMPLE.glob("*.dcm"))[:3]
    classes = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.20")
    series_uid = pydicom.uid.generate_uid()
    uploaded = []
    for src, sop_class in zip(sources, classes):
        ds = pydicom.dcmread(src)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = series_uid
        path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        uploaded.append(server.upload(path.read_bytes()))
    try:
        monkeypatch.setattr(dg, "CLASSES_PER_ASSOCIATION", 1)
        address = (f"dicom://{server.node.aet}@127.0.0.1:{server.node.port}/studies/"
                   f"{uid(sources[0], 'StudyInstanceUID')}/series/{series_uid}")
        source = open_source(address, settings(tmp_path, port=port), lambda _: None)
        (study, series, found), = source.series_list()
        assert sorted(i.sop_class for i in found) == sorted(classes)
        before = source.associations
        paths = source.fetch_series(study, series, tmp_path / "s", instances=found)
        assert len(paths) == 3 and source.associations - before == 3 and source.method == "C-GET"
        victim = uid(paths[1], "SOPInstanceUID")
        paths[1].write_bytes(b"damaged")
        source.fetch_series(study, series, tmp_path / "s", instances=found)
        assert source.progress.fetched == 4 and source.progress.cached == 2
        assert same_instance(paths[1], tmp_path / f"{victim}.dcm")
    finally:
        for instance in uploaded:
            server.delete(instance)
