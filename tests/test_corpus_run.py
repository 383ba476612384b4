"""The whole product over a corpus from outside the project (issue 11.11): medpipe runs pydicom's own test files
with real codecs, as one folder and file by file. No traceback; every row ok, skipped with its reason, or failed
with one line; frames smaller than an encoder opens are padded and cropped back, never ffmpeg's raw refusal."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
import pytest
from rich.console import Console

from medpipe.errors import MedpipeError
from medpipe.preset import parse_preset
from medpipe.runner import run_preset

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
CODECS = [{"codec": "jpegls"}, {"codec": "rle"},
          {"codec": "x265", "lossless": True, "preset": "ultrafast", "label": "x265 lossless"},
          {"codec": "x265", "crf": 28, "preset": "ultrafast", "label": "x265 crf28"}]

pytestmark = pytest.mark.slow


def run(inputs, out, codecs=CODECS, jobs=2):
    buf = io.StringIO()
    preset = parse_preset({"name": "corpus", "inputs": [str(p) for p in inputs], "codecs": codecs, "jobs": jobs,
                           "ssim": False})
    try:
        code = run_preset(preset, Console(file=buf, width=300), out=out)
    except MedpipeError as exc:  # what the CLI would print as one line (e.g. nothing readable in this file)
        code, _ = 2, buf.write(f"error: {exc}\n")
    return code, buf.getvalue()


def rows_of(out: Path) -> list[dict]:
    docs = [json.loads(p.read_text()) for p in out.glob("*/results.json")]
    return [r for d in docs for r in d["rows"]]


def check_rows(rows):
    for r in rows:
        assert r["status"] in ("ok", "skipped", "failed"), r
        assert "\n" not in (r["reason"] or "") and "Traceback" not in (r["reason"] or ""), r
        assert "Could not open encoder" not in (r["reason"] or ""), r  # tiny frames are padded, not refused
        if r["status"] == "ok" and r["lossless"]:
            assert r["exact"], r


def test_corpus_as_one_folder(tmp_path):
    if not PYDICOM_FILES.is_dir():
        pytest.skip(f"pydicom's test files are not installed ({PYDICOM_FILES})")
    code, log = run([PYDICOM_FILES], tmp_path / "out")
    assert code in (0, 1) and "Traceback" not in log, log[-3000:]
    rows = rows_of(tmp_path / "out")
    check_rows(rows)
    volumes = {r["volume"] for r in rows}
    assert len(volumes) >= 30 and len(rows) == len(volumes) * len(CODECS)
    tiny = [r for r in rows if r["codec"] == "x265" and r["rows"] < 16 and r["status"] == "ok"]
    assert tiny, "no frame smaller than x265's minimum was coded"
    assert sum(r["status"] == "ok" for r in rows) > 0.8 * len(rows)


def test_corpus_file_by_file(tmp_path):
    if not PYDICOM_FILES.is_dir():
        pytest.skip(f"pydicom's test files are not installed ({PYDICOM_FILES})")
    files = sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file())
    answered = 0
    for i, f in enumerate(files):
        out = tmp_path / f"o{i}"
        code, log = run([f], out, CODECS[:1] + CODECS[2:3], jobs=1)
        assert "Traceback" not in log, (f, log[-2000:])
        assert code in (0, 1, 2), f
        if code == 2:
            assert log.strip().splitlines()[-1].startswith("error:") and f.name in log, (f, log[-500:])
        else:
            check_rows(rows_of(out))
        answered += 1
    assert answered == len(files) > 150
