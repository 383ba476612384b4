"""The cache of retrieved instances: ``CACHE/<server>/<study>/<series UID>/<sop>.dcm``, each beside a hidden
``.<sop>.dcm.sha256`` written after the file itself (both atomically). Study and SOP Instance UIDs are named by a
short hash of the UID, so a path stays well under Windows' 260 characters (the series keeps its UID: the readers
name the volume after its folder). A file counts as cached only when its
content hashes to what was recorded, so a run killed mid-write, a truncated or altered file is fetched again, and
a resumed run fetches nothing it already has."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..files import atomic_write_bytes, make_dirs, safe_component

TRANSCODED = ".transcoded"  # hidden: 'NAME.dcm STORED SENT' per instance a source sent transcoded


class SeriesCache:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, sop_uid: str) -> Path:
        return self.folder / f"{short(sop_uid)}.dcm"

    def _hash_file(self, sop_uid: str) -> Path:
        return self.folder / f".{short(sop_uid)}.dcm.sha256"

    def get(self, sop_uid: str) -> Path | None:
        """The cached file when it is there and its content matches its recorded hash, else None."""
        path, mark = self.path(sop_uid), self._hash_file(sop_uid)
        try:
            want = mark.read_text(encoding="ascii").strip()
            return path if sha256_file(path) == want else None
        except (OSError, UnicodeDecodeError):
            return None

    def put(self, sop_uid: str, data: bytes) -> Path:
        make_dirs(self.folder)
        path = atomic_write_bytes(self.path(sop_uid), data)
        atomic_write_bytes(self._hash_file(sop_uid), hashlib.sha256(data).hexdigest().encode("ascii"))
        return path

    def put_file(self, sop_uid: str, source: Path) -> Path:
        """Move a file received elsewhere in this cache folder (same file system) into place."""
        make_dirs(self.folder)
        digest = sha256_file(source)
        path = self.path(sop_uid)
        Path(source).replace(path)
        atomic_write_bytes(self._hash_file(sop_uid), digest.encode("ascii"))
        return path

    def note_transcoded(self, sop_uid: str, stored: str, sent: str) -> None:
        """Record that the source sent this instance in another syntax than it stores (the readers say so)."""
        make_dirs(self.folder)
        with open(self.folder / TRANSCODED, "a", encoding="ascii") as f:
            f.write(f"{short(sop_uid)}.dcm {stored} {sent}\n")

    def prune(self, keep: set[str]) -> None:
        """Remove cached instances the source no longer lists (only our own files, in our own cache)."""
        if not self.folder.is_dir():
            return
        names = {self.path(uid).name for uid in keep}
        for f in self.folder.glob("*.dcm"):
            if f.name not in names:
                f.unlink(missing_ok=True)
                (f.parent / f".{f.name}.sha256").unlink(missing_ok=True)


def transcoded(files: list[Path]) -> str:
    """'' or one phrase: how many of ``files`` (retrieved from a PACS) were sent in another syntax than stored."""
    notes: dict[str, tuple[str, str]] = {}
    for folder in {Path(f).parent for f in files}:
        try:
            lines = (folder / TRANSCODED).read_text(encoding="ascii").splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, rest = line.partition(" ")
            stored, _, sent = rest.partition(" ")
            notes[str(folder / name)] = (stored, sent)
    hit = [notes[str(Path(f))] for f in files if str(Path(f)) in notes]
    if not hit:
        return ""
    stored, sent = hit[0]
    return f"{len(hit)} of {len(files)} instance(s) sent in {sent} though stored in {stored}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def short(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


def series_folder(cache: Path, server_key: str, study_uid: str, series_uid: str) -> Path:
    return Path(cache) / safe_component(server_key) / short(study_uid) / safe_component(series_uid)
