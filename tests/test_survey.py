"""The survey (issue 19): inventory from headers, the seeded sample, the ratio estimator's intervals, and a whole
survey of a small archive (a few slices of dev series copied into tmp_path) through the CLI."""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import shared
from medpipe.survey.estimate import Stratum, combine
from medpipe.survey.inventory import FolderSource, SeriesInfo, series_of, take_inventory
from medpipe.survey.sample import draw, sample_size, strata

CT12 = ["ct_chest/lung_dx_a0002/series_3_b40f", "ct_chest/lung_dx_a0002/series_2_b70f",
        "ct_head/philips_phantom_stereotaxis_a", "ct_head/philips_phantom_stereotaxis_b", "ct_head/cq500_ct5",
        "ct_chest/acrin_flt_breast_013"]


def small_archive(root: Path, series=CT12, slices: int = 3, xray: bool = True) -> Path:
    """A PACS-export-like tree: ``slices`` files of each CT series (JPEG-LS, 12 bits), two CR images, junk."""
    for k, rel in enumerate(series):
        dest = root / "studies" / f"s{k}"
        dest.mkdir(parents=True)
        for f in sorted(p for p in shared(rel).iterdir() if p.is_file())[:slices]:
            shutil.copy2(f, dest / f.name)
    if xray:
        (root / "xray").mkdir()
        for rel in ("xray/RG3_tibia_cr.dcm", "xray/kodak_cr_hand.dcm"):
            shutil.copy2(shared(rel), root / "xray" / Path(rel).name)
    (root / "notes.txt").write_text("not DICOM")
    return root


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------- inventory

def test_folder_inventory_reads_headers_and_file_sizes(tmp_path):
    root = small_archive(tmp_path / "src", CT12[:2], slices=2)
    series, facts = take_inventory(FolderSource(root))
    assert facts["instances"] == 6 and facts["series"] == 4 and facts["skipped_files"] == 1
    assert "notes.txt" in facts["skipped"][0]
    ct = [s for s in series if s.modality == "CT"]
    assert len(ct) == 2 and all(s.instances == 2 and s.bits_stored == 12 for s in ct)
    assert {s.transfer_syntax for s in series} == {"1.2.840.10008.1.2.4.80"}
    files = [p for p in (root / "studies").rglob("*") if p.is_file()]
    assert sum(s.stored_bytes for s in ct) == sum(f.stat().st_size for f in files)
    assert all(s.raw_bytes == 2 * 512 * 512 * 2 for s in ct)


def test_series_without_sizes_are_unknown():
    from medpipe.sources import InstanceInfo

    a = InstanceInfo("st", "se", "1", modality="CT", rows=4, columns=4, bits_stored=12, stored_bytes=100)
    b = InstanceInfo("st", "se", "2", modality="CT", rows=4, columns=4, bits_stored=12, stored_bytes=None)
    (s,) = series_of([a, b])
    assert s.instances == 2 and s.stored_bytes is None and s.raw_bytes == 2 * 4 * 4 * 2


# ---------------------------------------------------------------- sample

def fake_series(n: int, modality="CT", syntax="1.2.840.10008.1.2.4.80", bits=12, start=0) -> list[SeriesInfo]:
    return [SeriesInfo(f"study{i}", f"1.2.{modality}.{i:04d}", modality, syntax, bits, instances=10, frames=10,
                       raw_bytes=1000 + 37 * i, stored_bytes=400 + 13 * i) for i in range(start, start + n)]


def test_sample_is_seeded_stratified_and_small_strata_whole():
    series = fake_series(20) + fake_series(2, "CR") + fake_series(5, "MR", bits=16)
    groups = strata(series)
    assert len(groups) == 3
    a, b, c = draw(groups, 7, 0.25), draw(groups, 7, 0.25), draw(groups, 8, 0.25)
    assert a == b and a != c
    sizes = {k: len(v) for k, v in a.items()}
    assert sizes == {"CR | 1.2.840.10008.1.2.4.80 | 9-12": 2, "CT | 1.2.840.10008.1.2.4.80 | 9-12": 5,
                     "MR | 1.2.840.10008.1.2.4.80 | 13-16": 2}
    assert sample_size(20, None, 3) == 3 and sample_size(20, 1.0, None) == 20 and sample_size(2, 0.1, None) == 2
    with pytest.raises(Exception, match="fraction"):
        draw(groups, 0, 1.5)


# ---------------------------------------------------------------- estimate

def population(n=60, seed=0):
    """Series whose re-encoded size is a noisy fraction of their stored size."""
    rng = np.random.default_rng(seed)
    stored = rng.integers(10_000, 200_000, n).astype(float)
    after = stored * rng.normal(0.8, 0.05, n)
    return stored, after


def stratum_for(stored, after, picked, known=True):
    uids = [f"u{i}" for i in range(len(stored))]
    measured = {uids[i]: {"stored_bytes": stored[i], "codecs": {"c": {"status": "ok", "bytes": after[i],
                                                                     "encode_s": 1.0, "decode_s": 0.1}}}
                for i in picked}
    ratio = np.random.default_rng(len(stored)).uniform(2.0, 3.5, len(stored))  # stored : raw varies by series
    raw = {u: r * s for u, s, r in zip(uids, stored, ratio)}
    return Stratum("CT", "CT", dict(zip(uids, stored)) if known else raw, known,
                   dict(zip(uids, stored)) if known else {}, measured)


def test_full_sample_is_exact_with_zero_width():
    stored, after = population()
    for known in (True, False):
        row = combine([stratum_for(stored, after, range(60), known)], "c", {"s": 1.0})
        assert row["bytes_projected"] == pytest.approx(after.sum()) and row["ci_low"] == row["ci_high"]
        assert row["bytes_now"] == pytest.approx(stored.sum()) and row["bytes_now_low"] == row["bytes_now_high"]
        assert row["saving"] == pytest.approx(1 - after.sum() / stored.sum())
        assert row["saving_low"] == pytest.approx(row["saving_high"])


def test_interval_covers_the_full_figure_and_carries_unknown_sizes():
    stored, after = population()
    truth = after.sum()
    rng = np.random.default_rng(1)
    hits, hits_unknown, widths = 0, 0, []
    for _ in range(200):
        picked = rng.choice(60, 12, replace=False)
        row = combine([stratum_for(stored, after, picked)], "c", {"s": 1.0})
        hits += row["ci_low"] <= truth <= row["ci_high"]
        assert row["bytes_now_low"] == row["bytes_now_high"] == pytest.approx(stored.sum())  # known: exact
        un = combine([stratum_for(stored, after, picked, known=False)], "c", {"s": 1.0})
        hits_unknown += un["ci_low"] <= truth <= un["ci_high"]
        assert un["bytes_now_low"] < stored.sum() * 1.5 and un["bytes_now_high"] > un["bytes_now_low"]
        widths.append((row["ci_high"] - row["ci_low"], un["ci_high"] - un["ci_low"]))
    assert hits >= 180 and hits_unknown >= 180  # nominal 95 %: at least 90 % here
    assert np.mean([w[1] for w in widths]) > np.mean([w[0] for w in widths])  # unknown sizes: wider


def test_a_codec_that_cannot_code_a_series_leaves_it_as_stored():
    stored, after = population(4)
    st = stratum_for(stored, after, range(4))
    st.measured["u0"]["codecs"]["c"] = {"status": "skipped", "reason": "colour"}
    row = combine([st], "c", {"s": 1.0})
    assert row["bytes_projected"] == pytest.approx(stored[0] + after[1:].sum())


# ---------------------------------------------------------------- whole surveys (CLI)

def run_cli(args, capsys):
    from medpipe.cli import main

    code = main(["survey", *map(str, args)])
    return code, capsys.readouterr().out


def survey_folder(out: Path, name="survey") -> Path:
    (folder,) = [p for p in out.iterdir() if p.name.startswith(name)]
    return folder


def test_survey_of_a_folder_at_sample_one(tmp_path, capsys):
    root = small_archive(tmp_path / "src", CT12[:2], slices=2)
    before = tree_hash(root)
    code, out = run_cli([root, "--codecs", "jpegls;htj2k", "--sample", "1", "--out", tmp_path / "out"], capsys)
    assert code == 0, out
    assert tree_hash(root) == before  # read-only towards the source
    folder = survey_folder(tmp_path / "out")
    from medpipe.results import read_rows

    rows = read_rows(folder / "survey.csv")
    stored = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and f.name != "notes.txt")
    alls = {r["codec"]: r for r in rows if r["modality"] == "ALL"}
    assert set(alls) == {"jpegls", "htj2k"} and {r["modality"] for r in rows} == {"ALL", "CR", "CT"}
    for r in alls.values():
        assert r["bytes_now"] == stored and r["series_sampled"] == r["series_total"] == 4
        assert r["ci_low"] == r["ci_high"] == r["bytes_projected"]  # measured, not projected
        assert r["encode_core_hours"] > 0 and r["decode_s_per_study"] > 0
    # JPEG-LS stored data re-encoded with JPEG-LS: within 5 % of what is stored
    assert abs(alls["jpegls"]["bytes_projected"] / stored - 1) < 0.05
    doc = json.loads((folder / "survey.json").read_text())
    assert doc["seed"] == 0 and doc["inventory"]["sources"][0]["instances"] == 6
    assert {r["modality"] for r in doc["inventory"]["by_modality_syntax"]} == {"CR", "CT"}
    assert all(m["codecs"]["jpegls"]["status"] == "ok" for m in doc["measured"].values())
    html = (folder / "survey.html").read_text()
    assert html.count("<img") == 3 and "ratio estimator" in html
    assert not (folder / ".scratch").exists() and not (folder / ".fetch").exists()
    # --resume: nothing measured again, the same figures
    code, out = run_cli([root, "--codecs", "jpegls;htj2k", "--sample", "1", "--out", tmp_path / "out",
                         "--resume"], capsys)
    assert code == 0 and "4 measured before" in out and "measured 1/" not in out
    assert read_rows(folder / "survey.csv") == rows


def test_half_sample_measures_fewer_series_and_holds_the_full_figure(tmp_path, capsys):
    root = small_archive(tmp_path / "src", CT12, slices=2, xray=False)
    args = [root, "--codecs", "jpegls;htj2k", "--out", tmp_path / "out"]
    assert run_cli([*args, "--sample", "1", "--name", "full"], capsys)[0] == 0
    code, out = run_cli([*args, "--sample", "0.5", "--name", "half", "--seed", "3"], capsys)
    assert code == 0, out
    from medpipe.results import read_rows

    full = {r["codec"]: r for r in read_rows(survey_folder(tmp_path / "out", "full") / "survey.csv")
            if r["modality"] == "ALL"}
    half = {r["codec"]: r for r in read_rows(survey_folder(tmp_path / "out", "half") / "survey.csv")
            if r["modality"] == "ALL"}
    for codec, r in half.items():
        assert r["series_sampled"] == 3 < r["series_total"] == 6
        assert r["ci_low"] < r["ci_high"] and r["bytes_now"] == full[codec]["bytes_now"]
        assert r["ci_low"] <= full[codec]["bytes_projected"] <= r["ci_high"], codec


def test_survey_preset_section(tmp_path):
    from medpipe.errors import PresetError
    from medpipe.preset import parse_preset

    p = parse_preset({"survey": {"sources": ["data", "http://127.0.0.1:8042/dicom-web"], "sample": 0.2,
                                 "seed": 4}}, path=tmp_path / "s.yaml")
    assert p.survey["sources"] == [str(tmp_path / "data"), "http://127.0.0.1:8042/dicom-web"]
    assert p.survey["sample"] == 0.2 and p.survey["seed"] == 4 and p.codecs == ()
    with pytest.raises(PresetError, match="survey"):
        parse_preset({"survey": {"sources": ["x"], "sampel": 0.1}}, path=tmp_path / "s.yaml")


def test_bad_arguments_are_one_line(tmp_path, capsys):
    code, out = run_cli([tmp_path / "missing", "--sample", "0.5", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "does not exist" in out and "Traceback" not in out
    code, out = run_cli([tmp_path, "--codecs", "nosuchcodec", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "unknown codec" in out


def test_a_preset_with_a_survey_section_runs_the_survey(tmp_path, capsys):
    from medpipe.cli import main

    small_archive(tmp_path / "src", CT12[:1], slices=2, xray=False)
    preset = tmp_path / "sv.yaml"
    preset.write_text("name: mysurvey\nsurvey: {sources: [src], sample: 1, seed: 5}\ncodecs: [jpegls]\n")
    assert main([str(preset), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().out
    doc = json.loads((survey_folder(tmp_path / "out", "mysurvey") / "survey.json").read_text())
    assert doc["seed"] == 5 and [r["codec"] for r in doc["rows"]] == ["jpegls", "jpegls"]


def test_a_series_that_cannot_be_read_is_counted_as_stored_and_tried_again(tmp_path, capsys):
    root = tmp_path / "src"
    root.mkdir()
    data = shared("xray/RG3_tibia_cr.dcm").read_bytes()
    (root / "cut.dcm").write_bytes(data[:len(data) // 2])  # the header reads; the pixel data is cut off
    args = [root, "--codecs", "jpegls", "--sample", "1", "--out", tmp_path / "out"]
    code, out = run_cli(args, capsys)
    assert code == 0, out
    assert "unreadable" in out
    folder = survey_folder(tmp_path / "out")
    doc = json.loads((folder / "survey.json").read_text())
    (m,) = doc["measured"].values()
    assert m["status"] == "unreadable" and "cut.dcm" in m["reason"]
    (row,) = [r for r in doc["rows"] if r["modality"] == "ALL"]
    assert row["bytes_projected"] == row["bytes_now"] == len(data) // 2  # kept as stored
    code, out = run_cli([*args, "--resume"], capsys)
    assert code == 0 and "measured 1/1" in out  # tried again


def test_nothing_to_survey_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("not DICOM")
    code, out = run_cli([tmp_path / "src", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "nothing to survey" in out
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_survey_on_a_dask_scheduler_gives_the_same_figures(tmp_path, capsys):
    """--scheduler: a real `dask scheduler` and one `dask worker` (2 processes of their own, on 127.0.0.1) measure
    the sampled series; every figure but the timings equals the survey run in worker processes here."""
    pytest.importorskip("distributed")
    import os
    import subprocess
    import sys
    import time

    from medpipe.results import read_rows

    root = small_archive(tmp_path / "src", CT12[:2], slices=2, xray=False)
    code, out = run_cli([root, "--codecs", "jpegls", "--sample", "1", "--out", tmp_path / "local"], capsys)
    assert code == 0, out
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(2)
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                       "1", "--nworkers", "2", "--dashboard-address", ":0", "--host", "127.0.0.1"],
                                      env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        code, out = run_cli([root, "--codecs", "jpegls", "--sample", "1", "--out", tmp_path / "dask",
                             "--scheduler", address], capsys)
        assert code == 0, out
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    timing = ("encode", "decode", "hours", "_s", "seconds", "wall")
    local, dask = (read_rows(survey_folder(tmp_path / d) / "survey.csv") for d in ("local", "dask"))
    strip = [{k: v for k, v in r.items() if not any(t in k for t in timing)} for r in local]
    assert [{k: v for k, v in r.items() if not any(t in k for t in timing)} for r in dask] == strip
    doc = json.loads((survey_folder(tmp_path / "dask") / "survey.json").read_text())
    assert doc["provenance"]["scheduler"] == address
    workers = {m["worker"] for m in doc["measured"].values()}
    assert workers and all(int(w.rsplit(":", 1)[1]) not in (os.getpid(), *(p.pid for p in procs)) for w in workers)
