"""Series as a radiologist sees them, built from copies of real dev scans in tmp_path: files without
SeriesInstanceUID, several acquisitions in one series, near-duplicate positions, one SOP Instance in two transfer
syntaxes, headers without positions or instance numbers. Every grouping, split and drop is one event."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGLSLossless, generate_uid
from rich.console import Console

from medpipe.volumes import discover_inputs, load_inputs
from medpipe.volumes.dicom import slice_position
from medpipe.volumes.series import sort_slices

from conftest import SAMPLE, shared

SLICES = sorted(SAMPLE.glob("*.dcm"))


def copy_with(src: Path, dst: Path, *, drop=(), new_sop: bool = False, shift_mm: float = 0.0, **changes) -> Path:
    """A copy of a real file with header changes (attributes in ``drop`` removed; pixel data untouched)."""
    ds = pydicom.dcmread(src)
    for kw in drop:
        if kw in ds:
            del ds[kw]
    for kw, value in changes.items():
        setattr(ds, kw, value)
    if new_sop:
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if shift_mm:  # move along the slice normal
        iop = np.asarray(ds.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        ds.ImagePositionPatient = [f"{v:.6f}" for v in np.asarray(ds.ImagePositionPatient, float) + shift_mm * normal]
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def events_of(volumes, kind: str) -> list[str]:
    return [e["message"] for v in volumes for e in v.events if e["kind"] == kind]


def test_mr_export_without_series_uid_is_one_series(tmp_path):
    """Issue 11.1: 35 sagittal MR files without SeriesInstanceUID (same study, SeriesNumber, orientation)."""
    src = sorted(shared("mr/siemens_t1_sag_brain").glob("*.dcm"))
    for p in src:
        copy_with(p, tmp_path / "mr" / p.name, drop=("SeriesInstanceUID",))
    console = Console(record=True, width=300)
    vols, errors = load_inputs([tmp_path / "mr"], console)
    assert not errors and len(vols) == 1, [v.shape for v in vols]
    vol = vols[0]
    assert vol.shape == (35, 256, 256) and vol.spacing == pytest.approx((4.8, 1.015625, 1.015625), abs=1e-4)
    grouped = events_of(vols, "grouped")
    assert len(grouped) == 1 and "35 files without SeriesInstanceUID grouped" in grouped[0]
    assert console.export_text().count("grouped: ") == 1
    positions = [slice_position(h) for h in vol.headers]
    assert positions == sorted(positions)  # along the slice normal
    assert vol.describe()["events"] == vol.events


def test_files_without_study_or_series_number_stand_alone_and_never_crash(tmp_path):
    """The pydicom corpus case: no SeriesInstanceUID, empty InstanceNumber, no ImagePositionPatient."""
    for p in SLICES[:3]:
        copy_with(p, tmp_path / "odd" / p.name, drop=("SeriesInstanceUID", "SeriesNumber", "ImagePositionPatient"),
                  InstanceNumber="")
    vols, errors = load_inputs([tmp_path / "odd"], Console(width=200))
    assert not errors and sorted(v.shape for v in vols) == [(1, 512, 512)] * 3


def test_missing_positions_and_instance_numbers_order_by_file_name(tmp_path):
    for i, p in enumerate(SLICES[:4]):
        copy_with(p, tmp_path / "s" / f"im{3 - i}.dcm", drop=("ImagePositionPatient",), InstanceNumber="")
    vols, errors = load_inputs([tmp_path / "s"], Console(width=200))
    assert not errors and vols[0].shape == (4, 512, 512)
    assert [f.name for f in vols[0].files] == ["im0.dcm", "im1.dcm", "im2.dcm", "im3.dcm"]
    assert "ordered by file name" in events_of(vols, "sorted")[0]
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in vols[0].files]
    assert sort_slices(headers, vols[0].files) == [0, 1, 2, 3]


def test_chest_ct_with_three_acquisitions_is_split(tmp_path):
    """Issue 11.2: three acquisitions over overlapping ranges in one series, two slices 0.005 mm apart."""
    src = sorted(shared("ct_chest/acrin_flt_breast_001/series_2_805941").glob("*.dcm"))[40:56]
    out = tmp_path / "chest"
    for acq, (start, shift) in enumerate([(0, 0.0), (4, 0.005), (8, 0.0)], start=1):
        for p in src[start:start + 8]:
            copy_with(p, out / f"a{acq}_{p.name}", new_sop=acq > 1, shift_mm=shift, AcquisitionNumber=acq)
    console = Console(record=True, width=300)
    vols, errors = load_inputs([out], console)
    assert not errors and sorted(v.shape for v in vols) == [(8, 512, 512)] * 3
    split = events_of(vols, "split")
    assert len(set(split)) == 1 and "3 values of AcquisitionNumber" in split[0]
    assert console.export_text().count("split: ") == 1  # said once, kept by each volume
    for v in vols:
        assert len({str(h.AcquisitionNumber) for h in v.headers}) == 1 and v.spacing[0] == pytest.approx(4.25)


def test_interleaved_acquisitions_are_split_and_contiguous_ones_kept(tmp_path):
    src = sorted(shared("ct_chest/acrin_flt_breast_001/series_2_805941").glob("*.dcm"))[40:48]
    for i, p in enumerate(src):
        copy_with(p, tmp_path / "inter" / p.name, AcquisitionNumber=1 + i % 2)
        copy_with(p, tmp_path / "contig" / p.name, AcquisitionNumber=1 + i // 4)
    inter, _ = load_inputs([tmp_path / "inter"], Console(width=200))
    assert sorted(v.shape[0] for v in inter) == [4, 4] and "interleave" in events_of(inter, "split")[0]
    contig, _ = load_inputs([tmp_path / "contig"], Console(width=200))
    assert [v.shape[0] for v in contig] == [8] and not contig[0].events


def test_positions_closer_than_the_tolerance_are_one_slice(tmp_path):
    src = SLICES[:5]
    for p in src:
        copy_with(p, tmp_path / "d" / p.name)
    copy_with(src[2], tmp_path / "d" / "again.dcm", new_sop=True, shift_mm=0.05)  # spacing is ~4 mm here
    vols, errors = load_inputs([tmp_path / "d"], Console(width=200))
    assert not errors and vols[0].shape == (5, 512, 512)
    dropped = events_of(vols, "dropped")
    assert len(dropped) == 1 and "again.dcm" in dropped[0] and "0.05 mm apart" in dropped[0]
    kept, _ = load_inputs([tmp_path / "d"], Console(width=200), {"duplicate_tolerance": 0.0})
    assert kept[0].shape == (6, 512, 512)


def test_one_sop_instance_in_two_transfer_syntaxes_is_one_slice(tmp_path):
    folder = tmp_path / "two_ts"
    for p in SLICES[:4]:
        copy_with(p, folder / p.name)
    ds = pydicom.dcmread(SLICES[1])
    ds.compress(JPEGLSLossless, generate_instance_uid=False)  # the same SOP Instance, now JPEG-LS
    ds.save_as(folder / "copy_jls.dcm", enforce_file_format=True)
    vols, errors = load_inputs([folder], Console(width=200))
    assert not errors and vols[0].shape == (4, 512, 512)
    dup = events_of(vols, "duplicate")
    assert len(dup) == 1 and "2 files hold one SOP Instance" in dup[0] and "copy_jls.dcm" in dup[0]
    assert SLICES[1].name in [f.name for f in vols[0].files]  # the uncompressed copy is read
    # the preferred copy turns out unreadable: its twin is read instead, and said so
    data = (folder / SLICES[1].name).read_bytes()
    (folder / SLICES[1].name).write_bytes(data[: len(data) // 2])
    vols, errors = load_inputs([folder], Console(width=200))
    assert not errors and vols[0].shape == (4, 512, 512) and "copy_jls.dcm" in [f.name for f in vols[0].files]
    assert any("its copy copy_jls.dcm" in m for m in events_of(vols, "duplicate"))
    assert np.array_equal(vols[0].pixels[1], pydicom.dcmread(SLICES[1]).pixel_array)


def test_projections_each_in_their_own_orientation_stay_one_stack(tmp_path):
    """A rotating projection (or 3-plane localizer): single slices, each its own orientation, one series."""
    angles = np.radians([0, 30, 60])
    for i, (a, p) in enumerate(zip(angles, SLICES[:3])):
        iop = [np.cos(a), np.sin(a), 0, 0, 0, -1]
        copy_with(p, tmp_path / "proj" / p.name, ImageOrientationPatient=[f"{v:.6f}" for v in iop],
                  InstanceNumber=3 - i)
    vols, errors = load_inputs([tmp_path / "proj"], Console(width=200))
    assert not errors and len(vols) == 1 and vols[0].shape == (3, 512, 512)
    assert [int(h.InstanceNumber) for h in vols[0].headers] == [1, 2, 3]
    assert "3 single slices, each in its own orientation" in events_of(vols, "grouped")[0]


def test_discovery_reads_headers_only_and_names_are_safe_and_unique(tmp_path):
    for name in ("CON", "a:b"):
        uid = generate_uid()
        for p in SLICES[:2]:
            copy_with(p, tmp_path / name / p.name, SeriesInstanceUID=uid, new_sop=True)
    sources, errors = discover_inputs([tmp_path, tmp_path], Console(width=200))
    names = [s.name for s in sources]
    assert not errors and len(names) == len(set(names)) == 4
    assert all("/" not in n and ":" not in n and n.split("-")[0].upper() != "CON" for n in names)
    assert all(s.shape == (2, 512, 512) and s.kind == "dicom" for s in sources)


def test_volume_source_is_small_picklable_and_reloads_the_same_volume(tmp_path):
    """The archive loads one source at a time; a remote worker re-reads a volume from its source."""
    import pickle

    sources, errors = discover_inputs([SAMPLE], Console(width=200))
    assert not errors and len(sources) == 1 and sources[0].shape == (28, 512, 512)
    blob = pickle.dumps(sources[0])
    assert len(blob) < 10_000  # paths and facts, no header or pixel
    vol = pickle.loads(blob).load()
    again = vol.origin.load()
    assert vol.content_hash == again.content_hash and vol.name == "ct_head_ge_dcmqa"
