"""7z archives, opened with py7zr (the optional ``scan`` extra) and never extracted to a path.

py7zr decodes each member into a writer we give it; the writer charges every chunk to the
file's budget (size, time, and the expansion ratio of the whole archive), keeps at most 8 MiB in
memory, and the member is scanned by content as soon as it is complete and then dropped. Without
py7zr a 7z file is unscannable, with a one-line hint naming the extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from modelseal.scanning import rules
from modelseal.scanning.context import Context, scan_stream
from modelseal.scanning.formats.zip import _name_problems
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.streams import Budget, BudgetExceeded, spool

MISSING = "7z archives need py7zr to be scanned: pip install 'modelseal[scan]'"
_MEMORY = 8 << 20
_BLOCK = 1 << 20


def _sink_factory(ctx: Context, archive_size: int, location: Location, depth: int) -> Any:
    """A py7zr WriterFactory whose writers budget, spool and then scan each member."""
    import io
    import tempfile

    from py7zr.io import Py7zIO, WriterFactory

    budget: Budget = ctx.budget
    produced = [0]

    class Sink(Py7zIO):
        def __init__(self, name: str) -> None:
            self.name = name
            self.buf = tempfile.SpooledTemporaryFile(max_size=_MEMORY)  # noqa: SIM115
            self.total = 0
            self.done = False

        def write(self, s: bytes | bytearray) -> int:
            budget.charge(len(s))
            produced[0] += len(s)
            budget.check_ratio("7z archive", produced[0], archive_size)
            self.total += len(s)
            return self.buf.write(s)

        def read(self, size: int | None = None) -> bytes:
            return self.buf.read(-1 if size is None else size)

        def seek(self, offset: int, whence: int = 0) -> int:
            return self.buf.seek(offset, whence)

        def flush(self) -> None:
            self.buf.flush()

        def size(self) -> int:
            return self.total

        def close(self) -> None:
            if self.done:
                return
            self.done = True
            try:
                self.buf.seek(0)
                content = cast(BinaryIO, io.BufferedReader(self.buf, 1 << 20))
                scan_stream(ctx, content, self.total, location.inside(self.name), depth + 1)
            finally:
                self.buf.close()

    class Factory(WriterFactory):
        def create(self, filename: str) -> Py7zIO:
            return Sink(filename)

    return Factory()


@contextlib.contextmanager
def _small_blocks() -> Iterator[None]:
    """py7zr decodes in blocks as large as the free memory allows (up to 128 MB each, sized by
    ``get_memory_limit``); a bomb would make each one real. Decode 1 MiB at a time instead."""
    import py7zr.py7zr as impl

    original = impl.get_memory_limit  # type: ignore[attr-defined]
    impl.get_memory_limit = lambda: _BLOCK  # type: ignore[attr-defined]
    try:
        yield
    finally:
        impl.get_memory_limit = original  # type: ignore[attr-defined]


def scan_7z(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Scan every member of a 7z archive by content."""
    ctx.saw("7z")
    try:
        import py7zr
    except ImportError:
        ctx.fail(location, MISSING)
        return
    if size is None:
        stream, size = spool(stream)
    try:
        archive = py7zr.SevenZipFile(stream, mode="r")
    except py7zr.PasswordRequired:
        _encrypted(ctx, location)
        return
    except BudgetExceeded:
        raise
    except Exception as exc:
        # py7zr decodes the (compressed) header here and fails in many ways on hostile bytes
        # (LZMAError, struct.error, KeyError...): whatever it is, the archive is unscannable.
        ctx.fail(location, f"7z archive is unreadable: {type(exc).__name__}: {exc}")
        return
    with archive:
        if archive.needs_password():
            _encrypted(ctx, location)
            return
        if not _check_members(ctx, archive, location):
            return
        archive.max_extract_size = ctx.budget.limit - ctx.budget.used
        try:
            with _small_blocks():
                archive.extractall(factory=_sink_factory(ctx, size, location, depth))
        except py7zr.exceptions.DecompressionBombError as exc:
            ctx.find(rules.ARCHIVE_BOMB, Severity.HIGH, location, "decompression", str(exc))
            ctx.fail(location, str(exc))
        except BudgetExceeded:
            raise
        except Exception as exc:
            ctx.fail(location, f"7z member cannot be decoded: {type(exc).__name__}: {exc}")


def _encrypted(ctx: Context, location: Location) -> None:
    ctx.find(
        rules.SEVENZIP_ENCRYPTED,
        Severity.HIGH,
        location,
        "7z",
        "encrypted 7z archive: its content cannot be inspected",
    )
    ctx.fail(location, "encrypted 7z archive cannot be scanned")


def _check_members(ctx: Context, archive: Any, location: Location) -> bool:
    """Findings from the member list; False when the archive must not be decoded."""
    files = list(archive.files)
    if len(files) > ctx.options.max_members:
        ctx.fail(location, f"more than {ctx.options.max_members} 7z members")
        return False
    declared = 0
    seen: set[str] = set()
    for f in files:
        name = str(f.filename)
        loc = location.inside(name)
        problem = _name_problems(name)
        if problem:
            ctx.find(
                rules.SEVENZIP_MEMBER_NAME,
                Severity.MEDIUM,
                loc,
                name,
                f"member name {problem}; extraction may write outside the target",
            )
        if name in seen:
            ctx.find(
                rules.SEVENZIP_DUPLICATE_NAME,
                Severity.HIGH,
                loc,
                name,
                "two members share this name; extraction keeps one, readers may take the other",
            )
        seen.add(name)
        if f.is_symlink or getattr(f, "is_junction", False):
            ctx.find(
                rules.SEVENZIP_LINK,
                Severity.MEDIUM,
                loc,
                name,
                "link member (not followed): extracting it can redirect later writes",
            )
        declared += int(f.uncompressed or 0)
    if declared > ctx.budget.limit - ctx.budget.used:
        ctx.find(
            rules.ARCHIVE_BOMB,
            Severity.HIGH,
            location,
            "decompression",
            f"7z members declare {declared} bytes, over the scan budget of {ctx.budget.limit}",
        )
        ctx.fail(location, "7z archive declares more data than the scan budget")
        return False
    return True
