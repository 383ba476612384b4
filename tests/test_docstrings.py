"""Docstrings say what the code does; measurements live in bench/measured/ and the README, where they carry the
date, machine and data they were taken on. A speed or a speed-up in a docstring is a measurement."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "medpipe"
MEASUREMENT = re.compile(r"\d\s*(MB/s|GB/s|kB/s)|\d+(\.\d+)?\s*(x|×|times)\s+(faster|slower)", re.I)


def docstrings(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "lineno", 1), doc


def test_no_measurement_in_a_docstring():
    found = [f"{path.relative_to(PKG)}:{line}: {m.group(0)}"
             for path in sorted(PKG.rglob("*.py"))
             for line, doc in docstrings(path) for m in MEASUREMENT.finditer(doc)]
    assert not found, found


def test_the_check_sees_a_measurement(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""Fast: 140 MB/s."""\n\ndef g():\n    """About 20x slower."""\n')
    assert [bool(MEASUREMENT.search(d)) for _, d in docstrings(f)] == [True, True]
