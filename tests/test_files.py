"""The one file-writing module: a name from user data never leaves its folder, and writes are atomic."""
from __future__ import annotations

from pathlib import Path

import pytest

from medpipe.errors import OutputError
from medpipe.files import atomic_file, atomic_folder, atomic_write_bytes, check_component, inside, safe_component

BAD = ["../x", "..", ".", "/etc/passwd", "a/b", "a\\b", "C:evil", "C:\\Windows", "\\\\server\\share", "nul\x00x",
       "line\nbreak", "tab\tname", "CON", "con.txt", "NUL", "COM1", "lpt9.dcm", "AUX", "name.", "name ", ""]


@pytest.mark.parametrize("name", BAD)
def test_unsafe_names_are_refused(name, tmp_path):
    with pytest.raises(OutputError, match="refused"):
        check_component(name, "name")
    with pytest.raises(OutputError):
        inside(tmp_path, name)


@pytest.mark.parametrize("name", BAD)
def test_sanitised_names_stay_in_their_folder(name, tmp_path):
    safe = safe_component(name)
    assert check_component(safe, "name") == safe  # the sanitised name is itself acceptable
    target = inside(tmp_path, safe)
    assert target.parent == tmp_path and target.resolve().parent == tmp_path.resolve()


def test_plain_names_pass_unchanged(tmp_path):
    for name in ("ct_head-ge_dcmqa", "s01_series 2", "JPEG-LS near=2", "a..b", "résumé"):
        assert check_component(name, "name") == name
        assert inside(tmp_path, name) == tmp_path / name


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    base = tmp_path / "base"
    base.mkdir()
    (base / "link").symlink_to(outside)
    with pytest.raises(OutputError, match="outside"):
        inside(base, "link")


def test_atomic_writes_leave_nothing_half_written(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as fh:
            fh.write(b"new, half")
            raise RuntimeError("killed midway")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    folder = tmp_path / "series"
    with pytest.raises(RuntimeError):
        with atomic_folder(folder) as tmp:
            (Path(tmp) / "1.dcm").write_bytes(b"x")
            raise RuntimeError("killed midway")
    assert not folder.exists() and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with atomic_folder(folder) as tmp:
        (Path(tmp) / "1.dcm").write_bytes(b"x")
    assert (folder / "1.dcm").read_bytes() == b"x"
    with pytest.raises(OutputError, match="already exists"):
        with atomic_folder(folder):
            pass
