"""Reports: produced from a results file alone, valid PNGs with the recorded panels, BD-rate checks, clinical flags
following the thresholds file. Builds one small real run (6 slices of the shipped CT, real codecs) per session."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from medpipe import report
from medpipe.errors import MedpipeError
from medpipe.report import bd, clinical, figures, heatmaps

pytestmark = pytest.mark.slow  # builds real runs / DICOM series once per module

CODECS = [
    {"codec": "jpegls"},
    {"codec": "jpegls", "near": 2},
    {"codec": "jpegls", "near": 8},
    {"codec": "jpegls", "near": 24},
    {"codec": "jpeg2000", "lossless": False, "psnr": 50},
    {"codec": "jpeg2000", "lossless": False, "psnr": 60},
    {"codec": "jpeg2000", "lossless": False, "psnr": 70},
    {"codec": "x265", "bits": 12, "chroma": "gray", "preset": "ultrafast", "crf": 8},
    {"codec": "x265", "bits": 12, "chroma": "gray", "preset": "ultrafast", "crf": 24},
]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, sample_volume):
    """A real results folder made by a real run: 6 slices of the sample written as a PNG stack (the input),
    9 configurations, slices 0 and 3 kept for heatmaps."""
    import io

    from rich.console import Console

    from medpipe.preset import parse_preset
    from medpipe.runner import run_preset
    from medpipe.volumes import dump_png, load_volume

    base = tmp_path_factory.mktemp("rep")
    src = base / "source" / "ct6"
    small = load_volume(report.Path(sample_volume.source))
    small.pixels = np.ascontiguousarray(small.pixels[10:16])
    small.modality, small.body_part = "CT", "HEAD"
    dump_png(small, src)
    preset = parse_preset({"name": "t", "input": str(src), "codecs": CODECS, "jobs": 1,
                           "report": {"slices": [0, 3], "heatmap_max": 8}})
    assert run_preset(preset, Console(file=io.StringIO()), out=base / "results") == 0
    (folder,) = (base / "results").iterdir()
    rows = json.loads((folder / "results.json").read_text())["rows"]
    assert all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows]
    return folder


def _copy(run_dir, tmp_path, name="run"):
    dst = tmp_path / name
    shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("report"))
    return dst


def _check_figures(out):
    """Every figure: a PNG whose header size matches figures.json, decodable, with the panels its kind has."""
    from PIL import Image

    items = json.loads((out / "figures.json").read_text())
    assert items
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == sorted(i["file"] for i in items)
    for it in items:
        path = out / "figures" / it["file"]
        assert figures.png_size(path) == (it["width_px"], it["height_px"])
        with Image.open(path) as im:
            im.verify()
        assert it["width_px"] > 400 and it["height_px"] > 300
    return items


def test_report_with_heatmaps(run_dir, tmp_path):
    folder = _copy(run_dir, tmp_path)
    html = report.build_report(folder, {"reference": "jpegls", "slices": [0, 3], "heatmap_max": 8}, None)
    out = folder / "report"
    items = _check_figures(out)
    kinds = {}
    for it in items:
        kinds.setdefault(it["kind"], []).append(it)
    assert [i["panels"] for i in kinds["rd"]] == [2]
    assert [i["panels"] for i in kinds["bars"]] == [len(figures.BAR_METRICS)]
    lossy = 8  # every configuration but jpegls near 0
    heat = kinds["heatmap"]
    assert len(heat) == 2 * math.ceil(lossy / 6)  # two slices, 6 configurations per page
    assert sum(i["panels"] - 1 for i in heat) == 2 * 2 * lossy  # |error| + SSIM panel per configuration
    text = html.read_text()
    assert text.count("data:image/png;base64,") == len(items)  # self-contained: every figure embedded
    assert "src='figures/" not in text
    md = (out / "summary.md").read_text()
    for it in items:
        assert f"](figures/{it['file']})" in md
    assert "German Röntgen Society" in text and "Canadian Association of Radiologists" in text
    assert "BD-rate" in text and "kept no slices" not in text
    from medpipe.report.load import load_results

    limits = clinical.load_limits()
    counted = clinical.beyond_counts(clinical.clinical_flags(load_results(folder).rows, limits), limits)
    assert counted.summary() in text and counted.lossy == 8  # the one count, as the console prints it


def test_report_from_results_file_alone(run_dir, tmp_path):
    """Input gone, kept slices gone, then results.json gone too: every figure but the heatmaps, reason said."""
    from medpipe.cli import main

    folder = _copy(run_dir, tmp_path)
    doc = json.loads((folder / "results.json").read_text())
    doc["volumes"][0]["source"] = str(tmp_path / "moved-away")
    (folder / "results.json").write_text(json.dumps(doc))
    html = report.build_report(folder, True, None)
    items = _check_figures(folder / "report")
    assert {i["kind"] for i in items} == {"rd", "bars", "heatmap"}  # heatmaps come from the kept slices
    assert "moved-away" in html.read_text()

    for name in ("slices.npz", "slices.json", "results.json"):
        (folder / name).unlink()
    shutil.rmtree(folder / "report")
    assert main(["report", str(folder / "results.csv")]) == 0
    items = _check_figures(folder / "report")
    assert {i["kind"] for i in items} == {"rd", "bars"}
    text = (folder / "report" / "report.html").read_text()
    assert "kept no slices" in text
    # curves rebuilt from the CSV's setting column: jpegls and jpeg2000 and x265 sweep, BD table present
    assert text.count("(reference)") == 1


def test_report_escapes_labels_and_volume_names(run_dir, tmp_path):
    """A label or volume name is text: '<script>' in either appears escaped in report.html, never as markup."""
    folder = _copy(run_dir, tmp_path)
    doc = json.loads((folder / "results.json").read_text())
    evil_vol, evil_label = "ct<script>alert('v')</script>", "jpegls <script>alert(\"x\")</script> & co"
    for r in doc["rows"]:
        r["volume"] = evil_vol
        if r["label"] == doc["rows"][0]["label"]:
            r["label"] = evil_label
    for v in doc["volumes"]:
        v["volume"] = evil_vol
    (folder / "results.json").write_text(json.dumps(doc))
    text = report.build_report(folder, {"heatmaps": False}, None).read_text()
    assert "<script" not in text.lower()
    assert "ct&lt;script&gt;alert(&#39;v&#39;)&lt;/script&gt;" in text
    assert "jpegls &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in text
    assert text.count("<table>") >= 3 and "<h2 id='limits'>" in text  # the page's own markup is not escaped
    md = (folder / "report" / "summary.md").read_text()
    assert f"### {evil_vol}" in md  # Markdown is not HTML: written as is


CHECK_IN_BROWSER = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.title = JSON.stringify({imgs: imgs.length, decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    tables: document.querySelectorAll('table').length, scripts: document.scripts.length,
    label_as_text: document.body.innerText.includes('jpegls <script>alert("x")<\\/script> & co')});
});</script>"""


def test_chromium_renders_the_report_with_data_as_text(run_dir, tmp_path):
    """The templated page in a real browser (headless Chromium): every embedded figure decodes, the tables are
    there, and a label holding '<script>' is shown as text, never run (the only script is this test's own)."""
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium not installed (.ci/run installs it)")
    folder = _copy(run_dir, tmp_path)
    doc = json.loads((folder / "results.json").read_text())
    doc["rows"][0]["label"] = 'jpegls <script>alert("x")</script> & co'
    (folder / "results.json").write_text(json.dumps(doc))
    page = report.build_report(folder, {"heatmaps": True}, None)
    figures_made = len(json.loads((page.parent / "figures.json").read_text()))
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", CHECK_IN_BROWSER + "</body>"))
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    title = done.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    seen = json.loads(title.replace("&quot;", '"'))
    assert seen["imgs"] == seen["decoded"] and seen["imgs"] >= figures_made > 0, seen
    assert seen["tables"] >= 3 and seen["scripts"] == 1 and seen["label_as_text"], seen


def test_templates_are_package_data():
    """The templates are found through importlib.resources (as from an installed wheel), and pyproject ships them."""
    import importlib.resources
    import re

    from medpipe.report import pages

    found = importlib.resources.files("medpipe.report").joinpath("templates")
    names = {p.name for p in found.iterdir()}
    assert {"report.html", "report.css", "summary.md"} <= names
    assert set(pages.templates().list_templates()) >= {"report.html", "report.css", "summary.md"}
    assert all(pages.templates().get_template(n) for n in ("report.html", "summary.md"))  # they compile
    pyproject = (report.Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^"medpipe.report" = \[.*"templates/\*".*\]$', pyproject, re.M)


def test_report_imports_no_codec():
    """The report reads files: importing it (in a fresh interpreter) loads no codec module."""
    import subprocess
    import sys

    code = ("import sys, medpipe.report, medpipe.cli.report; "
            "print(sorted(m for m in sys.modules if m.startswith('medpipe.codecs') or m.startswith('medpipe.matrix')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=report.Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_flagged_csv_follows_limits(run_dir, tmp_path):
    from medpipe.results import read_rows

    folder = _copy(run_dir, tmp_path)
    report.build_report(folder, {"heatmaps": False}, None)
    rows = read_rows(folder / "report" / "results_flagged.csv")
    limits = clinical.load_limits()
    head = next(r for r in limits.rules if r["id"] == "ct_head")["max_cr"]
    for r in rows:
        assert (r["clinical_rule"] or "") == ("" if r["lossless"] else "ct_head")
        if r["lossless"]:
            assert r["clinical_flag"] == "lossless"
            continue
        for src, limit in head.items():
            assert r[f"flag_{src}"] == ("within" if r["cr"] <= limit else "beyond")


def test_bd_rate_self_and_known_cases():
    rate, q = [0.1, 0.2, 0.4, 0.8, 1.6], [38.0, 41.5, 44.0, 47.5, 50.0]
    assert bd.bd_rate(rate, q, rate, q) == pytest.approx(0.0, abs=1e-12)
    assert bd.bd_quality(rate, q, rate, q) == pytest.approx(0.0, abs=1e-12)
    # the same curve needing 25 % more bits everywhere, or giving 1.5 dB more everywhere
    assert bd.bd_rate(rate, q, [r * 1.25 for r in rate], q) == pytest.approx(25.0, rel=1e-9)
    assert bd.bd_rate(rate, q, [r * 0.8 for r in rate], q) == pytest.approx(-20.0, rel=1e-9)
    assert bd.bd_quality(rate, q, rate, [v + 1.5 for v in q]) == pytest.approx(1.5, rel=1e-9)
    # test curve only half overlapping: measured on the overlap (exact when log rate is linear in PSNR)
    lin_q = [36.0, 39.0, 42.0, 45.0, 48.0]
    lin_r = [0.1 * 2 ** ((v - 36) / 3) for v in lin_q]
    assert bd.bd_rate(lin_r, lin_q, [r * 2 for r in lin_r[2:]], lin_q[2:]) == pytest.approx(100.0, rel=1e-9)
    assert bd.bd_rate(rate, q, [5, 6], [60.0, 62.0]) is None  # no overlap
    assert bd.bd_rate(rate, q, [1.0], [45.0]) is None  # one point is not a curve
    assert bd.bd_rate(rate, q, [0.5, 0.6, math.inf], [44.0, 45.0, math.inf]) is not None  # lossless dropped


# BD values of the hand-written PCHIP medpipe used before scipy's PchipInterpolator (commit a4b88a9): the switch
# must leave every reported number as it was, up to floating-point noise.
BD_BEFORE_SCIPY = [
    (([0.1, 0.2, 0.4, 0.8, 1.6], [38.0, 41.5, 44.0, 47.5, 50.0], [0.12, 0.21, 0.5, 0.9, 1.5],
      [37.0, 41.0, 44.5, 47.0, 51.0]), 16.203628682948647, -0.6739620840670991),
    (([0.083, 0.112, 0.3, 0.7], [45.62, 45.96, 48.1, 52.3], [0.05, 0.09, 0.2, 0.5, 1.1],
      [41.2, 44.0, 46.9, 50.2, 54.8]), 2.0921754888965083, -0.3758470060609308),
    (([0.1, 0.5, 0.4, 1.2, 2.0, 2.1], [30.0, 33.0, 37.0, 40.0, 45.0, 52.0], [0.2, 0.3, 0.9], [31.0, 36.0, 44.0]),
     -46.51452270208895, 3.051032800174119),
]


@pytest.mark.parametrize("curves,rate,quality", BD_BEFORE_SCIPY)
def test_bd_values_same_as_before_scipy(curves, rate, quality):
    assert bd.bd_rate(*curves) == pytest.approx(rate, rel=1e-12)
    assert bd.bd_quality(*curves) == pytest.approx(quality, rel=1e-12)


def _row(modality, body_part, cr, max_err=50, lossless=False):
    return {"volume": "v", "status": "ok", "cr": cr, "modality": modality, "body_part": body_part,
            "max_abs_err": 0 if lossless else max_err, "lossless": lossless, "exact": lossless}


@pytest.mark.parametrize("modality,body_part,cr,flag", [
    ("CT", "HEAD", 5.0, "within"),  # at the DRG limit
    ("CT", "HEAD", 5.01, "within CAR; beyond DRG"),
    ("CT", "BRAIN", 12.5, "beyond"),
    ("CT", "CHEST", 8.0, "within"),
    ("CT", "ABDOMEN", 14.0, "within CAR; beyond DRG"),
    ("CT", "CHEST", 15.5, "beyond"),
    ("CR", "CHEST", 10.0, "within"),
    ("DX", "EXTREMITY", 29.0, "within CAR; beyond DRG"),
    ("CR", "CHEST", 31.0, "beyond"),
    ("MR", "HEAD", 6.0, "within"),
    ("MR", "HEAD", 8.0, "beyond"),
    ("XA", "HEART", 7.0, "beyond"),
    ("US", "ABDOMEN", 50.0, "no limit"),
])
def test_clinical_flags_follow_table(modality, body_part, cr, flag):
    limits = clinical.load_limits()
    f = clinical.clinical_flags([_row(modality, body_part, cr)], limits)[0]
    assert f["clinical_flag"] == flag


def test_clinical_limits_file_holds_spec_values():
    limits = clinical.load_limits()
    rules = {r["id"]: r for r in limits.rules}
    assert rules["ct_head"]["max_cr"] == {"DRG": 5, "CAR": 12}
    assert rules["ct_other"]["max_cr"] == {"DRG": 8, "CAR": 15}
    assert rules["cr_dr"]["max_cr"] == {"DRG": 10, "CAR": 30}
    assert rules["mr"]["max_cr"]["DRG"] == 7 and rules["rf_xa"]["max_cr"]["DRG"] == 6
    assert rules["mammography"]["near_lossless_only"] and rules["tomosynthesis"]["near_lossless_only"]
    assert "2009" in limits.sources["DRG"]["name"]


def test_near_lossless_only_and_unknown_region():
    limits = clinical.load_limits()
    mg = clinical.clinical_flags([_row("MG", "BREAST", 3.0, max_err=1), _row("MG", "BREAST", 3.0, max_err=9),
                                _row("MG", "BREAST", 2.0, lossless=True)], limits)
    assert [f["clinical_flag"] for f in mg] == ["within (near-lossless)", "beyond: near-lossless only", "lossless"]
    ct = clinical.clinical_flags([_row("CT", "", 6.0)], limits)[0]  # region unknown: strictest CT rule
    assert ct["clinical_rule"] == "ct_head" and "strictest" in ct["clinical_note"]
    chest = clinical.clinical_flags([_row("CT", "", 6.0)], limits, {"*": "ct_other"})[0]
    assert chest["clinical_rule"] == "ct_other" and chest["clinical_flag"] == "within"
    with pytest.raises(MedpipeError, match="did you mean 'ct_head'"):
        clinical.clinical_flags([_row("CT", "", 6.0)], limits, {"*": "ct_haed"})


def test_edited_limits_file_is_used(tmp_path):
    text = clinical.LIMITS_FILE.read_text(encoding="utf-8").replace("max_cr: {DRG: 5, CAR: 12}",
                                                                   "max_cr: {DRG: 50, CAR: 60}")
    path = tmp_path / "limits.yaml"
    path.write_text(text, encoding="utf-8")
    f = clinical.clinical_flags([_row("CT", "HEAD", 20.0)], clinical.load_limits(path))[0]
    assert f["clinical_flag"] == "within"
    path.write_text(text.replace("{DRG: 50, CAR: 60}", "{DRG: 50, CAAR: 60}"), encoding="utf-8")
    with pytest.raises(MedpipeError, match="did you mean 'CAR'"):
        clinical.load_limits(path)


def test_options_checked_with_suggestion():
    assert report.check_options(True)["heatmaps"] is True
    assert report.check_options(False) is None
    with pytest.raises(MedpipeError, match="did you mean 'reference'"):
        report.check_options({"referense": "x265"})
    with pytest.raises(MedpipeError, match="report.slices"):
        report.check_options({"slices": ["a"]})
    with pytest.raises(MedpipeError, match="report.rate"):
        report.check_options({"rate": "kbps"})


def test_missing_results_folder_is_one_clear_error(tmp_path):
    with pytest.raises(MedpipeError, match="no results.json or results.csv"):
        report.build_report(tmp_path, True, None)


def test_same_codec_same_colour_in_every_process():
    """A codec keeps its colour across reports: the same in a fresh interpreter with another hash seed, and
    codecs of the matrix never share one."""
    import os
    import subprocess
    import sys

    names = ["x265", "x264", "ffv1", "jpegls", "jpeg2000", "htj2k", "jpegxl", "png", "ljpeg", "newcodec"]
    here = [figures.codec_color(n) for n in names]
    code = f"from medpipe.report.figures import codec_color; print([codec_color(n) for n in {names!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=report.Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == repr(here)
    assert len(set(here[:-1])) == len(names) - 1


def test_heatmap_choice_spreads_over_codecs():
    rows = [{"label": f"{c}{i}", "codec": c, "cr": float(i + 1)} for c in ("a", "b") for i in range(5)]
    rows.append({"label": "c0", "codec": "c", "cr": 3.0})
    picked = heatmaps._pick_labels(rows, 5)
    assert len(picked) == 5 and "c0" in picked
    assert {"a0", "a4"} <= set(picked)  # both ends of a codec's CR range
    assert heatmaps._pick_labels(rows[:3], 5) == ["a0", "a1", "a2"]


def test_preset_report_options_checked_at_load():
    from medpipe.preset import parse_preset

    with pytest.raises(MedpipeError, match="report: unknown key 'heatmap_slices'"):
        parse_preset({"input": "x", "codecs": ["jpegls"], "report": {"heatmap_slices": [3]}})
    assert parse_preset({"input": "x", "codecs": ["jpegls"], "report": {"slices": [3]}}).report["slices"] == [3]
