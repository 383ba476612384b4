"""The CLI end to end, as a user runs it: a small preset on real DICOM files, then results.csv read back."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, SAMPLE

PRESET = """
name: small
input: {input}
dump_png: true
codecs:
  - {{codec: jpegls}}
  - {{codec: jpegls, near: 2}}
  - {{codec: x265, bits: 12, chroma: gray, preset: ultrafast, lossless: true, label: x265 lossless}}
  - {{codec: x265, bits: 12, chroma: "420", preset: ultrafast, crf: 28, label: x265 crf28 420}}
  - {{codec: x264, bits: 10, chroma: gray, preset: ultrafast, label: x264 10-bit}}
  - {{codec: ffv1}}
  - {{codec: jpeg2000_glymur}}
"""


def run(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600)


@pytest.fixture(scope="module")
def small_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    for f in sorted(SAMPLE.glob("*.dcm"))[10:14]:  # four real slices
        shutil.copy(f, folder / f.name)
    return folder


@pytest.mark.slow
def test_small_preset_end_to_end(tmp_path, small_series):
    preset = tmp_path / "small.yaml"
    preset.write_text(PRESET.format(input=small_series.as_posix()))
    before = {p.name: p.read_bytes() for p in small_series.iterdir()}
    proc = run(preset, "--out", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    (folder,) = (tmp_path / "out").iterdir()
    with open(folder / "results.csv", newline="") as fh:
        rows = {r["label"]: r for r in csv.DictReader(fh)}
    required = ("volume codec setting lossless bits raw_bytes compressed_bytes cr bpv mse psnr_db ssim max_abs_err "
                "encode_ms decode_ms exact status reason").split()
    assert set(required) <= set(next(iter(rows.values())))
    for label in ("jpegls", "x265 lossless", "ffv1"):
        assert rows[label]["status"] == "ok" and rows[label]["lossless"] == "true" and rows[label]["exact"] == "true"
    lossy = rows["x265 crf28 420"]
    assert lossy["lossless"] == "false" and lossy["exact"] == "false" and float(lossy["psnr_db"]) > 30
    assert int(rows["jpegls near=2"]["max_abs_err"]) <= 2
    assert "lossy" in rows["x264 10-bit"]["reason"]  # 12 -> 10 bits is said, not hidden
    for r in rows.values():
        assert r["status"] in ("ok", "skipped"), r
        if r["status"] == "ok":
            assert r["exact"] in ("true", "false") and float(r["encode_ms"]) > 0 and float(r["decode_ms"]) > 0
            assert float(r["cr"]) == pytest.approx(int(r["raw_bytes"]) / int(r["compressed_bytes"]), rel=1e-5)
            assert int(r["raw_bytes"]) == 4 * 512 * 512 * 2
    doc = json.loads((folder / "results.json").read_text())
    prov = doc["provenance"]
    assert prov["ffmpeg"]["version"].startswith("ffmpeg") and any("libx265" in c for c in prov["ffmpeg"]["commands"])
    assert prov["preset"]["as_run"]["name"] == "small" and "numpy" in prov["libraries"]
    assert len(doc["rows"]) == 7 and doc["volumes"][0]["shape"] == [4, 512, 512]
    assert {p.name: p.read_bytes() for p in small_series.iterdir()} == before  # input untouched
    from medpipe.volumes import load_volume

    pngs = folder / "png" / small_series.name  # dump_png: 16-bit PNG slices that reload to the same values
    assert len(list(pngs.glob("*.png"))) == 4
    assert (load_volume(pngs).pixels == load_volume(small_series).pixels).all()


@pytest.mark.slow
def test_input_override_and_failure_exit_code(tmp_path, small_series):
    preset = tmp_path / "p.yaml"
    preset.write_text("input: /does/not/exist\ncodecs: [{codec: jpegls}]\n")
    proc = run(preset, "--input", small_series, "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (folder,) = (tmp_path / "o").iterdir()
    (row,) = csv.DictReader(open(folder / "results.csv", newline=""))
    assert row["volume"] == small_series.name and row["status"] == "ok" and row["exact"] == "true"
    assert f"results: {folder}" in proc.stdout.replace("\n", "")
    proc = run(preset, "--out", tmp_path / "o")
    assert proc.returncode == 2 and "does not exist" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_preset_typo_is_one_line_no_traceback(tmp_path):
    preset = tmp_path / "typo.yaml"
    preset.write_text("input: x\ncodecs: [{codec: x265, presset: slow}]\n")
    proc = run(preset)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "'presset'" in out and "did you mean 'preset'" in out and "Traceback" not in out


def test_missing_ffmpeg_is_a_skipped_row_with_the_fix(tmp_path, small_series):
    preset = tmp_path / "v.yaml"
    preset.write_text(f"input: {small_series.as_posix()}\ncodecs: [{{codec: ffv1}}, {{codec: jpegls}}]\n")
    proc = run(preset, "--out", tmp_path / "o", env={"MEDPIPE_FFMPEG": str(tmp_path / "no-ffmpeg")})
    assert proc.returncode == 0, proc.stdout
    (folder,) = (tmp_path / "o").iterdir()
    rows = {r["codec"]: r for r in csv.DictReader(open(folder / "results.csv", newline=""))}
    assert rows["ffv1"]["status"] == "skipped" and "MEDPIPE_FFMPEG" in rows["ffv1"]["reason"]
    assert rows["jpegls"]["status"] == "ok"


def test_list_codecs():
    proc = run("--list-codecs")
    assert proc.returncode == 0
    for name in ("jpegls", "jpeg2000", "htj2k", "jpegxl", "x264", "x265", "ffv1", "jpeg2000_glymur"):
        assert name in proc.stdout
    from medpipe.codecs import REGISTRY

    if REGISTRY["jpeg2000_glymur"].missing():
        assert "install" in proc.stdout  # glymur without OpenJPEG says what to install


@pytest.mark.slow
def test_module_entry_and_codecs_subcommand_match_run_py():
    """python -m medpipe and run.py are the same program; 'codecs' is --list-codecs."""
    via_module = subprocess.run([sys.executable, "-m", "medpipe", "codecs"], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
    via_flag = run("--list-codecs")
    assert via_module.returncode == 0 == via_flag.returncode
    assert via_module.stdout == via_flag.stdout and "x265" in via_module.stdout


def test_a_folder_given_as_the_preset_and_an_empty_input_say_what_to_do(tmp_path):
    proc = run(tmp_path)
    assert proc.returncode == 2 and "is a folder; give a preset file" in proc.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    preset = tmp_path / "p.yaml"
    preset.write_text("codecs: [{codec: jpegls}]\n")
    proc = run(preset, "--input", empty, "--out", tmp_path / "o")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "no input could be loaded" in out and str(empty) in out.replace("\n", "")
    assert "Traceback" not in out


def test_one_parser_with_a_subparser_per_command(capsys):
    """argparse subparsers: 'medpipe -h' lists every command; 'medpipe PRESET' is 'medpipe run PRESET'."""
    import pytest as _pytest

    from medpipe.cli import COMMANDS, build_parser

    parser = build_parser()
    with _pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    listed = capsys.readouterr().out
    assert all(f"    {c} " in listed for c in COMMANDS), listed
    assert parser.parse_args(["run", "presets/quick.yaml", "--jobs", "1"]).preset.name == "quick.yaml"
    args = parser.parse_args(["archive", "verify", "A", "--require-signature"])
    assert (args.command, args.cmd, args.require_signature) == ("archive", "verify", True)
    assert parser.parse_args(["survey", "x", "--sample", "0.5"]).sample == 0.5
