"""Parallel runs: a process pool and a real Dask LocalCluster give the same rows as one process; the result store
survives a killed run and --resume runs only the missing cells."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from rich.console import Console

from conftest import ROOT
from medpipe.codecs import CodecContext, parse_codec
from medpipe.errors import InputError, MedpipeError
from medpipe.matrix import CODEC_THREADS, STORE, CellSettings, ResultStore, execute, find_resume_folder, plan_cells
from medpipe.matrix import workers
from medpipe.matrix.executors import DaskCluster
from medpipe.matrix.resources import cap_jobs_for_memory
from medpipe.matrix.workers import VolumeRef, make_task, run_task, shell_of, worker_volume
from medpipe.volumes import dump_png, load_png_folder

CODECS = [
    {"codec": "jpegls"},
    {"codec": "jpegls", "near": 2},
    {"codec": "ffv1"},
    {"codec": "x265", "bits": 12, "chroma": "gray", "preset": "ultrafast", "crf": 26, "label": "x265 crf26"},
    {"codec": "x264", "bits": 10, "chroma": "gray", "preset": "veryfast", "crf": 22, "label": "x264 crf22"},
]
COMPARED = ("label", "compressed_bytes", "cr", "psnr_db", "ssim", "max_abs_err", "exact", "status", "cell_id")


@pytest.fixture(scope="module")
def crop(sample_volume):
    """12 x 256 x 256 of the real head CT (signed 16-bit): small enough for fast tests."""
    pixels = np.ascontiguousarray(sample_volume.pixels[8:20, 128:384, 128:384])
    return dataclasses.replace(sample_volume, pixels=pixels, name="crop", headers=[], files=[])


def quiet():
    return Console(file=open(os.devnull, "w"), width=120)


def run(volumes, tmp_path, console=None, **kw):
    ctx = CodecContext(threads=CODEC_THREADS)
    settings = CellSettings()
    specs = [parse_codec(c, f"codecs[{i}]") for i, c in enumerate(CODECS)]
    cells = plan_cells(volumes, specs, ctx)
    folder = tmp_path / kw.pop("sub", "run")
    store = ResultStore(folder, settings.as_dict())
    return execute(cells, ctx, settings, console or quiet(), store=store, folder=folder, **kw), store


def compared(rows):
    return [{k: r[k] for k in COMPARED} for r in rows]


@pytest.fixture(scope="module")
def serial(crop, tmp_path_factory):
    out, _ = run([crop], tmp_path_factory.mktemp("serial"), jobs=1)
    assert out.executor == "in-process" and out.ran == len(CODECS)
    assert all(r["status"] == "ok" for r in out.rows), [r["reason"] for r in out.rows]
    return out


@pytest.mark.slow
def test_process_pool_gives_the_same_rows(serial, crop, tmp_path):
    out, store = run([crop], tmp_path, jobs=2)
    assert out.executor == "local" and out.jobs == 2
    assert compared(out.rows) == compared(serial.rows)
    assert len(store.records()) == len(CODECS)
    assert len(list((tmp_path / "run" / ".volumes").glob("*.npy"))) == 1  # one shared copy for all workers
    pids = {rec["row"]["cell_id"] for rec in store.records()}
    assert len(pids) == len(CODECS)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_rows(serial, crop, tmp_path):
    pytest.importorskip("distributed")
    screen = io.StringIO()  # a terminal, so the live progress display is drawn
    out, store = run([crop], tmp_path, jobs=2, executor="dask",
                     console=Console(file=screen, force_terminal=True, width=160))
    assert out.executor == "dask" and out.jobs == 2  # a real LocalCluster: two single-threaded workers
    assert "running 2 · failed 0" in screen.getvalue() and "left" in screen.getvalue()
    assert compared(out.rows) == compared(serial.rows)
    assert {rec["executor"] for rec in store.records()} == {"dask"}
    assert all(rec["commands"] for rec in store.records() if rec["label"].startswith(("x26", "ffv1")))


def test_store_keeps_whole_lines_only_and_reruns_failures(tmp_path):
    store = ResultStore(tmp_path, {"ssim": True})
    store.append({"cell_id": "a", "row": {"status": "ok"}, "settings": {"ssim": True}})
    store.append({"cell_id": "b", "row": {"status": "failed"}, "settings": {"ssim": True}})
    store.append({"cell_id": "c", "row": {"status": "ok"}, "settings": {"ssim": False}})
    store.append({"cell_id": "d", "row": {"status": "ok", "psnr_db": float("inf")}, "settings": {"ssim": True}})
    with open(store.path, "ab") as fh:  # a crash in the middle of writing a line
        fh.write(b'{"cell_id": "e", "row": {"status": "o')
    done = store.done()
    assert set(done) == {"a", "d"}  # failed -> run again; other settings -> run again; torn line -> ignored
    assert done["d"]["row"]["psnr_db"] == float("inf")
    store.append({"cell_id": "a", "row": {"status": "failed"}, "settings": {"ssim": True}})
    assert set(store.done()) == {"d"}  # a later failure replaces an earlier success


def test_resume_finds_the_newest_run_of_the_preset(tmp_path):
    for name in ("quick-20260101-120000", "quick-20260102-120000", "quick-20260102-120000-2",
                 "quickest-20270101-000000", "quick-20270101-000000"):
        (tmp_path / name).mkdir()
    for name in ("quick-20260101-120000", "quick-20260102-120000", "quick-20260102-120000-2",
                 "quickest-20270101-000000"):
        (tmp_path / name / STORE).write_text("")
    assert find_resume_folder(tmp_path, "quick") == tmp_path / "quick-20260102-120000-2"  # newest with a store
    assert find_resume_folder(tmp_path, "other") is None
    assert find_resume_folder(tmp_path / "missing", "quick") is None


def test_workers_read_inputs_when_the_staged_copy_is_not_visible(sample_volume, crop, tmp_path):
    workers._VOLUMES.clear()
    ref = VolumeRef(shell_of(sample_volume), staged=None)
    vol = worker_volume(ref)  # read again from the DICOM files, checked against the content hash
    assert np.array_equal(vol.pixels, sample_volume.pixels)
    pngs = load_png_folder(dump_png(crop, tmp_path / "png"))
    assert np.array_equal(worker_volume(VolumeRef(shell_of(pngs), staged=None)).pixels, crop.pixels)
    other = shell_of(sample_volume)
    other.__dict__["content_hash"] = "0" * 64
    with pytest.raises(InputError, match="same input files"):
        worker_volume(VolumeRef(other, staged=None))


@pytest.mark.slow
def test_unreachable_scheduler_is_one_clear_error(crop, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(DaskCluster, "connect_timeout", "3s")
    t0 = time.monotonic()
    with pytest.raises(MedpipeError, match="cannot reach the Dask scheduler"):
        run([crop], tmp_path, jobs=2, scheduler="tcp://127.0.0.1:9")
    assert time.monotonic() - t0 < 60


def test_cell_memory_is_bounded_by_the_volume(crop):
    """A cell's peak memory grows with its volume, by a few times the volume's bytes (not the run's)."""
    spec = parse_codec({"codec": "ffv1"}, "test")
    peaks = {}
    for n in (4, 48):
        pixels = np.ascontiguousarray(np.concatenate([crop.pixels] * 4)[:n])
        vol = dataclasses.replace(crop, pixels=pixels, name=f"n{n}")
        task = make_task(0, spec, None, vol, CodecContext(threads=1), CellSettings(), (), False)
        res = run_task(task)
        assert res.result.row.status == "ok" and res.result.row.exact
        peaks[n] = res.peak_rss_mb
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("per-cell peak memory needs Linux")
    grown = (peaks[48] - peaks[4]) * 2**20
    assert grown < 8 * (48 - 4) * 256 * 256 * 2, peaks  # < 8 x the added voxel bytes


PRESET = """
name: resumable
input: {input}
ssim: false
codecs:
{codecs}
"""


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="kills a process group (POSIX)")
@pytest.mark.slow
def test_killed_run_resumes_with_only_the_missing_cells(crop, tmp_path):
    dump_png(crop, tmp_path / "crop")
    codecs = "\n".join(f"  - {{codec: x265, bits: 12, chroma: gray, preset: fast, crf: {q}, label: q{q}}}"
                       for q in range(18, 30))
    preset = tmp_path / "resumable.yaml"
    preset.write_text(PRESET.format(input=tmp_path / "crop", codecs=codecs))
    out = tmp_path / "out"
    argv = [sys.executable, str(ROOT / "run.py"), str(preset), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    store = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            store = find_resume_folder(out, "resumable")
            if store and len((store / STORE).read_bytes().splitlines()) >= 3:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a crash: no clean-up code runs
        proc.wait()
    assert store is not None and proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    first = [json.loads(line) for line in (store / STORE).read_text().splitlines()]
    assert 3 <= len(first) < 12 and not (store / "results.csv").exists()

    done = subprocess.run(argv + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming {store}" in done.stdout.replace("\n", "")
    records = [json.loads(line) for line in (store / STORE).read_text().splitlines()]
    second = records[len(first):]
    assert records[:len(first)] == first  # nothing rewritten
    assert {r["cell_id"] for r in first}.isdisjoint(r["cell_id"] for r in second)  # done cells not rerun
    assert len({r["cell_id"] for r in records}) == 12 == len(records)
    doc = json.loads((store / "results.json").read_text())
    assert [r["label"] for r in doc["rows"]] == [f"q{q}" for q in range(18, 30)]
    assert doc["provenance"]["parallel"]["from_store"] == len(first)
    assert doc["provenance"]["parallel"]["ran"] == 12 - len(first)


def test_fewer_cells_at_a_time_when_memory_is_short(crop):
    pytest.importorskip("psutil")
    huge = dataclasses.replace(crop, pixels=np.broadcast_to(np.zeros(1, np.int16), (100_000, 512, 512)))  # 52 GB
    console = Console(record=True, width=200, file=open(os.devnull, "w"))
    assert cap_jobs_for_memory(4, [huge.raw_bytes], console) == 1
    assert "running 1 cell(s) at a time instead of 4" in console.export_text()
    assert cap_jobs_for_memory(2, [crop.raw_bytes], quiet()) == 2


class _Collect:
    """A matrix sink that records what reaches the client."""

    def __init__(self, needs_streams: bool):
        self.needs_streams = needs_streams
        self.got = []

    def __call__(self, volume, spec, result):
        self.got.append((volume.name, spec.label, result))
        if self.needs_streams and result.encoded is not None:
            result.row.update(reason="seen by the sink")  # a sink's note reaches the rows and the store


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_finished_cell_reaches_each_sink_typed(crop, tmp_path, jobs):
    """Workers send the typed CellResult back (pickled by the pool); at the client each sink gets it whole: the
    streams only when a sink needs them, the kept slices of lossy cells, and a sink's note lands in the row."""
    from medpipe.matrix import CellResult
    from medpipe.results import Row

    ctx, settings = CodecContext(threads=CODEC_THREADS), CellSettings(ssim=False)
    specs = [parse_codec({"codec": "jpegls", "label": "a"}, "t"), parse_codec({"codec": "jpegls", "near": 2,
                                                                             "label": "b"}, "t")]
    cells = plan_cells([crop], specs, ctx, keep={"crop": (3,)})
    store = ResultStore(tmp_path / "run", settings.as_dict())
    for needs in (False, True):
        sink = _Collect(needs)
        store.path.unlink(missing_ok=True)
        out = execute(cells, ctx, settings, quiet(), jobs=jobs, store=store, folder=tmp_path / "run", sinks=[sink])
        assert sorted(label for _, label, _ in sink.got) == ["a", "b"]
        for _, label, res in sink.got:
            assert isinstance(res, CellResult) and isinstance(res.row, Row) and res.row.status == "ok"
            assert (res.encoded is not None) == needs and res.mapping is not None
            assert set(res.kept) == ({3} if label == "b" else set())
            assert res.kept.get(3, np.zeros((256, 256))).shape == (256, 256)
        assert all(isinstance(r, dict) for r in out.rows)  # dicts only at the edge: the results files' rows
        noted = [r["reason"] == "seen by the sink" for r in out.rows]
        assert noted == [needs, needs] and [rec["row"]["reason"] == "seen by the sink"
                                            for rec in store.records()] == [needs, needs]
