"""--lossy rows of the survey (issue 19): per series the smallest lossy setting within a named clinical limit,
flagged lossy, projected apart from the lossless rows. A small archive made of shipped GE head CT slices
(samples/, always present): the same pixels as a head CT (DRG 1:5), as a chest CT (DRG 1:8) and as a modality the
limits file does not list."""
from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from conftest import SAMPLE
from medpipe.report.clinical import load_limits
from medpipe.results import read_rows

LADDER = "jpegls:near=1;jpegls:near=2;jpegxl:distance=0.1,effort=7"
MAX_CR = {"DRG": {"ct_head": 5, "ct_other": 8}, "CAR": {"ct_head": 12, "ct_other": 15}}


def copy_series(dest: Path, names: list[str], **changes) -> None:
    """Copies of sample slices as a series of their own (new UIDs), with ``changes`` to their headers."""
    dest.mkdir(parents=True)
    series = generate_uid()
    for name in names:
        ds = pydicom.dcmread(SAMPLE / name)
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for key, value in changes.items():
            setattr(ds, key, value)
        ds.save_as(dest / name)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lossy") / "src"
    copy_series(root / "head", ["01.dcm", "02.dcm"])
    copy_series(root / "chest", ["03.dcm", "04.dcm"], BodyPartExamined="CHEST")
    copy_series(root / "other", ["05.dcm", "06.dcm"], Modality="OT")
    return root


def run_cli(args, capsys):
    from medpipe.cli import main

    code = main(["survey", *map(str, args)])
    return code, capsys.readouterr().out


def only_folder(out: Path, name: str) -> Path:
    (folder,) = [p for p in out.iterdir() if p.name.startswith(name)]
    return folder


@pytest.fixture(scope="module")
def surveys(archive, tmp_path_factory):
    """A run without --lossy, one with --lossy DRG, then the same measurements held to CAR (--resume)."""
    out = tmp_path_factory.mktemp("out")
    base = [archive, "--codecs", "jpegls", "--sample", "1", "--jobs", "1", "--out", out]
    from medpipe.cli import main

    results = {}
    for name, extra in (("plain", []), ("drg", ["--lossy", "DRG", "--lossy-codecs", LADDER])):
        assert main(["survey", *map(str, base), "--name", name, *extra]) == 0
        folder = only_folder(out, name)
        results[name] = (folder, read_rows(folder / "survey.csv"), json.loads((folder / "survey.json").read_text()))
    return out, base, results


def kind(record: dict) -> str:
    return record["body_part"] if record["modality"] == "CT" else record["modality"]


def test_lossy_rows_are_flagged_within_the_limit_and_apart(surveys):
    _, _, results = surveys
    _, plain, _ = results["plain"]
    folder, rows, doc = results["drg"]
    lossless = [r for r in rows if not r["lossy"]]
    lossy = {r["modality"]: r for r in rows if r["lossy"]}
    # the lossless rows are those of a run without --lossy (the lossy ladder is measured apart)
    keep = [c for c in plain[0] if c not in ("lossy", "guideline", "encode_core_hours", "decode_s_per_study")]
    assert [{c: r[c] for c in keep} for r in lossless] == [{c: r[c] for c in keep} for r in plain]
    assert all(r["codec"] == "jpegls" for r in lossless)
    assert set(lossy) == {"CT", "OT", "ALL"} and all(r["codec"] == "lossy within DRG" for r in lossy.values())
    assert lossy["CT"]["guideline"] == "DRG ct_head 1:5; DRG ct_other 1:8"
    assert "no limit" in lossy["OT"]["guideline"]
    choices = doc["lossy"]["choices"]
    by_part = {kind(doc["measured"][u]): c for u, c in choices.items()}
    assert set(by_part) == {"HEAD", "CHEST", "OT"}
    for part, rule in (("HEAD", "ct_head"), ("CHEST", "ct_other")):
        c = by_part[part]
        assert c["rule"] == rule
        limit = MAX_CR["DRG"][rule]
        for s in c["settings"].values():  # each setting judged by CR against the rule's max_cr
            assert s["status"] == "ok" and (s["verdict"] == "within") == (s["cr"] <= limit), (part, s)
        within = {k: s for k, s in c["settings"].items() if s["verdict"] == "within"}
        if c["status"] == "ok":  # the smallest output among the settings within the limit
            assert c["cr"] <= limit and c["setting"] == min(within, key=lambda k: within[k]["bytes"])
        else:
            assert c["status"] == "kept" and not within
    # head CT: even JPEG-LS NEAR=1 exceeds 1:5 (lossless is already ~4:1); chest: NEAR=2 fits 1:8
    assert by_part["HEAD"]["status"] == "kept" and by_part["CHEST"]["status"] == "ok"
    assert by_part["OT"]["status"] == "no limit"
    stored = {kind(doc["measured"][u]): doc["measured"][u]["stored_bytes"] for u in choices}
    # projected with the same estimator: the chosen setting's DICOM bytes, the rest as stored; sample 1: exact
    assert lossy["ALL"]["bytes_projected"] == stored["HEAD"] + stored["OT"] + by_part["CHEST"]["bytes"]
    assert lossy["ALL"]["ci_low"] == lossy["ALL"]["ci_high"] == lossy["ALL"]["bytes_projected"]
    assert lossy["ALL"]["bytes_now"] == sum(stored.values()) and 0 < lossy["ALL"]["saving"] < 1
    html = (folder / "survey.html").read_text()
    assert "class='lossy'" in html and "LOSSY: DRG ct_head 1:5" in html and "Lossy rows" in html


def test_another_guideline_reuses_the_measurements(surveys, capsys):
    out, base, results = surveys
    code, text = run_cli([*base, "--name", "drg", "--lossy", "CAR", "--lossy-codecs", LADDER, "--resume"], capsys)
    assert code == 0, text
    assert "measured before (--resume)" in text and "measured 1/" not in text
    assert text.count("have no CAR limit") == 1  # said once
    folder = only_folder(out, "drg")
    doc = json.loads((folder / "survey.json").read_text())
    choices = doc["lossy"]["choices"]
    for u, c in choices.items():
        if doc["measured"][u]["modality"] == "CT":
            assert c["status"] == "ok" and c["cr"] <= MAX_CR["CAR"][c["rule"]]
    lossy_all = next(r for r in read_rows(folder / "survey.csv") if r["lossy"] and r["modality"] == "ALL")
    drg_all = next(r for r in results["drg"][1] if r["lossy"] and r["modality"] == "ALL")
    assert lossy_all["bytes_projected"] < drg_all["bytes_projected"]  # CAR allows more than DRG


def test_a_bad_guideline_is_one_line(tmp_path, capsys):
    code, text = run_cli([SAMPLE, "--lossy", "DGR", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "--lossy DGR" in text and "DRG" in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    code, text = run_cli([SAMPLE, "--lossy", "DRG", "--limits", tmp_path / "none.yaml", "--out", tmp_path / "o"],
                         capsys)
    assert code == 2 and "none.yaml" in text and len(text.strip().splitlines()) == 1
    code, text = run_cli([SAMPLE, "--lossy-codecs", "jpegls:near=1", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "--lossy GUIDELINE" in text


def test_preset_survey_lossy_and_limits_file(tmp_path):
    from medpipe.cli.survey import lossy_plan
    from medpipe.preset import load_preset

    limits = load_limits()
    (tmp_path / "mine.yaml").write_text((limits.path).read_text(encoding="utf-8").replace("DRG: 5,", "DRG: 6,"),
                                        encoding="utf-8")
    preset = tmp_path / "p.yaml"
    preset.write_text("name: s\nsurvey:\n  sources: [data]\n  lossy: DRG\n  limits: mine.yaml\n"
                      "  lossy_codecs: [{codec: jpegls, near: 1}]\n", encoding="utf-8")
    sv = load_preset(preset).survey
    assert sv["lossy"] == "DRG" and Path(sv["limits"]) == tmp_path / "mine.yaml"
    plan = lossy_plan(sv["lossy"], sv["limits"], sv["lossy_codecs"], ())
    assert [s.label for s in plan["lossy_specs"]] == ["jpegls near=1"]
    rule, _ = plan["guideline"].rule("CT", "HEAD")
    assert plan["guideline"].limit_text(rule) == "DRG ct_head 1:6"


def test_lossy_rows_are_projected_from_a_sample_with_intervals():
    """Records as measure.py writes them (no codec run): 20 chest CT series; the ladder's CR straddles DRG's 1:8.
    From half the series the lossy row is projected with an interval holding the full figure; whole: exact."""
    from medpipe.survey.inventory import SeriesInfo
    from medpipe.survey.lossy import open_guideline, with_lossy
    from medpipe.survey.run import survey_rows
    from medpipe.survey.sample import draw, strata

    g = open_guideline("DRG")
    series, measured = [], {}
    for i in range(20):
        raw, stored = 100_000 + 5_000 * i, 60_000 + 2_000 * i
        s = SeriesInfo(f"st{i}", f"1.2.{i:03d}", "CT", "1.2.840.10008.1.2.1", 12, instances=4, frames=4,
                       raw_bytes=raw, stored_bytes=stored)
        series.append(s)
        ladder = {f"cr{cr}": {"status": "ok", "raw_bytes": raw, "codestream_bytes": raw // cr,
                              "bytes": raw // cr + 1_000, "encode_s": 0.1, "decode_s": 0.05, "max_abs_err": 9}
                  for cr in (6 + i % 3, 9, 20)}  # 6-8: within 1:8; 9, 20: beyond
        measured[s.series_uid] = {"series_uid": s.series_uid, "status": "ok", "stored_bytes": stored,
                                  "modality": "CT", "body_part": "CHEST", "lossy": ladder,
                                  "codecs": {"lossless": {"status": "ok", "bytes": stored // 2, "encode_s": 0.1,
                                                          "decode_s": 0.1}}}
    groups = strata(series)
    full, choices = with_lossy(g, measured, ["cr20", "cr9", *{f"cr{6 + i % 3}" for i in range(20)}])
    assert all(c["status"] == "ok" and c["cr"] <= 8 for c in choices.values())
    labels = ["lossless", g.label]
    truth = next(r for r in survey_rows(series, groups, full, labels, (g, choices))
                 if r["lossy"] and r["modality"] == "ALL")
    assert truth["ci_low"] == truth["ci_high"] == sum(c["bytes"] for c in choices.values())
    picks = {u for uids in draw(groups, 0, 0.5).values() for u in uids}
    rows = survey_rows(series, groups, {u: full[u] for u in picks}, labels, (g, choices))
    lossy = next(r for r in rows if r["lossy"] and r["modality"] == "ALL")
    lossless = next(r for r in rows if not r["lossy"] and r["modality"] == "ALL")
    assert lossy["series_sampled"] == 10 and lossy["ci_low"] < truth["bytes_projected"] < lossy["ci_high"]
    assert lossy["guideline"] == "DRG ct_other 1:8" and lossless["guideline"] == ""
    assert lossless["bytes_projected"] != lossy["bytes_projected"]  # apart: the lossless row knows no lossy bytes
