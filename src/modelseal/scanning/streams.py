"""Binary stream adapters for scanning: windows onto a file, forward-only decoded streams, and
the per-file budget every decompressed byte is charged to as it streams.

Nothing here materialises a member or a decompressed stream: codecs are asked for at most
``CHUNK`` bytes at a time, each chunk is charged to the :class:`Budget` (output size, expansion
ratio, wall time) before the scanner sees it, and a forward stream keeps only its first
``HEAD_KEEP`` bytes so that format sniffing can peek and rewind.
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable
from typing import BinaryIO, Protocol

CHUNK = 1 << 20
HEAD_KEEP = 1 << 16
_SPOOL_MEMORY = 8 << 20


class SliceFile(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes of ``base`` starting at ``offset``."""

    def __init__(self, base: BinaryIO, offset: int, length: int) -> None:
        super().__init__()
        self._base = base
        self._offset = offset
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        """Always True: this stream can be read."""
        return True

    def seekable(self) -> bool:
        """True: seeking works within the limits the class describes."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        """Move to ``pos`` (like :meth:`io.IOBase.seek`, within the limits above)."""
        if whence == 0:
            new = pos
        elif whence == 1:
            new = self._pos + pos
        else:
            new = self._length + pos
        self._pos = max(0, new)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer``; 0 at the end."""
        n = min(len(buffer), self._length - self._pos)
        if n <= 0:
            return 0
        self._base.seek(self._offset + self._pos)
        data = self._base.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


class BudgetExceeded(Exception):
    """Decoding went past a budget. ``bomb`` is True for size and ratio (the data is built to
    expand: a finding) and False for time (the scan could not finish: unscannable only)."""

    def __init__(self, message: str, *, bomb: bool = True) -> None:
        super().__init__(message)
        self.bomb = bomb


class Budget:
    """What one top-level file may cost to decode: total decompressed bytes, expansion ratio
    of any single stream past ``ratio_floor`` bytes of output, and wall time."""

    def __init__(
        self,
        limit: int,
        *,
        max_ratio: float = 0.0,
        ratio_floor: int = 32 << 20,
        seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.used = 0
        self.max_ratio = max_ratio
        self.ratio_floor = ratio_floor
        self.seconds = seconds
        self._clock = clock
        self._deadline = clock() + seconds if seconds > 0 else None
        self.file_size = 0  # the top-level file's size: all its decoded data against it

    def spend(self, n: int) -> bool:
        """Charge ``n`` decoded bytes; False once the total passes the limit."""
        self.used += n
        return self.used <= self.limit

    def charge(self, n: int) -> None:
        """Charge ``n`` decoded bytes and check the clock; raises :class:`BudgetExceeded`."""
        if not self.spend(n):
            raise BudgetExceeded(f"decompressed data exceeds {self.limit} bytes")
        if self.file_size:
            # Many members each under the per-stream floor (or members sharing bytes) add up.
            self.check_ratio("the file's archives", self.used, self.file_size)
        self.check_time()

    def check_time(self) -> None:
        """Raise :class:`BudgetExceeded` (not a bomb) once the scan's time is up."""
        if self._deadline is not None and self._clock() > self._deadline:
            raise BudgetExceeded(f"scan time budget of {self.seconds:g} s exhausted", bomb=False)

    def check_ratio(self, what: str, produced: int, consumed: int) -> None:
        """Raise :class:`BudgetExceeded` when ``produced`` bytes from ``consumed`` is a bomb."""
        if (
            self.max_ratio > 0
            and produced > self.ratio_floor
            and produced > self.max_ratio * max(consumed, 1)
        ):
            raise BudgetExceeded(
                f"{what} expands {consumed} bytes to more than {produced} "
                f"(over {self.max_ratio:g}:1)"
            )


class Codec(Protocol):
    """A decoder that returns at most ``n`` decoded bytes per call, ``b""`` at the end."""

    def read(self, n: int) -> bytes:
        """At most ``n`` decoded bytes; ``b""`` at the end."""
        ...


class CountingReader:
    """Reads from ``raw`` and counts the bytes read (a codec's input, for the ratio)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        """At most ``n`` decoded bytes; ``b""`` at the end."""
        data = self.raw.read(n)
        self.count += len(data)
        return data


class Forward(io.RawIOBase):
    """A forward-only stream of a codec's output that keeps its first ``HEAD_KEEP`` bytes.

    Seeking forward decodes and discards; seeking back is possible only into the kept head
    (enough for sniffing, then reading from the start); anything else raises
    :class:`io.UnsupportedOperation` (an ``OSError``). Every decoded chunk is charged to
    ``budget``; with ``counter`` set, the stream's expansion ratio is checked too; with ``crc``,
    :attr:`crc` is the CRC-32 of everything decoded so far.
    """

    def __init__(
        self,
        codec: Codec,
        budget: Budget | None,
        *,
        counter: CountingReader | None = None,
        what: str = "stream",
        crc: bool = False,
    ) -> None:
        super().__init__()
        self._track_crc = crc
        self.crc = 0
        self._codec = codec
        self._budget = budget
        self._counter = counter
        self._what = what
        self._head = bytearray()
        self._pending = b""
        self._pending_at = 0  # offset of the first byte of _pending (= next byte decoded)
        self._produced = 0
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        """Always True: this stream can be read."""
        return True

    def seekable(self) -> bool:
        """True: seeking works within the limits the class describes."""
        return True  # within the limits above; Source only seeks when the size is known

    def tell(self) -> int:
        """The current position."""
        return self._pos

    @property
    def produced(self) -> int:
        """Decoded bytes so far."""
        return self._produced

    def seek(self, pos: int, whence: int = 0) -> int:
        """Move to ``pos`` (like :meth:`io.IOBase.seek`, within the limits above)."""
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            self._drain()
            pos += self._produced
        if pos < 0:
            raise ValueError("negative seek position")
        if pos < self._pending_at and pos >= len(self._head):
            raise io.UnsupportedOperation(f"cannot seek backwards in a {self._what}")
        self._pos = pos
        return pos

    def _decode(self, n: int) -> bool:
        if self._eof:
            return False
        data = self._codec.read(max(n, 1 << 16))
        if not data:
            self._eof = True
            return False
        self._produced += len(data)
        if self._track_crc:
            self.crc = zlib.crc32(data, self.crc)
        if self._budget is not None:
            self._budget.charge(len(data))
            if self._counter is not None:
                self._budget.check_ratio(self._what, self._produced, self._counter.count)
        self._pending = data
        return True

    def _drain(self) -> None:
        while self._decode(CHUNK):
            self._take(len(self._pending))

    def _take(self, n: int) -> bytes:
        """Consume ``n`` bytes of ``_pending`` (keeping the head while it is contiguous)."""
        out = self._pending[:n]
        if self._pending_at == len(self._head) and len(self._head) < HEAD_KEEP:
            self._head += out[: HEAD_KEEP - len(self._head)]
        self._pending = self._pending[n:]
        self._pending_at += len(out)
        return out

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer``; 0 at the end."""
        n = len(buffer)
        if n == 0:
            return 0
        if self._pos < len(self._head) and self._pos < self._pending_at:
            piece = bytes(self._head[self._pos : min(self._pos + n, self._pending_at)])
            buffer[: len(piece)] = piece
            self._pos += len(piece)
            return len(piece)
        if self._pos < self._pending_at:
            raise io.UnsupportedOperation(f"cannot seek backwards in a {self._what}")
        while self._pos > self._pending_at:  # a forward seek: decode and discard
            if not self._pending and not self._decode(CHUNK):
                return 0
            self._take(min(len(self._pending), self._pos - self._pending_at))
        if not self._pending and not self._decode(n):
            return 0
        piece = self._take(min(n, len(self._pending)))
        buffer[: len(piece)] = piece
        self._pos += len(piece)
        return len(piece)


class PlainCodec:
    """The identity codec over anything with ``read(n)`` (a tar member in stream mode)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def read(self, n: int) -> bytes:
        """At most ``n`` decoded bytes; ``b""`` at the end."""
        return self._raw.read(n)


def reader(raw: io.RawIOBase) -> BinaryIO:
    """Buffer a raw stream for efficient small reads."""
    return io.BufferedReader(raw, buffer_size=1 << 20)


def spool(stream: BinaryIO) -> tuple[BinaryIO, int]:
    """Copy a forward stream (already budgeted) to a temporary file for formats that need
    random access; returns the copy, rewound, and its size. At most 8 MiB stays in memory."""
    import tempfile

    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - caller closes
    total = 0
    try:
        while chunk := stream.read(CHUNK):
            out.write(chunk)
            total += len(chunk)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out, total  # type: ignore[return-value]
