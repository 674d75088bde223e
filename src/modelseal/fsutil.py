"""Atomic file writes: a crash at any point leaves either the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from modelseal.errors import OutputError


def atomic_write(
    path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644, overwrite: bool = True
) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new, never part.

    The data goes to a temporary file beside ``path`` (created with ``mode``), is fsynced, then
    renamed over ``path``. With ``overwrite=False`` an existing file is an
    :class:`~modelseal.errors.OutputError`.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not overwrite and target.exists():
        raise OutputError(
            f"{str(target)!r} already exists", hint="choose another path or pass --force"
        )
    tmp = directory / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    except FileNotFoundError:
        raise OutputError(
            f"cannot write {str(target)!r}: directory {str(directory)!r} does not exist",
            hint="create the directory first",
        ) from None
    except OSError as exc:
        raise OutputError(
            f"cannot write {str(target)!r}: {exc.strerror}", hint="check the directory permissions"
        ) from None
    try:
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow what we promise
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if not overwrite:
            os.link(tmp, target)  # fails if something appeared meanwhile
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
        _fsync_dir(directory)
    except FileExistsError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(
            f"{str(target)!r} already exists", hint="choose another path or pass --force"
        ) from None
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(
            f"cannot write {str(target)!r}: {exc.strerror}", hint="check the path and free space"
        ) from None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
