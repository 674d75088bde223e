"""Whole-stream compression (joblib's gzip/bz2/xz/lzma/zlib/lz4 files, gzipped pickles)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import tempfile
import zlib
from typing import BinaryIO

from modelseal.scanning.context import Context, scan_stream
from modelseal.scanning.report import Location
from modelseal.scanning.streams import BudgetExceeded

_SPOOL = 32 << 20


class _ZlibStream:
    """A zlib stream (joblib's default compression), optionally after joblib's old
    ``ZF0x<hex length> `` prefix."""

    def __init__(self, raw: BinaryIO, *, prefixed: bool) -> None:
        if prefixed:
            raw.read(4)
            while raw.read(1) not in (b"", b" "):
                pass
        self._raw = raw
        self._z = zlib.decompressobj()

    def read(self, n: int = -1) -> bytes:
        while True:
            chunk = self._raw.read(1 << 18)
            if not chunk:
                return self._z.flush()
            out = self._z.decompress(chunk)
            if out:
                return out


def _open(fmt: str, stream: BinaryIO) -> BinaryIO:
    if fmt == "gzip":
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    if fmt == "bz2":
        return bz2.BZ2File(stream)  # type: ignore[return-value]
    if fmt in ("xz", "lzma"):
        return lzma.LZMAFile(stream, format=lzma.FORMAT_XZ if fmt == "xz" else lzma.FORMAT_ALONE)  # type: ignore[return-value]
    if fmt in ("zlib", "zlib-joblib"):
        return _ZlibStream(stream, prefixed=fmt == "zlib-joblib")  # type: ignore[return-value]
    try:
        import lz4.frame  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ValueError("lz4 data needs the 'lz4' package to be scanned") from exc
    return lz4.frame.LZ4FrameFile(stream)  # type: ignore[no-any-return]


def scan_compressed(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    from modelseal.scanning.sniff import sniff

    fmt = sniff(stream.read(16), size)
    stream.seek(0)
    ctx.saw(fmt)
    dec = _open(fmt, stream)
    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115
    try:
        total = 0
        while True:
            chunk = dec.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if not ctx.budget.spend(len(chunk)):
                raise BudgetExceeded(f"decompressed data exceeds {ctx.budget.limit} bytes")
            out.write(chunk)
        out.seek(0)
        scan_stream(ctx, out, total, location.inside(f"<{fmt} stream>"), depth + 1)  # type: ignore[arg-type]
    finally:
        out.close()
