"""The floors of the code base, held by parsing every import (module-level and inside functions) with ``ast``.

Floors, bottom to top (a module may import its own floor and the floors below, never above):

0. foundations: errors, files, options, ffmpeg (the only module that starts ffmpeg), depth, metrics, results, the
   one table of transfer syntaxes (syntaxes), and association (the one place a DICOM association is requested)
1. sources (a PACS address -> instance metadata and local files; below the readers, importing none of them), codecs
   (one interface, a codec's knowledge as data) and the readers of volumes (which import no codec; they decode
   JPEG XL and Deflated Image Frame through the frame coders, codecs.frames, which reach no other codec); the
   codestream header readers (dicom.streaminfo, dicom.syntaxes), which the readers use to check a codestream before
   decoding
2. the round trip; DICOM output
3. the matrix, the archive, the report (which reads result files and imports no codec)
4. the preset and the run of a preset
5. the command line
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "medpipe"

FLOORS = [  # (module name prefix, floor); the longest matching prefix wins
    ("medpipe", 0), ("medpipe.errors", 0), ("medpipe.files", 0), ("medpipe.options", 0), ("medpipe.ffmpeg", 0),
    ("medpipe.depth", 0), ("medpipe.metrics", 0), ("medpipe.results", 0), ("medpipe.syntaxes", 0),
    ("medpipe.association", 0),
    ("medpipe.sources", 1), ("medpipe.codecs", 1), ("medpipe.volumes", 1),
    ("medpipe.roundtrip", 2), ("medpipe.dicom", 2),
    # what a codestream says about itself (reading headers, decoding nothing): the readers check it too
    ("medpipe.dicom.streaminfo", 1), ("medpipe.dicom.syntaxes", 1),
    ("medpipe.matrix", 3), ("medpipe.archive", 3), ("medpipe.report", 3), ("medpipe.survey", 3),
    ("medpipe.preset", 4), ("medpipe.runner", 4),
    ("medpipe.cli", 5), ("medpipe.__main__", 5),
]
MAX_LINES = 500
FRAME_CODERS = "medpipe.codecs.frames"


def modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def imports(name: str, path: Path, known: dict) -> set[str]:
    """Every medpipe module ``name`` imports, at any depth of its code (functions included)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("medpipe") and not name.startswith(t + "."):
                found.add(t)
    return found


def floor(name: str) -> int:
    best = max((p for p, _ in FLOORS if name == p or name.startswith(p + ".")), key=len)
    return dict(FLOORS)[best]


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {m: imports(m, f, known) for m, f in known.items()}


def test_every_module_has_a_floor():
    for m in modules():
        assert floor(m) is not None, m


def test_no_import_climbs(graph):
    climbs = [f"{m} (floor {floor(m)}) imports {t} (floor {floor(t)})" for m, ts in graph.items() for t in ts
              if floor(t) > floor(m)]
    assert not climbs, "\n".join(climbs)


def test_no_import_cycle(graph):
    cycles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                cycles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def closure(graph, start: str) -> set[str]:
    seen, todo = set(), [m for m in graph if m == start or m.startswith(start + ".")]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    return seen


@pytest.mark.parametrize("part", ["medpipe.report", "medpipe.volumes", "medpipe.metrics", "medpipe.depth",
                                  "medpipe.results"])
def test_part_reaches_no_codec(graph, part):
    """The report reads result files; readers of volumes, metrics and depth mappings know no codec (the readers
    decode frames through the frame coders, which reach no codec class themselves)."""
    reached = closure(graph, part)
    bad = sorted(m for m in reached if m.startswith(("medpipe.codecs", "medpipe.roundtrip", "medpipe.matrix"))
                 and m != FRAME_CODERS)
    assert not bad, f"{part} reaches {bad}"


def test_only_the_ffmpeg_module_starts_processes():
    """One place runs ffmpeg: no other module imports subprocess or calls os.system / os.popen."""
    offenders = []
    for name, path in modules().items():
        if name == "medpipe.ffmpeg":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(m.split(".")[0] == "subprocess" for m in mods):
                    offenders.append(f"{name} imports subprocess")
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
                    and node.attr in ("system", "popen", "spawnl", "spawnv", "execv", "execvp")):
                offenders.append(f"{name} calls os.{node.attr}")
    assert not offenders, offenders


def test_only_the_codec_context_resolves_ffmpeg():
    """The run's one ffmpeg runner (honouring --ffmpeg and logging every command) is made by CodecContext."""
    users = [name for name, path in modules().items()
             if name not in ("medpipe.ffmpeg", "medpipe.codecs.base")
             and ("Ffmpeg.locate" in path.read_text(encoding="utf-8")
                  or "find_ffmpeg(" in path.read_text(encoding="utf-8"))]
    assert not users, users


def test_no_module_is_over_500_lines():
    big = {name: n for name, path in modules().items()
           if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, big


def test_the_floor_test_sees_function_level_imports(tmp_path):
    """The parser counts imports inside functions too (they once hid an import cycle)."""
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from .runner import run_preset\n")
    assert imports("medpipe.metrics", f, {"medpipe.runner": None, "medpipe.metrics": None}) == {"medpipe.runner"}


def test_the_frame_coders_reach_no_other_codec(graph):
    """The readers may use them because they reach no codec class, nothing above floor 1 and no reader."""
    reached = closure(graph, FRAME_CODERS) - {FRAME_CODERS}
    assert not [m for m in reached if floor(m) > 1 or m.startswith(("medpipe.codecs", "medpipe.volumes"))], reached
