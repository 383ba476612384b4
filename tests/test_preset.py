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
    assert "repeat: expected integer, got True" in _err({"input": "x", "repeat": True, "codecs": ["png"]})


def test_choices_and_duplicates():
    assert "not one of" in _err({"input": "x", "codecs": [{"codec": "x265", "chroma": "422"}]})
    assert "repeated" in _err({"input": "x", "codecs": ["png", "png"]})
    assert "'codecs' is empty" in _err({"input": "x", "codecs": []})


def test_bad_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("input: x\ncodecs: [png\n")
    with pytest.raises(PresetError, match=r"not valid YAML at line \d+"):
        load_preset(p)
