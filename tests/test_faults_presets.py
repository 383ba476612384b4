"""Hostile presets: an alias bomb, nesting twenty thousand deep, a huge file. Each is one line naming the file,
exit 2, refused quickly and with memory bounded by the file's size (the fault probe saw 4 GB and 39 s, then
MemoryError; and a RecursionError)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc

import pytest

from conftest import ROOT
from medpipe.errors import PresetError
from medpipe.preset import load_preset
from medpipe.yamlsafe import MAX_BYTES


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\ncodecs: *i\n"


HOSTILE = {
    "alias_bomb": (billion_laughs(), "alias"),
    "deep_flow": ("codecs: " + "[" * 20000 + "]" * 20000 + "\n", "nested more than"),
    "deep_block": ("".join(" " * i + f"k{i}:\n" for i in range(1000)) + " " * 1000 + "x: 1\n", "nested more than"),
    "deep_compact": ("codecs:\n" + "- " * 20000 + "1\n", "nested more than"),
    "huge": ("name: big\n" + "# padding\n" * (MAX_BYTES // 10 + 1), "at most"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_preset_is_refused_quickly_with_bounded_memory(tmp_path, case):
    text, said = HOSTILE[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(PresetError, match=said) as info:
            load_preset(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 10
    assert peak < 20 * len(text) + (8 << 20), peak  # bounded by the file, not by what it expands to
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("case", ["alias_bomb", "deep_flow"])
def test_hostile_preset_is_one_line_exit_2(tmp_path, case):
    path = tmp_path / f"{case}.yaml"
    path.write_text(HOSTILE[case][0])
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "400"})
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert path.name in lines[0] and "Traceback" not in lines[0]


def test_a_plain_anchor_free_preset_still_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: fine\ncodecs:\n  - {codec: jpegls}\n  - {codec: ffv1, level: 3}\n")
    assert [c.codec.name for c in load_preset(path).codecs] == ["jpegls", "ffv1"]
