"""Presets are refused before any work, with the key and the closest valid one."""
from __future__ import annotations

from pathlib import Path

import pytest

from medpipe.errors import PresetError
from medpipe.preset import load_preset, parse_preset

ROOT = Path(__file__).resolve().parents[1]


def _err(data) -> str:
    with pytest.raises(PresetError) as info:
        parse_preset(data)
    return str(info.value)


def test_shipped_presets_load():
    for path in sorted((ROOT / "presets").glob("*.yaml")):
        preset = load_preset(path)
        assert preset.codecs or preset.archive, path


def test_headct_has_every_thesis_row():
    p = load_preset(ROOT / "presets" / "headct.yaml")
    got = {(s.codec.name, s.codec.p.get("chroma"), s.codec.p.get("preset"), s.codec.p.get("crf")) for s in p.codecs}
    for row in [("x264", "420", "veryslow", None), ("x264", "444", "veryslow", None), ("x264", "420", "veryslow", 20),
                ("x265", "444", "medium", None), ("x265", "444", "veryslow", None), ("x265", "420", "slow", 22)]:
        assert row in got, row
    names = {s.codec.name for s in p.codecs}
    assert {"jpeg8", "jpeg2000", "jpegls", "png", "ffv1", "htj2k", "jpegxl"} <= names
    assert any(s.codec.name == "jpegls" and s.codec.p["near"] > 0 for s in p.codecs)
    assert p.inputs[0].is_dir()  # resolved against the preset's folder: runs from any working directory


def test_unknown_top_level_key_suggests_the_closest():
    msg = _err({"inputs": ["x"], "codec": [{"codec": "png"}]})
    assert "unknown key 'codec'" in msg and "did you mean 'codecs'" in msg


def test_unknown_codec_suggests_the_closest():
    msg = _err({"input": "x", "codecs": [{"codec": "jpegsl"}]})
    assert "unknown codec 'jpegsl'" in msg and "'jpegls'" in msg


def test_unknown_codec_parameter_names_codec_and_key():
    msg = _err({"input": "x", "codecs": [{"codec": "x265", "crff": 22}]})
    assert "codecs[0] (x265)" in msg and "'crff'" in msg and "'crf'" in msg


def test_wrong_types_are_named():
    assert "codecs[0] (jpegls).near: expected integer" in _err({"input": "x", "codecs": [{"codec": "jpegls",
                                                                                        "near": "2"}]})
    assert "ssim: expected true/false" in _err({"input": "x", "ssim": "yes please", "codecs": ["png"]})
    assert "repeat: expected integer, got bool True" in _err({"input": "x", "repeat": True, "codecs": ["png"]})


def test_choices_and_duplicates():
    assert "not one of" in _err({"input": "x", "codecs": [{"codec": "x265", "chroma": "422"}]})
    assert "repeated" in _err({"input": "x", "codecs": ["png", "png"]})
    assert "'codecs' is empty" in _err({"input": "x", "codecs": []})


def test_bad_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("input: x\ncodecs: [png\n")
    with pytest.raises(PresetError, match=r"not valid YAML at line \d+"):
        load_preset(p)


@pytest.mark.parametrize("entry, words", [
    ({"codec": "x265", "crf": 80}, "crf: 80 is out of range 0..51"),
    ({"codec": "x265", "crf": -5}, "crf: -5 is out of range 0..51"),
    ({"codec": "x264", "crf": 99}, "crf: 99 is out of range 0..51"),
    ({"codec": "jpegls", "near": 300}, "near: 300 is out of range 0..255"),
    ({"codec": "png", "level": 12}, "level: 12 is out of range 0..9"),
    ({"codec": "jpegxl", "effort": 0}, "effort: 0 is out of range 1..10"),
])
def test_codec_parameters_are_checked_against_their_declared_ranges(entry, words):
    assert words in _err({"input": "x", "codecs": [entry]})


def test_conflicting_parameters_are_refused():
    msg = _err({"input": "x", "codecs": [{"codec": "x265", "crf": 22, "qp": 20}]})
    assert "crf and qp cannot be set together" in msg and "codecs[0]" in msg
    assert "lossless" in _err({"input": "x", "codecs": [{"codec": "x265", "lossless": True, "crf": 0}]})


def test_x265_qp0_is_not_lossless_but_x264_qp0_is():
    """x265 needs lossless=1 for a lossless stream; qp 0 alone is not (x264's qp 0 is)."""
    p = parse_preset({"input": "x", "codecs": [{"codec": "x265", "qp": 0}, {"codec": "x264", "qp": 0},
                                               {"codec": "x265", "lossless": True}]})
    assert [s.codec.lossless for s in p.codecs] == [False, True, True]


@pytest.mark.parametrize("data, where", [
    ({"name": "../../x"}, "name"),
    ({"name": "/abs"}, "name"),
    ({"name": "C:evil"}, "name"),
    ({"name": "CON"}, "name"),
    ({"dicom_out": {"folder": "../../x"}}, "dicom_out.folder"),
    ({"report": {"folder": "a/b"}}, "report.folder"),
])
def test_names_that_become_folders_cannot_leave_the_output(data, where):
    msg = _err({"input": "x", "codecs": ["png"], **data})
    assert where in msg and "refused" in msg


def test_every_part_is_checked_before_any_work():
    """Options of each part (matrix, DICOM output, report, archive) are refused when the preset loads."""
    assert "dicom_out: unknown key 'ofset_table'" in _err({"input": "x", "codecs": ["png"],
                                                          "dicom_out": {"ofset_table": "basic"}})
    assert "'offset_table'" in _err({"input": "x", "codecs": ["png"], "dicom_out": {"ofset_table": "basic"}})
    assert "report: unknown key 'heatmap'" in _err({"input": "x", "codecs": ["png"], "report": {"heatmap": 1}})
    assert "archive: unknown key 'ordr'" in _err({"input": "x", "codecs": ["png"], "archive": {"ordr": "x"}})
    assert "executor: 'spark' is not one of" in _err({"input": "x", "codecs": ["png"], "executor": "spark"})
    assert "repeat: 0 is out of range" in _err({"input": "x", "codecs": ["png"], "repeat": 0})


def test_a_folder_given_as_the_preset_says_so(tmp_path):
    with pytest.raises(PresetError, match="is a folder; give a preset file"):
        load_preset(tmp_path)
