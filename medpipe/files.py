"""Files medpipe writes: one atomic writer, one name sanitiser, one containment check, one temp-file policy.

- Outputs are written under a temporary name in the target's folder and renamed when complete, so a reader never
  sees half a file and a crash leaves only ``*.part`` names that the next run removes.
- No path built from user data (preset values, DICOM attributes, archive contents) leaves the folder it belongs
  in: names go through :func:`safe_component` (sanitise) or :func:`check_component` (refuse), and joined paths
  through :func:`inside`.
- Operating-system errors (disk full, read-only, permission) become one :class:`OutputError` line naming the path
  and what to do, never a traceback.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import OutputError

PART = ".part"  # suffix of everything being written; never a finished output
TEMP_PREFIX = "medpipe-"  # temporary folders (tempfile) of this tool, removed on exit and by the next run
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10))}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
MAX_COMPONENT = 120


# ---------------------------------------------------------------- errors

def _root_os_error(exc: BaseException) -> BaseException:
    """The innermost OSError that carries an errno (libraries such as pydicom re-raise a wrapped copy without it,
    keeping the original as ``__cause__``)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def os_error(exc: OSError, path: Path | str, doing: str = "write") -> OutputError:
    """One line for an operating-system error on ``path``: what happened and what to do."""
    exc = _root_os_error(exc)
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", -1):
        what = "disk full (or quota reached): free space there or choose another output folder (--out)"
    elif code == errno.EROFS:
        what = "read-only file system: choose a writable output folder (--out)"
    elif code in (errno.EACCES, errno.EPERM):
        what = "permission denied: choose a folder you can write to (--out) or fix its permissions"
    elif code == errno.ENAMETOOLONG:
        what = "name too long for this file system: choose a shorter output folder or name"
    else:
        what = f"{getattr(exc, 'strerror', None) or str(exc).splitlines()[0]}"
    return OutputError(f"{path}: cannot {doing}: {what}")


# ---------------------------------------------------------------- names and containment

def safe_component(text: str, fallback: str = "unnamed") -> str:
    """Any text -> one safe file-name component: no separator, drive, NUL or control character, no '.'/'..',
    no name Windows reserves (CON, NUL, COM1, ...), no trailing dot or space, at most 120 characters."""
    name = _UNSAFE.sub("_", str(text)).strip().strip(".")
    name = re.sub(r"_+", "_", name).strip(" _") or fallback
    if name.split(".")[0].upper() in WINDOWS_RESERVED:
        name = "_" + name
    return name[:MAX_COMPONENT].rstrip(". ") or fallback


def component_problem(text: str) -> str | None:
    """Why ``text`` is not acceptable as one file-name component as it stands, or None when it is."""
    s = str(text)
    if not s or s in (".", ".."):
        return "empty or a relative reference"
    if "\x00" in s or any(ord(c) < 32 for c in s):
        return "holds a NUL or control character"
    if "/" in s or "\\" in s:
        return "holds a path separator"
    if PureWindowsPath(s).drive or PurePosixPath(s).is_absolute() or ":" in s:
        return "is an absolute path or names a drive"
    if ".." in s.split("."):  # 'a..b' is fine, but '..' as a part is not
        return "holds '..'"
    if s.split(".")[0].upper().rstrip(" ") in WINDOWS_RESERVED:
        return "is a name Windows reserves"
    if s != s.rstrip(". "):
        return "ends in a dot or space (Windows drops them)"
    if len(s) > 255:
        return "is longer than 255 characters"
    return None


def check_component(text: str, what: str) -> str:
    """``text`` unchanged when it is a safe file-name component, else OutputError saying why (archives refuse,
    rather than rename, a name they are told to restore)."""
    why = component_problem(text)
    if why:
        raise OutputError(f"{what} {str(text)[:80]!r} {why}; refused (it could write outside its folder)")
    return str(text)


def inside(base: Path | str, *parts: str) -> Path:
    """``base / parts...`` after checking each part is one safe component and the result stays under base."""
    base = Path(base)
    for p in parts:
        check_component(p, "name")
    path = base.joinpath(*parts)
    root = base.resolve()
    real = path.resolve()
    if real != root and root not in real.parents:
        raise OutputError(f"{path}: resolves outside {base}; refused")
    return path


# ---------------------------------------------------------------- atomic writes

def part_name(path: Path) -> Path:
    """The temporary name beside ``path`` (hidden, with this process's id, ending in .part)."""
    return path.with_name(f".{path.name}.{os.getpid()}{PART}")


@contextlib.contextmanager
def atomic_file(path: Path | str):
    """Yield a binary file open under a temporary name beside ``path``; when the block completes it is flushed to
    disk and renamed to ``path``; when it fails it is removed. OS errors become one OutputError line. For data
    written in pieces (np.save, pydicom's save_as, a figure) without holding it all in memory."""
    path = Path(path)
    tmp = part_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise os_error(exc, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write to a temporary name beside the target, flush to disk, then rename: nothing half-written."""
    with atomic_file(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(target: Path | str, replace: bool = False):
    """Yield a temporary folder beside ``target``; rename it to ``target`` when the block completes, remove it when
    the block fails. ``target`` must not exist, unless ``replace`` (a rerun's output): then the old folder is
    removed only once the new one is complete."""
    target = Path(target)
    if target.exists() and not replace:
        raise OutputError(f"{target}: already exists; choose another name or remove it first")
    tmp = part_name(target)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise os_error(exc, target, "create") from None
    try:
        yield tmp
        if replace and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise os_error(exc, target) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def make_dirs(path: Path | str) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, path, "create the folder") from None
    return path


def check_writable(folder: Path | str) -> Path:
    """Create ``folder`` if needed and prove it takes a file, before any input is read."""
    folder = make_dirs(folder)
    probe = part_name(folder / "write-test")
    try:
        with open(probe, "wb") as fh:
            fh.write(b"medpipe")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise os_error(exc, folder) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return folder


# ---------------------------------------------------------------- temporary files

def temp_dir() -> tempfile.TemporaryDirectory:
    """A temporary folder named ``medpipe-<pid>-...`` (removed on exit, on Ctrl-C, and by the next run if this
    process was killed)."""
    return tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        import psutil

        return psutil.pid_exists(pid)
    except ImportError:
        pass
    if os.name == "nt":  # no psutil: assume alive rather than remove another run's files
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _uid():
    return os.getuid() if hasattr(os, "getuid") else None


def clean_stale(folder: Path | str | None = None, min_age_s: float = 60.0) -> int:
    """Remove what killed medpipe processes left: ``medpipe-<pid>-*`` folders in the temp folder, and
    ``.<name>.<pid>.part`` files/folders in ``folder``; only when that process is gone. Returns how many."""
    removed = 0
    now = time.time()
    pattern = re.compile(rf"^{re.escape(TEMP_PREFIX)}(\d+)-")
    part = re.compile(r"^\..+\.(\d+)" + re.escape(PART) + "$")
    places = [(Path(tempfile.gettempdir()), pattern)]
    if folder is not None and Path(folder).is_dir():
        places.append((Path(folder), part))
    for where, rx in places:
        try:
            entries = list(where.iterdir())
        except OSError:
            continue
        for p in entries:
            m = rx.match(p.name)
            if not m or _pid_alive(int(m.group(1))):
                continue
            try:
                st = p.stat()
                if where == places[0][0] and (now - st.st_mtime < min_age_s
                                              or getattr(st, "st_uid", None) != _uid()):
                    continue  # the shared temp folder: only our own user's, and not freshly made
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed += 1
            except OSError:
                pass
    return removed
