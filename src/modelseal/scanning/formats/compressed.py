"""Whole-stream compression: gzip, bz2, xz, lzma, zlib (joblib), zstd and lz4 wrappers.

The decoded data is never held whole: it streams through a budgeted :class:`Forward` reader to
the scanner of whatever it turns out to be (a pickle, a tar, another compressed layer). Formats
that need random access (zip, 7z, HDF5...) are copied to a temporary file first, still charged
to the budget as they stream.
"""

from __future__ import annotations

from typing import BinaryIO, cast

from modelseal.scanning.codecs import decoded
from modelseal.scanning.context import Context, peek, scan_stream
from modelseal.scanning.report import Location
from modelseal.scanning.sniff import sniff
from modelseal.scanning.streams import Forward, spool

# Formats whose scanners read front to back (so a forward-only stream is enough).
FORWARD_FORMATS = frozenset(
    {
        "pickle",
        "unknown",
        "empty",
        "data",
        "gzip",
        "bz2",
        "xz",
        "lzma",
        "zlib",
        "zlib-joblib",
        "zstd",
        "lz4",
        "tar",
    }
)


def scan_forward(
    ctx: Context, stream: Forward, location: Location, depth: int, size: int | None = None
) -> str:
    """Scan a forward-only stream, spooling it first when its format needs random access."""
    io = cast(BinaryIO, stream)
    fmt = sniff(peek(io), size)
    if fmt in FORWARD_FORMATS:
        return scan_stream(ctx, io, size, location, depth)
    copy, total = spool(io)
    try:
        return scan_stream(ctx, copy, total, location, depth)
    finally:
        copy.close()


def scan_compressed(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Decode a compressed stream as it is read and scan what it holds."""
    fmt = sniff(peek(stream, 16), size)
    ctx.saw(fmt)
    inner = decoded(fmt, stream, ctx.budget, f"{fmt} stream")
    try:
        scan_forward(ctx, inner, location.inside(f"<{fmt} stream>"), depth + 1)
        # Whatever the inner scanner left unread is still decoded: a loader that reads on
        # (or a second pickle) must not hide a bomb or a broken stream past our stopping point.
        inner.seek(0, 2)
    finally:
        inner.close()
