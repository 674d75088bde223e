"""A minimal protobuf wire-format reader over a :class:`Source`: fields are visited in order and
payloads the caller does not consume are skipped in place (never loaded)."""

from __future__ import annotations

from collections.abc import Callable

from modelseal.scanning.source import Source

MAX_DEPTH = 64
KEEP = 1 << 20  # longest string field kept (names, paths, op types)


class BadMessage(Exception):
    """The bytes are not a well-formed protobuf message."""


class Reader:
    """Read varints, fields, strings and sub-messages from ``src``."""

    def __init__(self, src: Source) -> None:
        self.src = src

    def varint(self) -> int:
        """The next base-128 varint (at most 10 bytes)."""
        shift = result = 0
        while True:
            b = self.src.take(1)
            if b is None:
                raise BadMessage("truncated varint")
            result |= (b[0] & 0x7F) << shift
            if not b[0] & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise BadMessage("varint too long")

    def fields(self, end: int | None, depth: int, on: Callable[[int, int, int], bool]) -> None:
        """Call ``on(field, wire, length_or_value)`` per field; for length-delimited fields
        ``on`` returns True if it consumed the payload, else it is skipped."""
        if depth > MAX_DEPTH:
            raise BadMessage("messages nest too deeply")
        while end is None or self.src.tell() < end:
            if end is None and self.src.at_eof():
                return
            key = self.varint()
            field, wire = key >> 3, key & 7
            if field == 0:
                raise BadMessage("field number 0")
            if wire == 0:
                on(field, wire, self.varint())
            elif wire == 1:
                self._skip(8)
            elif wire == 5:
                self._skip(4)
            elif wire == 2:
                n = self.varint()
                stop = self.src.tell() + n
                if end is not None and stop > end:
                    raise BadMessage("field runs past its message")
                remaining = self.src.remaining()
                if remaining is not None and n > remaining:
                    raise BadMessage("field runs past the end of the file")
                if not on(field, wire, n):
                    self._skip(n)
                elif self.src.tell() != stop:
                    raise BadMessage("sub-message length mismatch")
            else:
                raise BadMessage(f"unsupported wire type {wire}")
        if end is not None and self.src.tell() != end:
            raise BadMessage("message overruns its length")

    def _skip(self, n: int) -> None:
        if not self.src.skip(n):
            raise BadMessage("truncated field")

    def text(self, n: int) -> str:
        """The next ``n`` bytes as UTF-8 text; ``"<long>"`` (skipped) past :data:`KEEP`."""
        if n > KEEP:
            self._skip(n)
            return "<long>"
        data = self.src.take(n)
        if data is None:
            raise BadMessage("truncated string")
        return data.decode("utf-8", "replace")

    def raw(self, n: int) -> bytes | None:
        """The next ``n`` bytes, or None (skipped) when longer than :data:`KEEP`."""
        if n > KEEP:
            self._skip(n)
            return None
        data = self.src.take(n)
        if data is None:
            raise BadMessage("truncated bytes")
        return data

    def sub(self, n: int, depth: int, on: Callable[[int, int, int], bool]) -> bool:
        """Walk the next ``n`` bytes as a sub-message one level deeper (see :meth:`fields`)."""
        self.fields(self.src.tell() + n, depth + 1, on)
        return True
