"""Small binary stream adapters: a seekable window onto a file, and a budgeted reader."""

from __future__ import annotations

import io
from typing import BinaryIO


class SliceFile(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes of ``base`` starting at ``offset``."""

    def __init__(self, base: BinaryIO, offset: int, length: int) -> None:
        super().__init__()
        self._base = base
        self._offset = offset
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        """Always True: this is a readable stream."""
        return True

    def seekable(self) -> bool:
        """Always True: the slice can seek."""
        return True

    def tell(self) -> int:
        """Position within the slice."""
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        """Move within the slice (like :meth:`io.IOBase.seek`)."""
        if whence == 0:
            new = pos
        elif whence == 1:
            new = self._pos + pos
        else:
            new = self._length + pos
        self._pos = max(0, new)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer`` without passing the slice's end."""
        n = min(len(buffer), self._length - self._pos)
        if n <= 0:
            return 0
        self._base.seek(self._offset + self._pos)
        data = self._base.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


class Budget:
    """Bytes of decompressed data one top-level file may expand to (zip/gzip bomb guard)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, n: int) -> bool:
        """Count ``n`` more bytes; False once the budget is spent."""
        self.used += n
        return self.used <= self.limit


class BudgetExceeded(Exception):
    """Decompression went past the budget."""


class Counted(io.RawIOBase):
    """Read from ``inner`` while charging a :class:`Budget`; raises when it is spent."""

    def __init__(self, inner: BinaryIO, budget: Budget) -> None:
        super().__init__()
        self._inner = inner
        self._budget = budget

    def readable(self) -> bool:
        """Always True: this is a readable stream."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer``, counting the bytes against the budget."""
        data = self._inner.read(len(buffer))
        if not self._budget.spend(len(data)):
            raise BudgetExceeded(f"decompressed data exceeds {self._budget.limit} bytes")
        buffer[: len(data)] = data
        return len(data)


def reader(raw: io.RawIOBase) -> BinaryIO:
    """Buffer a raw stream for efficient small reads."""
    return io.BufferedReader(raw, buffer_size=1 << 20)
