"""Open input files without ever blocking on them.

Opening a FIFO for reading waits for a writer, and a device may never end: every file modelseal
reads as a model file, signature, key or certificate is opened with ``O_NONBLOCK`` and must then
be a regular file (a directory only where one is asked for). Anything else is refused at once,
even when it was swapped in after the path was looked at.
"""

from __future__ import annotations

import errno
import os
import stat

_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
NOT_REGULAR = "not a regular file (device, FIFO or socket)"


class NotRegularFileError(OSError):
    """A FIFO, device or socket where a regular file was expected."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(errno.EINVAL, NOT_REGULAR, None if path is None else os.fspath(path))


def check_regular(fd: int, *, directory_ok: bool = False) -> os.stat_result:
    """The status of the open file ``fd``, which must be a regular file (or a directory, with
    ``directory_ok``): else :class:`IsADirectoryError` or :class:`NotRegularFileError`."""
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) or (directory_ok and stat.S_ISDIR(st.st_mode)):
        return st
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    raise NotRegularFileError()


def open_regular(
    path: str | os.PathLike[str],
    flags: int = os.O_RDONLY,
    *,
    dir_fd: int | None = None,
    directory_ok: bool = False,
) -> int:
    """A descriptor for ``path`` (``flags`` plus non-blocking, close-on-exec), opened without
    waiting and checked by :func:`check_regular`; raises :class:`OSError` otherwise."""
    fd = os.open(path, flags | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dir_fd)
    try:
        check_regular(fd, directory_ok=directory_ok)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """Up to ``limit`` bytes of the regular file at ``path`` (see :func:`open_regular`)."""
    with os.fdopen(open_regular(path), "rb") as fh:
        return fh.read(limit)
