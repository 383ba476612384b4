"""An index edited and resealed with values of the wrong type (a string for the codec dict or the signedness, a
layout medpipe does not write, a null mapping, JSON nested thousands deep) is refused when the archive is opened,
with one ArchiveError line naming index.json and the key, before anything is written -- never an AttributeError,
ValueError or RecursionError from inside verify."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medpipe.archive import ArchiveError, extract_archive, verify_archive
from medpipe.archive.index import INDEX, SEAL, sha256

from test_archive import _ctx
from test_archive_seal import built, copy_of, reseal, sources  # noqa: F401 - the module's fixtures


def _set(path: str, value):
    """An edit setting ``groups.0.codec`` (dots, list positions as numbers) to ``value``."""
    def edit(ix):
        *head, last = path.split(".")
        for key in head:
            ix = ix[int(key)] if key.isdigit() else ix[key]
        ix[int(last) if last.isdigit() else last] = value
    return edit


def _nested(levels: int):
    value = 1
    for _ in range(levels):
        value = [value]
    return value


EDITS = {  # name -> (edit, the key the line names)
    "codec_str": (_set("groups.0.codec", "jpegxl"), "groups[0].codec is a string"),
    "layout_junk": (lambda ix: ix["groups"][0].update(layout="video", mapping=None), "groups[0].mapping is null"),
    "mapping_null": (_set("groups.0.mapping", None), "groups[0].mapping is null"),
    "mapping_str": (_set("groups.0.mapping", "identity"), "groups[0].mapping is a string"),
    "mapping_field": (_set("groups.0.mapping.shift", "2"), "groups[0].mapping.shift is a string"),
    "signed_str": (_set("scans.0.signed", "yes"), "scans[0].signed is a string 'yes'"),
    "bits_str": (_set("scans.0.bits_stored", "12"), "scans[0].bits_stored is a string"),
    "shape_nested": (_set("scans.0.shape", [[4], 256, 256]), "scans[0].shape[0] is a list"),
    "files_dict": (_set("scans.0.files", {"a": 1}), "scans[0].files is an object"),
    "part_side": (_set("groups.0.parts.0.side", []), "groups[0].parts[0].side is a list"),
    "order_pair": (_set("groups.0.order.0", ["s01"]), "groups[0].order[0] is not a [scan, slice] pair"),
    "index_list": (lambda ix: [ix], "index is a list"),
    "nested_in_key": (_set("groups.0.parts.0.side", {"x": _nested(14)}), "nested more than"),
}


def resealed(built, tmp_path, edit):  # noqa: F811 - the fixture's value
    arc = copy_of(built, tmp_path)
    index = json.loads((arc / INDEX).read_text())
    edited = edit(index)
    reseal(arc, index if edited is None else edited)
    return arc


@pytest.mark.parametrize("name", list(EDITS))
def test_a_resealed_index_of_wrong_types_is_one_line(built, tmp_path, name):  # noqa: F811
    edit, says = EDITS[name]
    arc = resealed(built, tmp_path, edit)
    with pytest.raises(ArchiveError) as caught:
        verify_archive(arc, _ctx())
    line = str(caught.value)
    assert "\n" not in line and line.startswith(str(arc / INDEX)) and says in line, line
    out = tmp_path / "out"
    with pytest.raises(ArchiveError, match="inconsistent"):
        extract_archive(arc, out, _ctx())
    assert not out.exists()  # refused before anything is written


def test_deeply_nested_index_is_one_line_from_the_cli(built, tmp_path):  # noqa: F811
    """50 000 nested lists (as the fuzzer wrote them): json's parser recurses once a level."""
    arc = copy_of(built, tmp_path)
    data = b"[" * 50000 + b"]" * 50000
    (arc / INDEX).write_bytes(data)
    (arc / SEAL).write_text(f"medpipe-archive/2\n{INDEX} {len(data)} {sha256(data)}\n")
    for args in (["verify", arc], ["extract", arc, "--out", tmp_path / "out"]):
        proc = subprocess.run([sys.executable, "run.py", "archive", *map(str, args)], cwd=Path(__file__).parent.parent,
                              capture_output=True, text=True, timeout=300)
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, lines
        assert f"{arc / INDEX}: nested too deeply" in lines[0], lines
    assert not (tmp_path / "out").exists()
