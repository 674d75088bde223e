"""A read-only, seekable file over memory that does not copy it (``io.BytesIO`` would)."""

from __future__ import annotations

import io
from typing import Any


class ViewReader(io.RawIOBase):
    """Read, seek and tell over a buffer (bytes, bytearray, mmap, memoryview) without copying."""

    def __init__(self, buffer: Any) -> None:
        super().__init__()
        self._view = memoryview(buffer).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        """True: the buffer can be read."""
        return True

    def seekable(self) -> bool:
        """True: any position in the buffer can be sought."""
        return True

    def readinto(self, target: Any) -> int:
        """Copy bytes from the position into ``target``; return the count (0 at the end)."""
        out = memoryview(target).cast("B")
        count = max(0, min(len(out), len(self._view) - self._pos))
        out[:count] = self._view[self._pos : self._pos + count]
        self._pos += count
        return count

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes from the position (the rest if ``size`` is ``None`` or negative)."""
        end = (
            len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        )
        start = min(self._pos, end)
        self._pos = max(self._pos, end)
        return bytes(self._view[start:end])

    def readall(self) -> bytes:
        """Every byte from the position to the end."""
        return self.read(-1)

    def close(self) -> None:
        """Release the buffer (a mapping can be closed only once no view of it is left)."""
        if not self.closed:
            self._view.release()
        super().close()

    def view(self, start: int, end: int) -> memoryview:
        """A zero-copy slice of the underlying buffer."""
        return self._view[start:end]

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` from ``whence`` and return the new position.

        A position before the start is a :class:`ValueError`; one past the end reads nothing.
        """
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        """The current position."""
        return self._pos
