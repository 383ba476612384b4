"""Real faults, as a user meets them: a full disk, a read-only output folder, a killed run (workers end with it),
Ctrl-C (temporary streams removed), leftovers of a killed run (removed by the next), progress on a non-terminal.
File-system faults use real tmpfs mounts (skipped where mounting is not permitted)."""
from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, SAMPLE


def run(*args, env=None, **kw):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600, **kw)


@contextlib.contextmanager
def tmpfs(where, size="2m", readonly=False):
    """A real small (or read-only) file system at ``where``, or skip when this machine does not allow mounts."""
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    if shutil.which("mount") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a test file system needs root and mount(8)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "medpipe-test", str(where)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series") / "ct"
    folder.mkdir()
    for f in sorted(SAMPLE.glob("*.dcm"))[10:14]:
        shutil.copy(f, folder / f.name)
    return folder


def preset(tmp_path, body="codecs: [{codec: jpegls}, {codec: ffv1}]\n"):
    p = tmp_path / "p.yaml"
    p.write_text(f"name: faults\n{body}")
    return p


def test_read_only_output_is_one_line_before_any_input_is_read(tmp_path, series):
    with tmpfs(tmp_path / "ro", readonly=True) as ro:
        proc = run(preset(tmp_path), "--input", series, "--out", ro / "results")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "read-only file system" in out and str(ro) in out.replace("\n", "")
    assert "Traceback" not in out and "volumes" not in out  # said before the inputs were loaded


@pytest.mark.slow
def test_full_disk_is_one_line_nothing_half_written_and_resumable(tmp_path, series):
    body = "dicom_out: true\ncodecs: [{codec: jpegls}, {codec: rle}]\n"  # ~0.5 MB of DICOM, then ~1.6 MB
    with tmpfs(tmp_path / "full", size="1200k") as full:
        proc = run(preset(tmp_path, body), "--input", series, "--out", full, "--jobs", "1")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out
        assert "disk full" in out and str(full) in out.replace("\n", "") and "Traceback" not in out
        leftovers = [p for p in full.rglob("*") if p.name.endswith(".part")]
        assert not leftovers, leftovers  # nothing half-written
        (folder,) = [p for p in full.iterdir() if p.is_dir()]
        assert len((folder / "cells.jsonl").read_text().splitlines()) == 1  # the finished cell is kept
        subprocess.run(["mount", "-o", "remount,size=20m", str(full)], check=True)  # the user frees room
        proc = run(preset(tmp_path, body), "--input", series, "--out", full, "--jobs", "1", "--resume")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rows = list(csv.DictReader(open(folder / "results.csv", newline="")))
        assert [r["status"] for r in rows] == ["ok", "ok"] and all(r["dicom_dir"] for r in rows)
        assert '"from_store": 1' in (folder / "results.json").read_text()


def _children(pid):
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="kills one process (POSIX signals)")
def test_workers_end_with_a_killed_parent(tmp_path, series):
    psutil = pytest.importorskip("psutil")
    codecs = "\n".join(f"  - {{codec: x265, preset: slower, crf: {q}, label: q{q}}}" for q in range(20, 28))
    argv = [sys.executable, str(ROOT / "run.py"), str(preset(tmp_path, f"codecs:\n{codecs}\n")), "--input",
            str(series), "--out", str(tmp_path / "o"), "--jobs", "2"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(workers) < 2:
        workers = [c for c in _children(proc.pid) if "python" in c.name().lower()]
        time.sleep(0.2)
    assert len(workers) >= 2, "the pool never started"
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up code of the parent runs
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} worker(s) outlived their parent"


def _encoding_ffmpeg(pid):
    """The ffmpeg child that is encoding (not a short -version/-encoders probe), or None."""
    psutil = pytest.importorskip("psutil")
    for child in _children(pid):
        with contextlib.suppress(psutil.Error):
            if "ffmpeg" in child.name().lower() and "-i" in child.cmdline():
                return child
    return None


def _interrupted_run(tmp_path, series, first: str):
    """Start a run, wait until ffmpeg is encoding, then Ctrl-C: ``first="group"`` sends SIGINT to the run's process
    group as a terminal does; ``first="ffmpeg"`` lets ffmpeg see it alone first and exit (255) before the run does.
    Returns (exit code, output, temp folder, output folder)."""
    psutil = pytest.importorskip("psutil")
    tmp, out = tmp_path / "tmp", tmp_path / "o"
    tmp.mkdir(parents=True)
    body = "codecs:\n  - {codec: x265, preset: veryslow, chroma: '444'}\n  - {codec: x264, preset: veryslow}\n"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), str(preset(tmp_path, body)), "--input",
                             str(series), "--out", str(out), "--jobs", "1"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)}, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        encoder = _encoding_ffmpeg(proc.pid)
        if encoder and any(tmp.glob("medpipe-*")):
            break
        time.sleep(0.02)
    assert encoder and any(tmp.glob("medpipe-*")), "ffmpeg never started on a temporary stream"
    if first == "ffmpeg":
        with contextlib.suppress(psutil.NoSuchProcess):
            encoder.send_signal(signal.SIGINT)
            psutil.wait_procs([encoder], timeout=30)  # ffmpeg has exited before the run sees any signal
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    output, _ = proc.communicate(timeout=120)
    return proc.returncode, output, tmp, out


def _assert_clean_interrupt(code, output, tmp, out):
    assert code == 130, output
    assert "interrupted" in output and "Traceback" not in output
    assert not list(tmp.glob("medpipe-*")), list(tmp.iterdir())
    for store in out.rglob("cells.jsonl"):  # no cell was filed as a codec failure
        assert '"failed"' not in store.read_text(), store.read_text()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="sends Ctrl-C as SIGINT to a process group")
@pytest.mark.parametrize("first", ["group", "ffmpeg"])
def test_ctrl_c_leaves_no_temporary_streams(tmp_path, series, first):
    _assert_clean_interrupt(*_interrupted_run(tmp_path, series, first))


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="sends Ctrl-C as SIGINT to a process group")
def test_ctrl_c_exits_130_twenty_times_in_a_row(tmp_path, series):
    for i in range(20):  # a race shows up as one exit 1 among them
        _assert_clean_interrupt(*_interrupted_run(tmp_path / str(i), series, ("group", "ffmpeg")[i % 2]))


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path, series):
    tmp = tmp_path / "tmp"
    out = tmp_path / "o"
    (stale := tmp / "medpipe-999999-abc").mkdir(parents=True)
    (stale / "stream.mkv").write_bytes(b"x" * 100)
    (part := out / ".faults-20260101-000000.999999.part").mkdir(parents=True)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    proc = run(preset(tmp_path, "codecs: [{codec: jpegls}]\n"), "--input", series, "--out", out,
               env={"TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not stale.exists() and not part.exists()


def test_progress_on_a_non_terminal_is_plain_lines(sample_volume, monkeypatch):
    from rich.console import Console

    from medpipe.codecs import CodecContext, parse_codec
    from medpipe.matrix import CellSettings, execute, plan_cells
    from medpipe.matrix import schedule

    monkeypatch.setattr(schedule, "PLAIN_PROGRESS_EVERY_S", 0.0)
    buf = io.StringIO()
    console = Console(file=buf, width=120)  # a file: not a terminal
    assert not console.is_terminal
    specs = [parse_codec({"codec": c}, "t") for c in ("jpegls", "rle", "ljpeg")]
    cells = plan_cells([sample_volume], specs, CodecContext())
    out = execute(cells, CodecContext(), CellSettings(ssim=False), console, jobs=1)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.startswith("progress:")]
    assert len(out.rows) == 3 and lines[-1].startswith("progress: 3/3 cells done, 0 failed")
    assert "time left" in lines[0] and "\x1b" not in buf.getvalue()  # no escape codes in a log file
