"""results.json / results.csv are input to ``medpipe report``: anyone can edit them. A malformed row or section is
left out with one line naming the file and the row, and the report is written from the rest; a malformed file is
one line -- never a TypeError from a figure or an AttributeError from the loader."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medpipe.errors import MedpipeError
from medpipe.report.load import load_results

from test_report import _copy, run_dir  # noqa: F401 - the real run the report tests build (session fixture)

pytestmark = pytest.mark.slow  # one real run per session (shared with test_report)


def cli_report(folder: Path):
    proc = subprocess.run([sys.executable, "run.py", "report", str(folder), "--no-heatmaps"],
                          cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "400"})
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    return proc.returncode, out.strip().splitlines()


def _edit(folder: Path, edit) -> Path:
    path = folder / "results.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


def test_a_row_of_wrong_types_is_left_out_and_the_report_goes_on(run_dir, tmp_path):  # noqa: F811
    folder = _copy(run_dir, tmp_path)
    n = len(json.loads((folder / "results.json").read_text())["rows"])

    def edit(doc):
        doc["rows"][1].update(cr="abc")
        doc["rows"][2].update(slices=None)
        doc["rows"][3] = "a row"
    path = _edit(folder, edit)
    code, lines = cli_report(folder)
    assert code == 0, lines
    said = [x for x in lines if "left out" in x]
    assert said == [f"report: {path}: row 2 left out: column cr is str 'abc', expected float",
                    f"report: {path}: row 3 left out: column slices is missing or empty",
                    f"report: {path}: row 4 left out: is str 'a row', not an object of columns"], lines
    assert (folder / "report" / "report.html").is_file()
    assert len(load_results(folder).rows) == n - 3


def test_rows_that_are_not_a_list_are_one_line(run_dir, tmp_path):  # noqa: F811
    folder = _copy(run_dir, tmp_path)
    path = _edit(folder, lambda doc: doc.update(rows={"a": 1}))
    code, lines = cli_report(folder)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path}: not a medpipe results.json (no "
                                                                 "list of rows)"), lines


def test_no_usable_row_is_one_line_naming_the_first(run_dir, tmp_path):  # noqa: F811
    folder = _copy(run_dir, tmp_path)
    path = _edit(folder, lambda doc: [r.update(raw_bytes="many") for r in doc["rows"]])
    code, lines = cli_report(folder)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: nothing to report: {path}: row 1 left out: column raw_bytes is str 'many'")


def test_deeply_nested_results_is_one_line(run_dir, tmp_path):  # noqa: F811
    folder = _copy(run_dir, tmp_path)
    (folder / "results.json").write_text("[" * 50000 + "]" * 50000)
    with pytest.raises(MedpipeError, match="results.json: not a medpipe results.json .nested too deeply"):
        load_results(folder)


def test_sections_of_wrong_types_are_left_out(run_dir, tmp_path):  # noqa: F811
    folder = _copy(run_dir, tmp_path)

    def edit(doc):
        doc["volumes"].append("ct7")
        doc["configurations"][0]["curve"] = 5
        doc["provenance"]["preset"] = "p.yaml"
    path = _edit(folder, edit)
    code, lines = cli_report(folder)
    assert code == 0, lines
    said = [x for x in lines if "left out" in x]
    assert said == [f"report: {path}: volumes entry 2 left out: is a str",
                    f"report: {path}: provenance.preset left out: a str, not an object",
                    f"report: {path}: configurations entry 1 left out: curve is int 5"], lines


def test_a_bad_csv_row_is_left_out(run_dir, tmp_path):  # noqa: F811
    folder = _copy(run_dir, tmp_path)
    (folder / "results.json").unlink()
    text = (folder / "results.csv").read_text().splitlines()
    head = text[0].split(",")
    cells = text[1].split(",")
    cells[head.index("rows")] = "wide"
    (folder / "results.csv").write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")
    results = load_results(folder)
    assert results.problems == [f"{folder / 'results.csv'}: row 1 left out: column rows is str 'wide', "
                                "expected int"]
    assert len(results.rows) == len(text) - 2


# ---------------------------------------------------------------- results.json is strict JSON

def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_a_nan_rescale_slope_leaves_results_json_strict(tmp_path):
    """A DICOM series whose RescaleSlope says "NaN" (the fuzzer's native_slope_nan): the run goes on as before, and
    results.json holds null where it held a bare NaN, so strict JSON parsers (and the report) read it."""
    import io
    import warnings

    import pydicom
    from rich.console import Console

    from conftest import SAMPLE
    from medpipe.preset import parse_preset
    from medpipe.runner import run_preset

    src = tmp_path / "nan_slope"
    src.mkdir()
    for path in sorted(SAMPLE.glob("*.dcm"))[:3]:
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns that DS "NaN" is not a valid decimal string
            ds.RescaleSlope = "NaN"
            ds.save_as(src / path.name)
    preset = parse_preset({"name": "nan", "input": str(src), "codecs": [{"codec": "jpegls"}], "jobs": 1,
                           "report": False})
    assert run_preset(preset, Console(file=io.StringIO()), out=tmp_path / "results") == 0
    (folder,) = (tmp_path / "results").iterdir()
    doc = _strict((folder / "results.json").read_text())
    assert [v["rescale_slope"] for v in doc["volumes"]] == [None]
    assert doc["rows"][0]["status"] == "ok" and doc["rows"][0]["psnr_db"] == "inf"  # rows keep their convention
    assert load_results(folder).rows
