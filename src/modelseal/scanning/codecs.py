"""Bounded decoders for compressed streams, each returning at most ``n`` bytes per call.

They follow what the loaders do with the same bytes (``gzip.GzipFile``, ``bz2.BZ2File``,
``lzma.LZMAFile``, joblib's zlib files, zipfile's members): concatenated streams are read on,
gzip's zero padding is skipped, and data after the first stream that does not decode ends a
bz2/xz file silently (as ``_compression.DecompressReader`` does) but fails a gzip file. A stream
cut short is an error (``EOFError``), never a quiet end. The xz/lzma and zstd decoders get a
memory limit, so a header that asks for a huge dictionary is refused instead of allocated.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

from modelseal.scanning.streams import (
    Budget,
    BudgetExceeded,
    Codec,
    CountingReader,
    Forward,
)

_IN = 1 << 18
DECODER_MEMORY = 512 << 20  # xz -9 needs 65 MiB; zstd's default window limit is 128 MiB
ZSTD_WINDOW = 1 << 27

ZSTD_MISSING = (
    "zstd data needs the 'zstandard' package to be scanned: pip install 'modelseal[scan]'"
)


class MissingDecoder(ValueError):
    """The optional package that decodes this format is not installed (unscannable)."""


class ZlibCodec:
    """Deflate family: ``wbits`` 31 gzip (multi-member), 15 zlib, -15 raw deflate (one)."""

    def __init__(self, raw: BinaryIO, wbits: int, *, what: str) -> None:
        self._raw = raw
        self._wbits = wbits
        self._what = what
        self._d: Any = zlib.decompressobj(wbits)
        self._carry = b""
        self._done = False

    def _input(self) -> bytes:
        if self._carry:
            data, self._carry = self._carry, b""
            return data
        return self._raw.read(_IN)

    def _next_member(self) -> bool:
        """After one stream ends: start the next one, or finish (False)."""
        if self._wbits < 0:
            return False  # a zip member holds exactly one raw deflate stream
        rest = self._d.unused_data
        while True:
            if not rest:
                rest = self._raw.read(_IN)
                if not rest:
                    return False
            if self._wbits == 31:
                rest = rest.lstrip(b"\0")  # gzip allows zero padding between members
                if not rest:
                    continue
                if not rest.startswith(b"\x1f\x8b"[: len(rest)]):
                    raise ValueError(f"{self._what}: data after the stream is not gzip")
            self._d = zlib.decompressobj(self._wbits)
            self._carry = rest
            return True

    def read(self, n: int) -> bytes:
        """At most ``n`` decoded bytes; ``b""`` at the end."""
        while not self._done:
            if self._d.eof:
                if not self._next_member():
                    self._done = True
                    break
                continue
            data = self._d.unconsumed_tail or self._input()
            if not data:
                raise EOFError(f"{self._what} ends before its end-of-stream marker")
            out: bytes = self._d.decompress(data, n)
            if out:
                return out
        return b""


class BlockCodec:
    """bz2 and xz/lzma: concatenated streams; bad data after the first ends the file."""

    def __init__(
        self, raw: BinaryIO, make: Callable[[], Any], error: type[Exception], *, what: str
    ) -> None:
        self._raw = raw
        self._make = make
        self._error = error
        self._what = what
        self._d: Any = make()
        self._first = True
        self._done = False

    def read(self, n: int) -> bytes:
        """At most ``n`` decoded bytes; ``b""`` at the end."""
        while not self._done:
            if self._d.eof:
                data = self._d.unused_data or self._raw.read(_IN)
                if not data:
                    self._done = True
                    break
                self._d = self._make()
                self._first = False
            elif self._d.needs_input:
                data = self._raw.read(_IN)
                if not data:
                    if self._first:
                        raise EOFError(f"{self._what} ends before its end-of-stream marker")
                    self._done = True  # loaders stop quietly at a cut-off trailing stream
                    break
            else:
                data = b""
            try:
                out: bytes = self._d.decompress(data, n)
            except self._error as exc:
                if not self._first:
                    self._done = True
                    break
                if "memory" in str(exc).lower():
                    raise BudgetExceeded(
                        f"{self._what} needs more than {DECODER_MEMORY >> 20} MiB of decoder memory"
                    ) from None
                raise ValueError(f"{self._what} cannot be decoded: {exc}") from None
            if out:
                return out
        return b""


class ZstdCodec:
    """Zstandard frames (several in a row), with a bounded window. Input goes in 1 KiB at a time,
    which bounds what one call can expand to (a block is at most 128 KiB)."""

    def __init__(self, raw: BinaryIO) -> None:
        try:
            import zstandard
        except ImportError:
            raise MissingDecoder(ZSTD_MISSING) from None
        self._zstd = zstandard
        self._dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_WINDOW)
        self._raw = raw
        self._d: Any = self._dctx.decompressobj()
        self._carry = b""
        self._started = False
        self._done = False

    def read(self, n: int) -> bytes:
        """At most ``n`` decoded bytes; ``b""`` at the end."""
        while not self._done:
            if self._d.eof:
                rest = self._d.unused_data + self._carry
                self._carry = b""
                if not rest:
                    rest = self._raw.read(_IN)
                    if not rest:
                        self._done = True
                        break
                self._d = self._dctx.decompressobj()
                self._started = False
                self._carry = rest
            if not self._carry:
                self._carry = self._raw.read(_IN)
                if not self._carry:
                    raise EOFError("zstd stream ends before the end of its frame")
            data, self._carry = self._carry[:1024], self._carry[1024:]
            try:
                out: bytes = self._d.decompress(data)
            except self._zstd.ZstdError as exc:
                text = str(exc)
                if "window" in text.lower() or "memory" in text.lower():
                    raise BudgetExceeded(
                        f"zstd stream needs a window over {ZSTD_WINDOW >> 20} MiB"
                    ) from None
                raise ValueError(f"zstd stream cannot be decoded: {text}") from None
            if out:
                return out
        return b""


class Lz4Codec:
    """LZ4 frames (joblib's lz4 compression); needs the optional ``lz4`` package."""

    def __init__(self, raw: BinaryIO) -> None:
        try:
            import lz4.frame  # type: ignore[import-not-found]
        except ImportError:
            raise MissingDecoder(
                "lz4 data needs the 'lz4' package to be scanned: pip install lz4"
            ) from None
        self._f = lz4.frame.LZ4FrameFile(raw)

    def read(self, n: int) -> bytes:
        """At most ``n`` decoded bytes; ``b""`` at the end."""
        out: bytes = self._f.read(n)
        return out


class LzmaZipCodec:
    """A zip member's LZMA data: a 4-byte version/size prefix, LZMA1 properties, raw data."""

    def __init__(self, raw: BinaryIO) -> None:
        import lzma

        head = raw.read(4)
        if len(head) < 4:
            raise EOFError("zip LZMA member is truncated")
        props = raw.read(int.from_bytes(head[2:4], "little"))
        try:
            filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # type: ignore[attr-defined]
        except lzma.LZMAError as exc:
            raise ValueError(f"zip LZMA member has bad properties: {exc}") from None
        if filt.get("dict_size", 0) > DECODER_MEMORY:
            raise BudgetExceeded("zip LZMA member asks for an oversized dictionary")
        self._inner = BlockCodec(
            raw,
            lambda: lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt]),
            lzma.LZMAError,
            what="zip LZMA member",
        )

    def read(self, n: int) -> bytes:
        """At most ``n`` decoded bytes; ``b""`` at the end."""
        return self._inner.read(n)


def _xz(fmt: int) -> Callable[[], Any]:
    """An xz/lzma decompressor factory with the decoder memory limit."""
    import lzma

    return lambda: lzma.LZMADecompressor(fmt, memlimit=DECODER_MEMORY)


def codec_for(fmt: str, raw: BinaryIO) -> Codec:
    """A decoder for the compressed format ``fmt`` (as :func:`sniff` names it) over ``raw``."""
    if fmt == "gzip":
        return ZlibCodec(raw, 31, what="gzip stream")
    if fmt == "zlib":
        return ZlibCodec(raw, 15, what="zlib stream")
    if fmt == "zlib-joblib":
        # joblib's old format: "ZF0x<hex length> " then a zlib stream.
        prefix = raw.read(4)
        for _ in range(32):
            b = raw.read(1)
            if b in (b"", b" "):
                break
        else:
            raise ValueError(f"{prefix!r} joblib zlib header is too long")
        return ZlibCodec(raw, 15, what="joblib zlib stream")
    if fmt == "deflate":
        return ZlibCodec(raw, -15, what="deflate stream")
    # bz2 and lzma are imported here: most scans never meet them, and start-up counts.
    if fmt == "bz2":
        import bz2

        return BlockCodec(raw, bz2.BZ2Decompressor, OSError, what="bz2 stream")
    if fmt in ("xz", "lzma"):
        import lzma
    if fmt == "xz":
        return BlockCodec(raw, _xz(lzma.FORMAT_XZ), lzma.LZMAError, what="xz stream")
    if fmt == "lzma":
        return BlockCodec(raw, _xz(lzma.FORMAT_ALONE), lzma.LZMAError, what="lzma stream")
    if fmt == "zstd":
        return ZstdCodec(raw)
    if fmt == "lz4":
        return Lz4Codec(raw)
    if fmt == "zip-lzma":
        return LzmaZipCodec(raw)
    raise ValueError(f"no decoder for {fmt}")


def decoded(fmt: str, raw: BinaryIO, budget: Budget, what: str, *, crc: bool = False) -> Forward:
    """The decoded form of ``raw`` as a budgeted forward stream (ratio checked per stream)."""
    counter = CountingReader(raw)
    codec = codec_for(fmt, counter)  # type: ignore[arg-type]
    return Forward(codec, budget, counter=counter, what=what, crc=crc)
