"""DICOM in: a folder tree as a PACS export leaves it is discovered and grouped; broken and awkward files (built
here from the shipped sample) get one clear message each, the rest loads, and the input is never written."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from rich.console import Console

from medpipe.volumes.discover import discover
from medpipe.volumes import load_inputs

from helpers import row_of
from conftest import SAMPLE, shared

SLICES = sorted(SAMPLE.glob("*.dcm"))


def new_series(ds, description: str):
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesDescription = description
    return ds


def save(ds, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def with_pixels(ds, arr: np.ndarray, **attrs):
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.Rows, ds.Columns = arr.shape[-2:] if arr.ndim == 2 else arr.shape[:2]
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    return ds


def build_corpus(root: Path) -> dict:
    """An export with one good series plus every awkward case; returns what each case is called."""
    good = root / "study1" / "ct_good"
    good.mkdir(parents=True)
    for p in SLICES:
        shutil.copy(p, good / p.name)
    # truncated file inside the good series: message, series loads with 27 slices
    data = (good / "05.dcm").read_bytes()
    (good / "05.dcm").write_bytes(data[: len(data) // 2])
    # a file cut inside its header
    (good / "hcut.dcm").write_bytes((good / "06.dcm").read_bytes()[:300])
    # pixel data removed
    ds = pydicom.dcmread(SLICES[0])
    del ds.PixelData
    save(new_series(ds, "no pixels"), root / "study1" / "nopix" / "a.dcm")
    # mixed sizes in one series: 3 slices 512x512 + 2 slices 256x256 (split into two volumes)
    uid = generate_uid()
    for i, p in enumerate(SLICES[:5]):
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID, ds.SeriesDescription = uid, "mixed"
        if i >= 3:
            with_pixels(ds, ds.pixel_array[::2, ::2].copy())
        save(ds, root / "study1" / "mixed" / f"m{i}.dcm")
    # duplicate positions: 4 slices, one copied twice (same position, same acquisition)
    uid = generate_uid()
    for i, p in enumerate(SLICES[:4] + [SLICES[1]]):
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID, ds.SeriesDescription = uid, "dups"
        save(ds, root / "study1" / "dups" / f"d{i}.dcm")
    # RGB secondary capture made from a CT slice (three windows as R, G, B)
    ds = pydicom.dcmread(SLICES[10])
    hu = ds.pixel_array.astype(np.int32)
    rgb = np.stack([np.clip((hu + w) // 8, 0, 255) for w in (0, 500, 1000)], axis=-1).astype(np.uint8)
    ds = new_series(ds, "rgb")
    with_pixels(ds, rgb, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0,
                BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0)
    for kw in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth", "PixelPaddingValue"):
        if kw in ds:
            del ds[kw]
    save(ds, root / "study2" / "rgb" / "rgb.dcm")
    # odd size, single slice, signed
    ds = pydicom.dcmread(SLICES[3])
    with_pixels(new_series(ds, "odd"), ds.pixel_array[:511, :509].copy())
    save(ds, root / "study2" / "odd" / "odd.dcm")
    # a 1-slice series
    ds = pydicom.dcmread(SLICES[7])
    save(new_series(ds, "single"), root / "study2" / "single" / "one.dcm")
    # unsupported / broken transfer syntax: claims MPEG-2, holds garbage
    ds = pydicom.dcmread(SLICES[8])
    from pydicom.encaps import encapsulate

    ds = new_series(ds, "mpeg2")
    ds.PixelData = encapsulate([b"\x00\x01" * 100])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    save(ds, root / "study2" / "mpeg2" / "v.dcm")
    # a structured report (non-image) and a text file named like DICOM
    sr = pydicom.dcmread(SLICES[0], stop_before_pixels=True)
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    sr.Modality = "SR"
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    for kw in ("Rows", "Columns"):
        del sr[kw]
    save(new_series(sr, "report"), root / "study2" / "sr" / "report.dcm")
    (root / "study2" / "notes.dcm").write_text("this is not DICOM\n")
    (root / "README.txt").write_text("export notes\n")
    return {"truncated": "05.dcm", "header_cut": "hcut.dcm", "nopix": "a.dcm", "mpeg2": "v.dcm", "text": "notes.dcm"}


def snapshot(root: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    names = build_corpus(root)
    before = snapshot(root)
    console = Console(record=True, width=240)
    # drop_slice: the good series goes on without its truncated file (the default refuses it: tested below)
    volumes, errors = load_inputs([root], console, {"on_damage": "drop_slice"})
    return {"root": root, "names": names, "before": before, "volumes": {v.name: v for v in volumes},
            "errors": errors, "log": console.export_text()}


def test_every_bad_file_gets_one_message(corpus):
    errors = corpus["errors"]
    for case, fname in corpus["names"].items():
        hits = [e for e in errors if fname in e]
        assert len(hits) == 1, (case, hits, errors)
    assert len(errors) == len(corpus["names"]), errors
    text = "\n".join(errors)
    assert "truncated" in text and "pixel data" in text and "not a DICOM file" in text
    assert "1.2.840.10008.1.2.4.100" in text
    assert "Traceback" not in corpus["log"]


def test_duplicate_position_is_an_event_not_an_error(corpus):
    """A copy of a slice under a new SOP Instance UID: one slice left out, said once, kept in the volume's events."""
    dups = [v for v in corpus["volumes"].values() if v.description == "dups"][0]
    dropped = [e for e in dups.events if e["kind"] == "dropped"]
    assert len(dropped) == 1 and "d4.dcm" in dropped[0]["message"] and "same slice position" in dropped[0]["message"]
    assert corpus["log"].count("d4.dcm: same slice position") == 1
    assert not any("d4.dcm" in e for e in corpus["errors"])


def test_truncated_file_refuses_its_series_by_default(tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    for p in SLICES[:5]:
        shutil.copy(p, folder / p.name)
    data = (folder / SLICES[2].name).read_bytes()
    (folder / SLICES[2].name).write_bytes(data[: len(data) // 2])
    vols, errors = load_inputs([folder], Console(width=200))
    assert not vols and len(errors) == 1, errors
    assert "series refused" in errors[0] and SLICES[2].name in errors[0] and "on_damage: drop_slice" in errors[0]


def test_rest_of_the_export_loads(corpus):
    vols = corpus["volumes"]
    good = [v for v in vols.values() if v.description == "" and v.shape[0] == 27]
    assert len(good) == 1, {n: v.shape for n, v in vols.items()}
    assert good[0].signed and good[0].pixels.dtype == np.int16
    shapes = sorted(v.shape for v in vols.values() if v.description == "mixed")
    assert shapes == [(2, 256, 256), (3, 512, 512)]
    dups = [v for v in vols.values() if v.description == "dups"]
    assert len(dups) == 1 and dups[0].shape[0] == 4
    rgb = [v for v in vols.values() if v.description == "rgb"][0]
    assert rgb.pixels.dtype == np.uint8 and rgb.shape == (1, 512, 512) and "grey" in rgb.notes[0]
    odd = [v for v in vols.values() if v.description == "odd"][0]
    assert odd.shape == (1, 511, 509) and odd.signed
    assert [v for v in vols.values() if v.description == "single"][0].shape == (1, 512, 512)
    assert "1 non-image object(s) skipped (SR 1: report.dcm)" in corpus["log"]
    assert "split into 2 volumes" in corpus["log"]
    assert len(set(vols)) == len(vols)


def test_input_folder_is_never_written(corpus):
    assert snapshot(corpus["root"]) == corpus["before"]


def test_corpus_runs_through_dicom_out(corpus, tmp_path, ctx):
    """Odd size, RGB-as-grey, 1-slice and split volumes all write DICOM that reads back exactly."""
    from medpipe.dicom.writer import DicomSink
    from medpipe.codecs import parse_codec

    sink = DicomSink(tmp_path, ctx)
    spec = parse_codec({"codec": "jpegls", "label": "jls"}, "test")
    for name, vol in corpus["volumes"].items():
        row = row_of(vol, spec, ctx, sink=sink)
        assert row["status"] == "ok" and row["dicom_ts"] == "1.2.840.10008.1.2.4.80", (name, row["reason"])
        out = sorted(Path(row["dicom_dir"]).glob("*.dcm"))
        assert len(out) == vol.shape[0]
        ds = pydicom.dcmread(out[0])
        got = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        want = vol.pixels[0] * vol.rescale_slope + vol.rescale_intercept
        assert np.array_equal(got, want), name
        if vol.description == "rgb":  # colour coded as grey is a new, derived monochrome instance
            assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
            assert ds.ImageType[0] == "DERIVED"
    assert not list(corpus["root"].rglob("*.part"))


def test_dicomdir_export_is_walked_and_index_skipped(tmp_path):
    from pydicom.fileset import FileSet

    fs = FileSet()
    for p in SLICES[:4]:
        ds = pydicom.dcmread(p)
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20190101", "120000", "1"  # DICOMDIR STUDY record needs them
        fs.add(ds)
    fs.write(tmp_path / "export")
    found = discover(tmp_path / "export")
    assert len(found.dicomdirs) == 1 and len(found.sources) == 1 and len(found.sources[0].paths) == 4
    assert not found.errors
    vols, errors = load_inputs([tmp_path / "export"], Console(width=200))
    assert len(vols) == 1 and vols[0].shape == (4, 512, 512) and not errors


def test_repeated_positions_split_by_acquisition(tmp_path):
    for acq in (1, 2):
        for p in SLICES[:3]:
            ds = pydicom.dcmread(p)
            ds.AcquisitionNumber = acq
            save(ds, tmp_path / "two" / f"a{acq}_{p.name}")
    found = discover(tmp_path / "two")
    assert sorted(len(s.paths) for s in found.sources) == [3, 3] and not found.errors
    assert all(any(e["kind"] == "split" and "AcquisitionNumber" in e["message"] for e in s.events)
               for s in found.sources)


def test_components_mode_keeps_colour_planes(tmp_path):
    ds = pydicom.dcmread(SLICES[0])
    rgb = np.zeros((64, 48, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    with_pixels(ds, rgb, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0,
                BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0)
    save(ds, tmp_path / "c" / "rgb.dcm")
    vols, _ = load_inputs([tmp_path / "c"], Console(width=200), {"color": "components"})
    assert vols[0].shape == (3, 64, 48) and [int(vols[0].pixels[i].max()) for i in range(3)] == [10, 20, 30]


def test_single_png_picture_loads(tmp_path):
    import imagecodecs

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 1] = 200
    (tmp_path / "pic.png").write_bytes(imagecodecs.png_encode(rgb))
    vols, errors = load_inputs([tmp_path / "pic.png"], Console(width=200))
    assert not errors and vols[0].shape == (1, 20, 30) and int(vols[0].pixels.max()) == round(200 * 0.587)


@pytest.mark.slow
def test_dev_data_folder_is_discovered():
    """The whole dev data folder: every DICOM series found by headers alone, the pathology pictures as pictures,
    the documents listed once, no error."""
    root = shared("")
    found = discover(root)
    names = {s.name: len(s.paths) for s in found.sources if s.kind == "dicom"}
    assert names["ct_head-ge_dcmqa_human"] == 28 and names["ct_head-cq500_ct0"] == 238
    assert names["xray-RG1_chest_cr"] == 1 and names["mr-siemens_t1_sag_brain"] == 35
    # one volume per DICOM entry the data set lists (its CHECKSUMS.txt: one row per entry; pictures apart), so the
    # test follows the data set as it grows
    listed = [line.split()[2] for line in (root / "CHECKSUMS.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    dicom_entries = [p for p in listed if not p.endswith((".svs", ".png"))]
    assert len(names) == len(dicom_entries), sorted(names)
    assert not found.errors
    assert sorted(s.paths[0].name for s in found.sources if s.kind == "picture") == ["cmu1_small_region.svs",
                                                                                     "skimage_ihc.png"]
    assert {p.name for p in found.ignored} == {"DATA.md", "CHECKSUMS.txt", "verify.py"}


def test_file_without_preamble_is_still_read(tmp_path):
    """Old exports write the bare data set (no 128-byte preamble, no 'DICM', no file meta)."""
    from pydicom.dataset import FileMetaDataset

    ds = pydicom.dcmread(SLICES[0])
    ds.preamble, ds.file_meta = None, FileMetaDataset()
    path = tmp_path / "old" / "IM0001"
    path.parent.mkdir()
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[128:132] != b"DICM"
    vols, errors = load_inputs([path.parent], Console(width=200))
    assert not errors and vols[0].shape == (1, 512, 512)
    assert np.array_equal(vols[0].pixels[0], pydicom.dcmread(SLICES[0]).pixel_array)


def enhanced_like(path: Path, reverse: bool = True) -> np.ndarray:
    """A multi-frame object whose frames are stored in reverse slice order, positions and rescale in functional
    groups (as enhanced CT/MR objects keep them); returns the frames in stored order."""
    from pydicom.dataset import Dataset

    srcs = [pydicom.dcmread(p) for p in SLICES[:4]]
    if reverse:
        srcs = srcs[::-1]
    ds = srcs[0]
    frames = np.stack([d.pixel_array for d in srcs])
    ds.NumberOfFrames = len(srcs)
    ds.PixelData = frames.tobytes()
    shared = Dataset()
    orient, pvt = Dataset(), Dataset()
    orient.ImageOrientationPatient = ds.ImageOrientationPatient
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = ds.RescaleSlope, ds.RescaleIntercept, "HU"
    shared.PlaneOrientationSequence, shared.PixelValueTransformationSequence = [orient], [pvt]
    ds.SharedFunctionalGroupsSequence = [shared]
    per = []
    for d in srcs:
        item, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = d.ImagePositionPatient
        item.PlanePositionSequence = [pos]
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = per
    for kw in ("RescaleSlope", "RescaleIntercept", "ImagePositionPatient", "ImageOrientationPatient"):
        del ds[kw]
    save(ds, path)
    return frames


def test_multiframe_frames_sorted_and_written_back_in_stored_order(tmp_path, ctx):
    from medpipe.dicom.writer import DicomSink
    from medpipe.codecs import parse_codec

    stored = enhanced_like(tmp_path / "in" / "mf.dcm")
    vols, errors = load_inputs([tmp_path / "in"], Console(width=200))
    assert not errors and vols[0].shape == (4, 512, 512)
    vol = vols[0]
    assert vol.frame_order == [3, 2, 1, 0] and any("sorted" in n for n in vol.notes)
    assert np.array_equal(vol.pixels, stored[::-1])
    assert vol.rescale_intercept == float(pydicom.dcmread(SLICES[0]).RescaleIntercept)
    row = row_of(vol, parse_codec({"codec": "jpegls"}, "test"), ctx, sink=DicomSink(tmp_path / "out", ctx))
    assert row["status"] == "ok" and row["dicom_ts"], row["reason"]
    ds = pydicom.dcmread(Path(row["dicom_dir"]) / "mf.dcm")
    pvt = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    assert "RescaleIntercept" not in ds  # the enhanced object's own transform was adjusted instead
    hu = ds.pixel_array * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
    assert np.array_equal(hu, stored * vol.rescale_slope + vol.rescale_intercept)
