"""The archive cannot be made to lie or to write outside its target: every file kind flipped, truncated, deleted;
files added; traversal and reserved names; every field that shapes restored output edited (with and without a
matching SEAL); crashed and repeated extracts.

The property behind the edited-field cases: after any edit, ``extract`` either refuses with one ArchiveError line
and writes nothing, or writes files byte-identical to the originals -- never different bytes called bit-exact.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medpipe.archive import ArchiveError, build_archive, extract_archive, verify_archive
from medpipe.archive.index import INDEX, SEAL, sha256
from medpipe.volumes import load_volume

from conftest import shared
from test_archive import _ctx, same_files, settings, small_copy

KINDS = {"SEAL": SEAL, "index": INDEX, "order": "order.txt", "patients": "patients.txt", "stream": "g01.bin",
         "headers": "headers/s01.hdr"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("seal-in")
    return [small_copy(shared(f"ct_head/philips_phantom_stereotaxis_{x}"), base / x, n=4) for x in "ab"]


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory):
    arc = tmp_path_factory.mktemp("sealed") / "arc"
    build_archive([load_volume(p) for p in sources], arc, settings(candidates=["jpegxl-2slices"]), _ctx())
    return arc


def copy_of(built: Path, tmp_path: Path) -> Path:
    arc = tmp_path / "arc"
    shutil.copytree(built, arc)
    return arc


def reseal(arc: Path, index: dict) -> None:
    """What a careful hand-editor does: rewrite the index and a SEAL that matches it."""
    data = json.dumps(index, indent=1).encode()
    (arc / INDEX).write_bytes(data)
    (arc / SEAL).write_text(f"medpipe-archive/2\n{INDEX} {len(data)} {sha256(data)}\n")


def refused_and_nothing_written(arc: Path, tmp_path: Path, match: str) -> None:
    with pytest.raises(ArchiveError, match=match):
        verify_archive(arc, _ctx())
    out = tmp_path / "out"
    with pytest.raises(ArchiveError, match=match):
        extract_archive(arc, out, _ctx())
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir(exist_ok=True)
    with pytest.raises(ArchiveError):
        extract_archive(arc, existing, _ctx())
    assert list(existing.iterdir()) == []


# ---------------------------------------------------------------- every file kind: flip, truncate, delete

@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damage_to_every_file_kind_is_detected(built, tmp_path, kind, damage):
    arc = copy_of(built, tmp_path)
    path = arc / KINDS[kind]
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:-7]))
    else:
        path.unlink()
    match = f"({SEAL}|{INDEX})" if kind == "SEAL" else Path(KINDS[kind]).name
    refused_and_nothing_written(arc, tmp_path, match)


def test_an_added_file_is_refused(built, tmp_path):
    arc = copy_of(built, tmp_path)
    (arc / "headers" / "extra.hdr").write_bytes(b"x")
    refused_and_nothing_written(arc, tmp_path, "extra.hdr: not part of the sealed archive")


def test_clean_archive_verifies(built):
    assert verify_archive(built, _ctx())["lossless"]


# ---------------------------------------------------------------- names

BAD_NAMES = ["../../../outside_file.dcm", "/tmp/outside_file.dcm", "C:\\outside.dcm", "C:outside.dcm", "a/b.dcm",
             "..", "CON", "nul.dcm", "LPT1", "x\x00.dcm", "ends.", "sub\\dir.dcm"]


@pytest.mark.parametrize("bad", BAD_NAMES)
@pytest.mark.parametrize("where", ["file", "scan", "stream"])
def test_traversal_and_reserved_names_are_refused_before_any_write(built, tmp_path, bad, where):
    arc = copy_of(built, tmp_path)
    victim = tmp_path / "outside_file.dcm"
    victim.write_bytes(b"user data")
    index = json.loads((arc / INDEX).read_text())
    if where == "file":
        index["scans"][0]["files"][0]["name"] = bad
    elif where == "scan":
        index["scans"][0]["name"] = bad
    else:
        index["groups"][0]["stream"] = bad
    for sealed in (False, True):
        if sealed:
            reseal(arc, index)
        else:
            (arc / INDEX).write_text(json.dumps(index, indent=1))
        out = tmp_path / "out" / "deeper"
        with pytest.raises(ArchiveError):
            extract_archive(arc, out, _ctx())
        assert not (tmp_path / "out").exists()
        with pytest.raises(ArchiveError):
            verify_archive(arc, _ctx())
    assert victim.read_bytes() == b"user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arc", "outside_file.dcm"]


# ---------------------------------------------------------------- every field that shapes output

def _edits() -> dict:
    """name -> function editing the index in place (each changes what would be restored, or its checks)."""
    def scan(key, value):
        return lambda ix: ix["scans"][0].__setitem__(key, value)

    def file(key, value):
        return lambda ix: ix["scans"][0]["files"][0].__setitem__(key, value)

    def group(key, value):
        return lambda ix: ix["groups"][0].__setitem__(key, value)

    return {
        "bits_stored": scan("bits_stored", 16), "bits_stored_low": scan("bits_stored", 8),
        "bits_allocated": scan("bits_allocated", 8), "signed": scan("signed", True), "dtype": scan("dtype", "<i2"),
        "value_offset": scan("value_offset", -1000), "shape": scan("shape", [4, 256, 255]),
        "frame_order": scan("frame_order", [1, 0, 2, 3]), "slice_sha256": scan("slice_sha256", ["0" * 64] * 4),
        "series_uid": scan("series_uid", "1.2.3"), "study_uid": scan("study_uid", "1.2.3"),
        "patient_id": scan("patient_id", "SOMEONE"), "scan_name": scan("name", "renamed"),
        "scan_group": scan("group", "g09"), "headers_path": scan("headers", "headers/s02.hdr"),
        "sop_uid": file("sop_uid", "1.2.3.4"), "frames": file("frames", 2), "file_name": file("name", "other.dcm"),
        "restored_sha256": file("restored_sha256", "0" * 64), "header_sha256": file("header_sha256", "0" * 64),
        "exact_copy": file("exact_copy", False),
        "mapping_offset": lambda ix: ix["groups"][0]["mapping"].__setitem__("offset", ix["groups"][0]["mapping"]
                                                                            ["offset"] + 1792),
        "mapping_kind": lambda ix: ix["groups"][0].__setitem__("mapping", {"kind": "table", "bits_out": 16,
                                                                           "table": list(range(0, 8192, 2))}),
        "order_swap": lambda ix: ix["groups"][0]["order"].__setitem__(slice(0, 2), ix["groups"][0]["order"][1::-1]),
        "order_scan": lambda ix: ix["groups"][0]["order"][0].__setitem__(0, "s02"),
        "chunk_sizes": lambda ix: ix["groups"][0]["parts"][0]["chunk_sizes"].reverse(),
        "channels": lambda ix: ix["groups"][0]["codec"].__setitem__("channels", [1] * 8),
        "layout": group("layout", "dicom"), "codec": group("codec", {"codec": "jpegls", "near": 0}),
        "lossless": group("lossless", False), "restored_group_sha": group("restored_sha256", "0" * 64),
        "group_scans": group("scans", ["s02", "s01"]), "stream_file": group("stream", "headers/s01.hdr"),
        "files_list": lambda ix: ix["files"].pop(), "file_size": lambda ix: ix["files"][0].__setitem__("bytes", 1),
        "format": lambda ix: ix.__setitem__("format", "medpipe-archive/3"),
        "patients_view": scan("patient_name", "Somebody^Else"),
    }


EDITS = _edits()


@pytest.mark.parametrize("field", list(EDITS))
def test_every_edited_field_is_caught_or_harmless(built, sources, tmp_path, field):
    """Without a new SEAL every edit is refused at once; with one, extract refuses or restores the originals."""
    arc = copy_of(built, tmp_path)
    index = json.loads((arc / INDEX).read_text())
    EDITS[field](index)
    (arc / INDEX).write_text(json.dumps(index, indent=1))
    refused_and_nothing_written(arc, tmp_path, "does not match its SEAL")
    reseal(arc, index)
    out = tmp_path / "out2"
    try:
        paths = extract_archive(arc, out, _ctx())
    except ArchiveError as exc:
        assert "\n" not in str(exc)
        assert not out.exists()
        return
    for p, src in zip(sorted(paths), sources):  # whatever it wrote is the originals, byte for byte
        same_files(p, src)


# ---------------------------------------------------------------- crashes and repeats

def test_a_crashed_extract_leaves_nothing_and_the_next_cleans_up(built, sources, tmp_path, monkeypatch):
    from medpipe.archive import extract as extract_module

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a crash half-way through the series
        return real(*args, **kwargs)

    real = extract_module.restored_file  # each file of a lossless series, as it is written
    monkeypatch.setattr(extract_module, "restored_file", failing)
    with pytest.raises(KeyboardInterrupt):
        extract_archive(built, out, _ctx())
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    monkeypatch.undo()
    # a killed process leaves its .part folder: the next extract removes it (the process is gone)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".extract.{int(dead.stdout)}.part"
    (stale / "s01_a").mkdir(parents=True)
    (stale / "s01_a" / "half.dcm").write_bytes(b"half")
    paths = extract_archive(built, out, _ctx())
    assert not stale.exists() and (out / "mine.txt").read_text() == "keep"
    for p, src in zip(paths, sources):
        same_files(p, src)
    assert os.path.isdir(paths[0])


# ---------------------------------------------------------------- --out inside the archive

@pytest.mark.parametrize("how", ["direct", "dotdot", "symlink"])
def test_extract_refuses_an_out_inside_the_archive(built, tmp_path, how):
    arc = copy_of(built, tmp_path)
    before = sorted(p.relative_to(arc) for p in arc.rglob("*"))
    if how == "direct":
        out = arc / "restored"
    elif how == "dotdot":
        out = tmp_path / "elsewhere" / ".." / "arc" / "headers" / "restored"
    else:
        link = tmp_path / "link"
        try:
            link.symlink_to(arc / "headers", target_is_directory=True)
        except OSError:
            pytest.skip("no symbolic links here")
        out = link / "restored"
    proc = subprocess.run([sys.executable, "run.py", "archive", "extract", str(arc), "--out", str(out)],
                          cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=300)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "inside the archive" in lines[0], lines
    assert sorted(p.relative_to(arc) for p in arc.rglob("*")) == before  # nothing written into it
    verify_archive(arc, _ctx())


# ---------------------------------------------------------------- a resealed name swap; the signed seal

def reseal_all(arc: Path, index: dict) -> None:
    """What a thorough attacker does: regenerate the views, list their new checksums, rewrite index and SEAL."""
    from medpipe.archive.index import ORDER, PATIENTS, order_lines, patient_lines

    for rel, text in ((ORDER, order_lines(index)), (PATIENTS, patient_lines(index))):
        (arc / rel).write_text(text, encoding="utf-8", newline="\n")
        entry = next(f for f in index["files"] if f["path"] == rel)
        entry.update(bytes=len(text.encode()), sha256=sha256(text.encode()))
    reseal(arc, index)


def test_a_resealed_name_swap_is_refused_even_unsigned(built, tmp_path):
    arc = copy_of(built, tmp_path)
    index = json.loads((arc / INDEX).read_text())
    files = index["scans"][0]["files"]
    files[0]["name"], files[1]["name"] = files[1]["name"], files[0]["name"]
    reseal_all(arc, index)
    refused_and_nothing_written(arc, tmp_path, "files renamed")


def cli(*args, timeout=300):
    proc = subprocess.run([sys.executable, "run.py", *map(str, args)], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "300"})
    return proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two key pairs: ours (archive keygen) and one made by the openssl binary when it is installed."""
    folder = tmp_path_factory.mktemp("keys")
    code, lines = cli("archive", "keygen", folder / "ours.pem")
    assert code == 0 and (folder / "ours.pub").is_file(), lines
    if os.name != "nt":
        assert (folder / "ours.pem").stat().st_mode & 0o077 == 0  # the private key is its owner's only
    made = {"ours": (folder / "ours.pem", folder / "ours.pub")}
    if shutil.which("openssl"):
        priv, pub = folder / "openssl.pem", folder / "openssl.pub"
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(priv)], check=True)
        subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out", str(pub)], check=True)
        made["openssl"] = (priv, pub)
    return made


@pytest.fixture(scope="module")
def signed(sources, keys, tmp_path_factory):
    """An archive signed with the openssl-made key (ours when there is no openssl)."""
    priv, pub = keys.get("openssl", keys["ours"])
    arc = tmp_path_factory.mktemp("signed") / "arc"
    build_archive([load_volume(p) for p in sources], arc, settings(candidates=["jpegxl-2slices"]), _ctx(),
                  sign=priv)
    return arc, pub


def test_signed_archive_verifies_only_with_its_key(signed, keys, tmp_path):
    arc, pub = signed
    code, lines = cli("archive", "verify", arc, "--key", pub, "--require-signature")
    assert code == 0 and any("signature ok" in line for line in lines), lines
    other = keys["ours"][1] if pub != keys["ours"][1] else None
    if other:
        code, lines = cli("archive", "verify", arc, "--key", other)
        assert code == 2 and len(lines) == 1 and "signed by key" in lines[0], lines
    out = tmp_path / "out"
    assert extract_archive(arc, out, _ctx(), key=pub, require_signature=True)


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl binary")
def test_openssl_checks_our_signature(signed, tmp_path):
    """The SIGNATURE is a plain Ed25519 signature of index.json: openssl verifies it with the public key."""
    import base64

    arc, pub = signed
    sig = tmp_path / "sig.bin"
    sig.write_bytes(base64.b64decode((arc / "SIGNATURE").read_text().split()[-1]))
    proc = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin", "-in",
                           str(arc / INDEX), "-sigfile", str(sig)], capture_output=True, text=True)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("attack", ["reseal", "strip", "swap_names"])
def test_a_signed_archive_edited_and_resealed_is_refused(signed, tmp_path, attack):
    arc, pub = signed
    arc = copy_of(arc, tmp_path)
    index = json.loads((arc / INDEX).read_text())
    if attack == "strip":
        (arc / "SIGNATURE").unlink()
    else:
        if attack == "reseal":
            index["scans"][0]["patient_id"] = "SOMEONE ELSE"
        else:
            files = index["scans"][0]["files"]
            files[0]["name"], files[1]["name"] = files[1]["name"], files[0]["name"]
        reseal_all(arc, index)
    with pytest.raises(ArchiveError, match="signature does not match|unsigned"):
        verify_archive(arc, _ctx(), key=pub)
    with pytest.raises(ArchiveError, match="signature does not match|unsigned"):
        extract_archive(arc, tmp_path / "out", _ctx(), key=pub)
    assert not (tmp_path / "out").exists()


def test_unsigned_is_said_once_and_refused_when_a_signature_is_required(built, keys):
    code, lines = cli("archive", "verify", built)
    assert code == 0 and sum("unsigned: accidental damage is detected, deliberate edits are not" in x
                             for x in lines) == 1, lines
    for extra in (["--require-signature"], ["--key", keys["ours"][1]]):
        code, lines = cli("archive", "verify", built, *extra)
        assert code == 2 and len(lines) == 1 and "unsigned" in lines[0], lines


def test_keygen_never_overwrites_and_bad_keys_are_one_line(built, keys, tmp_path):
    code, lines = cli("archive", "keygen", keys["ours"][0])
    assert code == 2 and len(lines) == 1 and "already exists" in lines[0], lines
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    code, lines = cli("archive", "verify", built, "--key", junk)
    assert code == 2 and len(lines) == 1 and "not a PEM key" in lines[0], lines


# ---------------------------------------------------------------- hostile streams: bounded before decoding

def _forged_lossless3d(shape) -> bytes:
    """40 bytes: a lossless3d header with correct CRCs claiming ``shape`` (as the fault probe made them)."""
    import zlib

    from medpipe.codecs.lossless3d import model, stream

    head = stream.HEADER.pack(stream.MAGIC, stream.VERSION, model.DEFAULT_FLAGS | (stream.MODE_CODED <<
                              stream.MODE_SHIFT), 12, 1, *shape, 0, 4095, 0, 0, 0)
    return head[:-4] + zlib.crc32(b"", zlib.crc32(head[:-4])).to_bytes(4, "little")


@pytest.mark.parametrize("index_says", ["true_shape", "claimed_shape"])
@pytest.mark.parametrize("claim", [(4096, 1024, 1024), (1, 65536, 65536)])
def test_forty_byte_lossless3d_stream_claiming_gigavoxels_is_one_line(built, tmp_path, index_says, claim):
    """The stream swapped for 40 bytes claiming 4096 x 1024 x 1024 (or 1 x 65536 x 65536), the index resealed to
    match; with the index still giving the true shape, or edited to the claimed one: verify and extract refuse
    with one line, without allocating (the process's peak memory stays far below the claim)."""
    import resource

    arc = copy_of(built, tmp_path)
    data = _forged_lossless3d(claim)
    assert len(data) == 40
    index = json.loads((arc / INDEX).read_text())
    g = index["groups"][0]
    shape = list(claim) if index_says == "claimed_shape" else g["parts"][0]["shape"]
    g.update(codec={"codec": "lossless3d"}, candidate="lossless3d", layout="volume",
             parts=[{"chunk_sizes": [40], "shape": shape, "dtype": "<u2", "side": {}}])
    (arc / g["stream"]).write_bytes(data)
    entry = next(f for f in index["files"] if f["path"] == g["stream"])
    entry.update(bytes=40, sha256=sha256(data))
    reseal_all(arc, index)
    for args in (["verify", arc], ["extract", arc, "--out", tmp_path / "out"]):
        code, lines = cli("archive", *args)
        assert code == 2 and len(lines) == 2 and lines[0].startswith("unsigned"), lines
        assert "Traceback" not in lines[1] and any(w in lines[1] for w in ("expected", "cannot hold", "shapes")), lines
    assert not (tmp_path / "out").exists()
    try:
        import resource
    except ImportError:  # Windows: the one-line refusals above are the check
        return
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 2 << 20  # KiB: no child reached 2 GiB
