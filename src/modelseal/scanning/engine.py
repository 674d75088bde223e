"""Walk paths and scan each file: the top of the scanner, above every format scanner.

:func:`scan_file`, :func:`scan_paths` and :func:`scan_bytes` make a
:class:`~modelseal.scanning.context.Context` with the format table of
:mod:`modelseal.scanning.formats` and hand the content to
:func:`~modelseal.scanning.context.scan_stream`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, cast

from modelseal.errors import ScanPathError
from modelseal.fsinput import NOT_REGULAR, NotRegularFileError, open_regular
from modelseal.scanning.context import Context, Options, scan_stream
from modelseal.scanning.formats import SCANNERS
from modelseal.scanning.report import FileReport, Location, ScanReport, sort_findings
from modelseal.scanning.sniff import PICKLE_FIRST


def _special(path: Path) -> bool:
    """True for a FIFO, device or socket (opening a socket fails with ENXIO, not a type)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def scan_file(path: Path, display: str, options: Options) -> FileReport:
    """Scan one file (``display`` is the name reports use for it).

    A FIFO, device or socket is never opened for reading (it could block or never end): it is
    reported as unscannable, never skipped in silence."""
    ctx = Context(options, display, scanners=SCANNERS)
    location = Location(display)
    try:
        fd = open_regular(path)
    except OSError as exc:
        if isinstance(exc, NotRegularFileError) or _special(path):
            ctx.fail(location, f"{NOT_REGULAR}: not scanned")
            return FileReport(display, ("special",), (), tuple(ctx.unscannable), 0)
        raise ScanPathError(
            f"cannot read {display!r}: {exc.strerror or exc}",
            hint="check the path and its permissions",
        ) from None
    try:
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            ctx.budget.file_size = size
            fmt = scan_stream(ctx, fh, size, location)
    except OSError as exc:
        raise ScanPathError(
            f"cannot read {display!r}: {exc.strerror or exc}",
            hint="check the path and its permissions",
        ) from None
    if fmt == "unknown" and options.strict:
        ctx.fail(location, "format not recognised (--strict treats this as unscannable)")
    formats = tuple(ctx.formats) or (fmt,)
    return FileReport(display, formats, sort_findings(ctx.findings), tuple(ctx.unscannable), size)


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterable[tuple[Path, str]]:
    """Every file under ``paths`` (directories recursively, symlinks to directories not
    followed); FIFOs, devices and sockets found in a directory are yielded too, so the scan
    reports them as unscannable instead of skipping them."""
    for raw in paths:
        path = Path(raw)
        if path.is_symlink() and path.is_dir():
            raise ScanPathError(
                f"{str(raw)!r} is a symlink to a directory", hint="pass the directory itself"
            )
        if path.is_file():
            yield path, str(raw)
        elif path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    full = Path(root) / name
                    if full.is_file() or (full.exists() and not full.is_dir()):
                        # a link to a file is scanned (loaders follow it); a dangling link is
                        # nothing a loader can read
                        yield full, str(full)
        elif path.exists():
            raise ScanPathError(
                f"{str(raw)!r} is not a regular file or directory",
                hint="scan model files or directories",
            )
        else:
            raise ScanPathError(f"{str(raw)!r} does not exist", hint="check the path")


def scan_paths(paths: Iterable[str | os.PathLike[str]], options: Options) -> ScanReport:
    """Scan every file under ``paths``."""
    files = [scan_file(p, d, options) for p, d in iter_files(paths)]
    return ScanReport(tuple(files))


def scan_bytes(data: Any, options: Options, name: str = "<bytes>") -> FileReport:
    """Scan an in-memory blob (bytes, bytearray, mmap, memoryview) without copying it; used by
    verified loading, tests and fuzzing."""
    from modelseal.memio import ViewReader

    ctx = Context(options, name, scanners=SCANNERS)
    size = memoryview(data).nbytes
    ctx.budget.file_size = size
    fmt = scan_stream(ctx, cast(BinaryIO, ViewReader(data)), size, Location(name))
    if fmt == "unknown" and options.strict:
        ctx.fail(Location(name), "format not recognised (--strict treats this as unscannable)")
    return FileReport(
        name,
        tuple(ctx.formats) or (fmt,),
        sort_findings(ctx.findings),
        tuple(ctx.unscannable),
        size,
    )


__all__ = ["PICKLE_FIRST", "Context", "Options", "scan_bytes", "scan_paths", "scan_stream"]
