"""Outputs that appear only once complete: no plaintext is ever left behind under a name.

A decrypted file is written into an *unnamed* file (Linux ``O_TMPFILE``) in the destination's
directory, and given its name (``linkat``) only after the whole stream authenticated. A process
killed at any point (even ``kill -9``) leaves nothing: the kernel frees an unnamed file when its
last descriptor closes. Where ``O_TMPFILE`` is unavailable (another OS, a file system without
it) the file is written inside a new private directory (mode 0700) beside the destination,
removed on every exit path that runs Python code.

A decrypted directory is built in a private directory (0700) beside the destination whose
files stay unnamed until every file authenticated; then they are linked in and the directory
is renamed onto the destination. Killed meanwhile, it leaves only that private directory with
empty folders in it (or, past :data:`MAX_OPEN_UNNAMED` files, the files already complete).

An existing destination (``overwrite``) is replaced by a rename, so it stays intact until the
new output is complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from modelseal.errors import OutputError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_TMPFILE = getattr(os, "O_TMPFILE", 0)
_PROC_FD = "/proc/self/fd"
# Files of one directory kept unnamed at once (each holds a descriptor); beyond it, named early.
MAX_OPEN_UNNAMED = 256


def check_target(dst: Path, overwrite: bool) -> None:
    """Refuse an existing ``dst`` (unless ``overwrite``) or a missing parent directory."""
    if os.path.lexists(dst) and not overwrite:
        raise OutputError(
            f"{str(dst)!r} already exists", hint="choose another path or pass --force"
        )
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(
            f"cannot write {str(dst)!r}: directory {str(parent)!r} does not exist",
            hint="create the directory first",
        )


def temp_name(dst: Path) -> Path:
    """A fresh hidden name beside ``dst`` for a private directory."""
    return dst.parent / f".{dst.name}.{secrets.token_hex(6)}.partial"


def io_failure(dst: Path, exc: OSError) -> OutputError:
    """One clear line for an I/O error while writing ``dst``."""
    name = f" ({exc.filename!s})" if exc.filename else ""
    return OutputError(
        f"I/O error while writing {str(dst)!r}{name}: {exc.strerror or exc}",
        hint="check free space, permissions and the file system (nothing was kept)",
    )


def _exists_error(dst: Path) -> OutputError:
    return OutputError(f"{str(dst)!r} already exists", hint="choose another path or pass --force")


def open_unnamed(directory: Path, mode: int) -> int | None:
    """A descriptor of a new unnamed file in ``directory`` (``O_TMPFILE``), or None if the
    platform or file system has none."""
    if not _TMPFILE or not os.path.isdir(_PROC_FD):
        return None
    try:
        fd = os.open(directory, _TMPFILE | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        import errno

        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # ENOENT: a kernel that does not know O_TMPFILE
        raise
    os.fchmod(fd, mode)  # the umask must not widen or narrow what we promise
    return fd


def link_unnamed(fd: int, path: Path) -> None:
    """Give the unnamed file ``fd`` the name ``path`` (fails if ``path`` exists)."""
    proc = os.open(_PROC_FD, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        # A src_dir_fd makes Python call linkat(..., AT_SYMLINK_FOLLOW): the magic link is
        # followed to the unnamed file (plain link() would try to link the symlink itself).
        os.link(str(fd), path, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def _install_named(tmp: Path, dst: Path, overwrite: bool) -> None:
    """Move the complete file ``tmp`` onto ``dst`` (replace only with ``overwrite``)."""
    if overwrite:
        if os.path.isdir(dst) and not os.path.islink(dst):
            raise OutputError(f"{str(dst)!r} is a directory", hint="choose a file path")
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)  # fails if something appeared at dst meanwhile
    except FileExistsError:
        raise _exists_error(dst) from None
    os.unlink(tmp)


@contextlib.contextmanager
def private_dir(dst: Path) -> Iterator[Path]:
    """A new directory (0700) beside ``dst``, removed with everything in it on exit."""
    tmp = temp_name(dst)
    try:
        os.mkdir(tmp, 0o700)
    except OSError as exc:
        raise OutputError(
            f"cannot write {str(dst)!r}: {exc.strerror}", hint="check the path"
        ) from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def complete_file(dst: Path, overwrite: bool, mode: int) -> Iterator[BinaryIO]:
    """A file that becomes ``dst`` only if the block finishes (see the module docstring)."""
    check_target(dst, overwrite)
    parent = dst.parent if str(dst.parent) else Path(".")
    try:
        fd = open_unnamed(parent, mode)
    except OSError as exc:
        raise OutputError(
            f"cannot write {str(dst)!r}: {exc.strerror}", hint="check the path"
        ) from None
    if fd is None:
        with _named_fallback(dst, overwrite, mode) as fh:
            yield fh
        return
    try:
        with os.fdopen(fd, "wb", buffering=0) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            if overwrite and os.path.lexists(dst):
                with private_dir(dst) as holder:  # named only inside a 0700 directory
                    link_unnamed(fh.fileno(), holder / "file")
                    _install_named(holder / "file", dst, overwrite=True)
            else:
                try:
                    link_unnamed(fh.fileno(), dst)
                except FileExistsError:
                    raise _exists_error(dst) from None
    except OSError as exc:  # e.g. no space left: one clear line, and no partial output
        raise io_failure(dst, exc) from None


@contextlib.contextmanager
def _named_fallback(dst: Path, overwrite: bool, mode: int) -> Iterator[BinaryIO]:
    with private_dir(dst) as holder:
        path = holder / "file"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb", buffering=0) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            _install_named(path, dst, overwrite)
        except OSError as exc:
            raise io_failure(dst, exc) from None


class UnnamedTree:
    """Files of a directory being decrypted, kept unnamed until :meth:`name_all`.

    Use as a context manager: leaving it closes every descriptor, and files never named vanish.
    """

    def __init__(self, root: Path) -> None:
        """Files will be created under ``root`` (a private directory we made)."""
        self.root = root
        self._pending: list[tuple[BinaryIO, Path]] = []

    @contextlib.contextmanager
    def file(self, rel: str, mode: int) -> Iterator[BinaryIO]:
        """A new file for ``rel``: unnamed while possible, named at once otherwise."""
        path = self.root / rel
        fd = open_unnamed(path.parent, mode) if len(self._pending) < MAX_OPEN_UNNAMED else None
        if fd is None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
            with os.fdopen(fd, "wb", buffering=0) as fh:
                yield fh
                os.fsync(fh.fileno())
            return
        fh = os.fdopen(fd, "wb", buffering=0)
        try:
            yield fh
            os.fsync(fh.fileno())
        except BaseException:
            fh.close()
            raise
        self._pending.append((fh, path))

    def name_all(self) -> None:
        """Link every pending file under its path (call only once everything authenticated)."""
        for fh, path in self._pending:
            link_unnamed(fh.fileno(), path)
            fh.close()
        self._pending.clear()

    def __enter__(self) -> UnnamedTree:
        """Start collecting files."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close every descriptor still open; files never named vanish with them."""
        for fh, _ in self._pending:
            fh.close()
        self._pending.clear()
