"""Write-then-rename, so an interrupted write never leaves a half-written file or folder behind.

Every output of the project goes through :func:`atomic_path` (one file or folder) or
:func:`atomic_files` (the several files of one item, which appear together or not at all). A
failure to write (read-only folder, a file in the way, a full disk) becomes one :class:`OutputError`
line naming the path; the cleanup of the temporary never hides the original error.
"""

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.errors import UserFacingError


class OutputError(UserFacingError, OSError):
    pass


def describe_os_error(path: Path, error: BaseException) -> str:
    """One line for a failed write of ``path``."""
    code = getattr(error, "errno", None)
    if code == errno.ENOSPC or "No space left" in str(error):
        return f"{path}: no space left on the device holding {path.parent}"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{path}: cannot write there (permission denied or read-only)"
    if code == errno.EISDIR or (path.is_dir() and code != errno.ENOTDIR):
        return f"{path}: is an existing folder, not a file name"
    if code == errno.ENOTDIR or code == errno.EEXIST:
        return f"{path}: a file is in the way of the folder {path.parent}"
    reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
    return f"{path}: cannot write ({reason})"


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(describe_os_error(path, e)) from None
    if path.is_dir():
        raise OutputError(f"{path}: is an existing folder, not a file name")


TEMPORARY_MARK = re.compile(r"\.tmp-[0-9a-f]{8}(\.|$)")


def is_temporary(path: Path) -> bool:
    """A leftover of an interrupted atomic write (``clip.tmp-1a2b3c4d.mp4``): never a real input."""
    return TEMPORARY_MARK.search(path.name) is not None


def temporary_sibling(path: Path) -> Path:
    """``clip.tmp-1a2b.mp4`` next to ``clip.mp4``: the final suffix is kept so tools that pick the
    container from the extension (ffmpeg, soundfile) still work."""
    return path.with_name(f"{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")


def stale_siblings(path: Path) -> list[Path]:
    """Temporaries an interrupted write of ``path`` left behind (``clip.tmp-1a2b3c4d.mp4``)."""
    if not path.parent.is_dir():
        return []
    pattern = re.sub(r"([*?\[])", r"[\1]", path.stem) + ".tmp-*"
    return [p for p in path.parent.glob(pattern) if TEMPORARY_MARK.sub(".", p.name).rstrip(".") == path.name]


OLD_MARK = re.compile(r"\.old-[0-9a-f]{8}$")


def sweep_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove what killed runs left anywhere under ``folder``: temporaries of atomic writes and old
    folders moved aside. Only for a folder one run writes at a time (a live write of another process
    would go too); sharded writers rely on :func:`atomic_path` sweeping each item's own leftovers."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.rglob("*") if is_temporary(p) or OLD_MARK.search(p.name)]
    found = [p for p in found if not any(parent in found for parent in p.parents)]  # a swept folder takes its children
    for p in found:
        _remove(p)
    return found


def check_output_dir(path: str | os.PathLike, min_free_mb: float = 1.0) -> Path:
    """Make sure ``path`` can hold a command's outputs before any work starts: a folder, or a name a
    folder can be made at, writable, on a disk with room. Every command that takes an output folder
    calls this first, so a file in the way, a read-only folder or a full disk is one
    :class:`OutputError` line naming the folder, never a traceback after an hour of work. Nothing is
    created: a command refused later for another reason leaves no empty folder behind."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is an existing file, not a folder (choose another output folder)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot make this folder, {existing} is a file")
    if existing == path:  # a real write tells a read-only mount apart even for root, where access() says yes
        probe = path / f".write-probe.tmp-{uuid.uuid4().hex[:8]}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            _remove(probe)
            raise OutputError(describe_os_error(path, e).replace(" of the folder", "", 1)) from None
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot make this folder, {existing} is not writable")
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < min_free_mb:
        raise OutputError(f"{path}: no space left on the device ({free_mb:.1f} MiB free)")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it onto ``path``, else delete it.

    A ``path`` that is itself a temporary (the caller already writes atomically, e.g. one file of
    :func:`atomic_files`) is written in place: one temporary suffix, never two nested."""
    path = Path(path)
    if is_temporary(path):
        with _removed_on_failure([path], path):
            yield path
        return
    if is_dir:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(describe_os_error(path, e)) from None
    else:
        _make_parent(path)
    for stale in stale_siblings(path):
        _remove(stale)
    tmp = temporary_sibling(path)
    with _removed_on_failure([tmp], path):
        if is_dir:
            tmp.mkdir()
        yield tmp
        if is_dir and path.exists():
            # A directory cannot be renamed over a non-empty one: move the old one aside first.
            old = path.with_name(f"{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)


@contextlib.contextmanager
def _removed_on_failure(temps: list[Path], named: Path) -> Iterator[None]:
    """Any failure removes ``temps``; a failed write becomes one :class:`OutputError` line naming ``named``
    (the cleanup never hides the original error)."""
    try:
        yield
    except OSError as e:
        for tmp in temps:
            _remove(tmp)
        if isinstance(e, UserFacingError):
            raise
        raise OutputError(describe_os_error(named, e)) from None
    except BaseException:
        for tmp in temps:
            _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_files(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Temporary names for the several outputs of one item; all are renamed into place at the end,
    or all removed. Renaming is the last and quickest step, so a crash leaves either nothing of the
    item or (in the instant of the renames) some of its complete files, never a half-written one."""
    finals = [Path(p) for p in paths]
    for path in finals:
        _make_parent(path)
        for stale in stale_siblings(path):
            _remove(stale)
    temps = [temporary_sibling(p) for p in finals]
    with _removed_on_failure(temps, finals[0] if finals else Path.cwd()):  # an item may have no outputs
        yield temps
        for tmp, path in zip(temps, finals):
            if tmp.exists():  # an output the item turned out not to need is simply absent
                os.replace(tmp, path)


def save_npy(path: str | os.PathLike, array) -> Path:
    """``np.save`` through :func:`atomic_path` (the exact name is kept: no ``.npy`` appended)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(array))
    return Path(path)
