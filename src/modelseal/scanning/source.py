"""A forward-only, bounded buffer over a binary stream, with absolute offsets.

Scanners read a model through this so a 1 GiB file is never held in memory: large arguments are
skipped in chunks, and the buffer only grows to what one opcode header needs.
"""

from __future__ import annotations

from typing import BinaryIO

CHUNK = 1 << 20


class Source:
    """Read exactly, skip, and read lines from ``stream`` starting at its current position.

    ``size`` is the number of bytes the stream holds from there, when known; ``tell()`` counts
    from ``start``.
    """

    __slots__ = ("_stream", "base", "buf", "pos", "size", "start")

    def __init__(self, stream: BinaryIO, *, size: int | None = None, start: int = 0) -> None:
        self._stream = stream
        self.buf = b""
        self.pos = 0
        self.base = start
        self.start = start
        self.size = size

    def tell(self) -> int:
        """The absolute offset of the next byte."""
        return self.base + self.pos

    def remaining(self) -> int | None:
        """Bytes left to read, when the stream's size is known."""
        if self.size is None:
            return None
        return self.start + self.size - self.tell()

    def fill(self, n: int) -> bool:
        """Make ``n`` bytes available at ``pos``; False if the stream ends first."""
        avail = len(self.buf) - self.pos
        if avail >= n:
            return True
        parts = [self.buf[self.pos :]]
        self.base += self.pos
        self.pos = 0
        want = n - avail
        while want > 0:
            chunk = self._stream.read(max(CHUNK, want))
            if not chunk:
                break
            parts.append(chunk)
            avail += len(chunk)
            want -= len(chunk)
        self.buf = b"".join(parts)
        return avail >= n

    def at_eof(self) -> bool:
        """True when no byte is left."""
        return not self.fill(1)

    def take(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes, or None when the stream ends first (the rest is consumed)."""
        if not self.fill(n):
            self.pos = len(self.buf)
            return None
        start = self.pos
        self.pos = start + n
        return self.buf[start : self.pos]

    def skip(self, n: int) -> bool:
        """Advance ``n`` bytes without keeping them; False when the stream ends first."""
        avail = len(self.buf) - self.pos
        if n <= avail:
            self.pos += n
            return True
        n -= avail
        self.base += len(self.buf)
        self.buf = b""
        self.pos = 0
        seek = getattr(self._stream, "seekable", None)
        if seek is not None and self.size is not None and seek():
            left = self.start + self.size - self.base
            step = min(n, max(left, 0))
            self._stream.seek(step, 1)
            self.base += step
            return step == n
        while n > 0:
            chunk = self._stream.read(min(CHUNK, n))
            if not chunk:
                return False
            self.base += len(chunk)
            n -= len(chunk)
        return True

    def readline(self, limit: int) -> tuple[bytes | None, int]:
        """The next line without its ``\\n`` (None if longer than ``limit``) and its length.

        Returns ``(None, -1)`` when the stream ends before a newline.
        """
        length = 0
        kept: list[bytes] = []
        while True:
            idx = self.buf.find(b"\n", self.pos)
            if idx >= 0:
                piece = self.buf[self.pos : idx]
                self.pos = idx + 1
                length += len(piece)
                if length > limit:
                    return None, length
                kept.append(piece)
                return b"".join(kept), length
            piece = self.buf[self.pos :]
            length += len(piece)
            if length <= limit:
                kept.append(piece)
            else:
                kept = []
            self.pos = len(self.buf)
            if not self.fill(1):
                return None, -1
