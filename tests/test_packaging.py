"""medpipe is a package the ecosystem can install: a wheel with its data files and a console script, importable
without the checkout; and a real Dask cluster (``dask scheduler`` + ``dask worker``) runs its cells when medpipe is
pip-installed on the nodes, with no PYTHONPATH pointing at the checkout."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile

import pytest

from conftest import ROOT, SAMPLE

pytestmark = pytest.mark.slow


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "setuptools" in proc.stderr and "Could not" in proc.stderr:
        pytest.skip(f"cannot fetch the build backend here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("medpipe-*.whl")
    return whl


def test_wheel_holds_the_package_its_data_and_the_console_script(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "medpipe/report/clinical_limits.yaml" in names
    assert {"medpipe/report/templates/report.html", "medpipe/report/templates/summary.md"} <= set(names)
    assert "medpipe/cli/__init__.py" in names and "medpipe/__main__.py" in names
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "medpipe = medpipe.cli:main" in entry


def test_installed_package_runs_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import medpipe, pathlib, sys; from medpipe.report.clinical import LIMITS_FILE; "
            "print(pathlib.Path(medpipe.__file__).parent); print(LIMITS_FILE.is_file())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True,
                          env=clean_env(PYTHONPATH=str(site)), timeout=120)
    assert proc.returncode == 0, proc.stderr
    where, has_limits = proc.stdout.split()
    assert where.startswith(str(site)) and has_limits == "True"
    proc = subprocess.run([sys.executable, "-m", "medpipe", "codecs"], cwd=elsewhere, capture_output=True,
                          text=True, env=clean_env(PYTHONPATH=str(site)), timeout=300)
    assert proc.returncode == 0 and "jpegls" in proc.stdout, proc.stdout + proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_dask_cluster_runs_cells_of_an_installed_medpipe(tmp_path):
    """`dask scheduler` + `dask worker` started outside the checkout, no PYTHONPATH: they import the installed
    medpipe (pip install . on each node, as the README says)."""
    pytest.importorskip("distributed")
    probe = subprocess.run([sys.executable, "-c", "import medpipe, pathlib; print(pathlib.Path(medpipe.__file__))"],
                           cwd=tmp_path, capture_output=True, text=True, env=clean_env(), timeout=60)
    if probe.returncode != 0 or probe.stdout.strip() == str(ROOT / "medpipe" / "__init__.py"):
        pytest.skip("medpipe is not pip-installed in this environment (pip install . ; .ci/run does)")
    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    if not dask:
        pytest.skip("the dask command is not installed")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], cwd=tmp_path, env=clean_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(2)
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                       "--no-dashboard"], cwd=tmp_path, env=clean_env(),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        series = tmp_path / "series"
        series.mkdir()
        for f in sorted(SAMPLE.glob("*.dcm"))[10:13]:
            shutil.copy(f, series / f.name)
        preset = tmp_path / "p.yaml"
        preset.write_text("name: dask\ncodecs:\n  - {codec: jpegls}\n  - {codec: ffv1}\n")
        proc = subprocess.run([sys.executable, "-m", "medpipe", str(preset), "--input", str(series), "--out",
                               str(tmp_path / "out"), "--scheduler", address], cwd=tmp_path, capture_output=True,
                              text=True, env=clean_env(), timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Dask scheduler" in proc.stdout and "exact" in proc.stdout
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
