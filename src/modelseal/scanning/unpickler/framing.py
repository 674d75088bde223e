"""What ``pickle.load(file)`` actually reads when FRAME lengths do not match the opcodes.

``pickle.loads(data)`` (and ``load`` on a file whose ``peek`` already buffered everything) reads
the bytes contiguously: a FRAME only checks that its length is available. ``pickle.load(f)`` on
a file without ``peek`` (``io.BytesIO``: what ``torch.load`` hands the unpickler for a zip
member) or with a frame larger than the peek buffer reads the frame with one ``f.read(n)``; an
opcode that runs past the end of that frame then *drops the rest of the frame* and reads its
argument from the file (``_Unpickler_ReadImpl`` in ``Modules/_pickle.c``), and after STOP the
next ``load`` starts at the end of the frame, not after STOP. Byte arguments of BINBYTES,
SHORT_BINBYTES, BINBYTES8 and BYTEARRAY8 are read with ``readinto`` and stay contiguous.

:func:`file_view` replays that reader over the raw bytes, syntactically (argument sizes never
depend on the stack), and returns the byte sequence the file reader hands the unpickler, with
FRAME lengths zeroed (their check already happened here). Walking that sequence contiguously is
walking the file reader's interpretation.
"""

from __future__ import annotations

_FIXED = {
    0x80: 1,  # PROTO
    0x4A: 4,  # BININT
    0x4B: 1,  # BININT1
    0x4D: 2,  # BININT2
    0x47: 8,  # BINFLOAT
    0x68: 1,  # BINGET
    0x6A: 4,  # LONG_BINGET
    0x71: 1,  # BINPUT
    0x72: 4,  # LONG_BINPUT
    0x82: 1,  # EXT1
    0x83: 2,  # EXT2
    0x84: 4,  # EXT4
}
# opcode -> (bytes of the length, signed length, argument read with readinto)
_COUNTED = {
    0x8A: (1, False, False),  # LONG1
    0x8B: (4, True, False),  # LONG4
    0x55: (1, False, False),  # SHORT_BINSTRING
    0x54: (4, True, False),  # BINSTRING
    0x8C: (1, False, False),  # SHORT_BINUNICODE
    0x58: (4, False, False),  # BINUNICODE
    0x8D: (8, False, False),  # BINUNICODE8
    0x43: (1, False, True),  # SHORT_BINBYTES
    0x42: (4, False, True),  # BINBYTES
    0x8E: (8, False, True),  # BINBYTES8
    0x96: (8, False, True),  # BYTEARRAY8
}
_LINES = {
    **dict.fromkeys(b"ILFSVPgp", 1),  # INT LONG FLOAT STRING UNICODE PERSID GET PUT
    **dict.fromkeys(b"ci", 2),  # GLOBAL INST
}
_NO_ARG = frozenset(b"(.012NRabdelostu})]Q\x81\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94\x97\x98")
_STOP = 0x2E
_FRAME = 0x95
_MAX_SSIZE = (1 << 63) - 1


class _End(Exception):
    """The reader stops here (truncation or an error found while reading)."""


class _FileReader:
    """The C unpickler's input buffer over a file without ``peek`` (absolute offsets)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.idx = 0  # next byte the unpickler reads
        self.end = 0  # end of the buffer = the file's position
        self.out = bytearray()

    def read(self, n: int) -> bytes:
        """``_Unpickler_Read``: from the buffer, else the rest of the buffer is dropped."""
        if n <= self.end - self.idx:
            chunk = bytes(self.data[self.idx : self.idx + n])
            self.idx += n
        else:
            if n > _MAX_SSIZE - self.end or self.end + n > self.size:
                self.out += self.data[self.end : self.size]  # the unpickler sees too little
                raise _End
            chunk = bytes(self.data[self.end : self.end + n])
            self.end += n
            self.idx = self.end
        self.out += chunk
        return chunk

    def read_into(self, n: int) -> None:
        """``_Unpickler_ReadInto``: the rest of the buffer, then the file: contiguous."""
        have = self.end - self.idx
        if n <= have:
            self.out += self.data[self.idx : self.idx + n]
            self.idx += n
            return
        rest = n - have
        self.out += self.data[self.idx : self.end]
        if self.end + rest > self.size:
            self.out += self.data[self.end : self.size]
            raise _End
        self.out += self.data[self.end : self.end + rest]
        self.end += rest
        self.idx = self.end

    def readline(self) -> None:
        """``_Unpickler_Readline``: a line in the buffer, else a whole new line from the file."""
        nl = self.data[self.idx : self.end].find(b"\n") if self.end > self.idx else -1
        if nl >= 0:
            stop = self.idx + nl + 1
            self.out += self.data[self.idx : stop]
            self.idx = stop
            return
        nl = self.data[self.end : self.size].find(b"\n")
        if nl < 0:
            self.out += self.data[self.end : self.size]
            raise _End
        stop = self.end + nl + 1
        self.out += self.data[self.end : stop]
        self.end = stop
        self.idx = stop

    def frame(self) -> None:
        """FRAME: the whole frame must be readable now; then reading goes on from its start."""
        raw = self.read(8)
        n = int.from_bytes(raw, "little")
        if n > _MAX_SSIZE:
            raise _End  # "FRAME length exceeds system's maximum": the unpickler sees it too
        del self.out[-8:]
        self.out += bytes(8)  # checked here; a zero length always fits
        if n <= self.end - self.idx:
            return
        if self.end + n > self.size:
            self.out[-8:] = raw  # let the walker see the length it cannot satisfy
            self.out += self.data[self.end : self.size]
            raise _End
        self.idx = self.end
        self.end += n

    def one(self) -> bool:
        """Read one opcode and its argument; True after STOP."""
        code = self.read(1)[0]
        if code in _FIXED:
            self.read(_FIXED[code])
        elif code in _COUNTED:
            width, signed, into = _COUNTED[code]
            n = int.from_bytes(self.read(width), "little", signed=signed)
            if n < 0 or n > _MAX_SSIZE:
                raise _End  # the unpickler refuses the length before reading
            if into:
                self.read_into(n)
            else:
                self.read(n)
        elif code in _LINES:
            for _ in range(_LINES[code]):
                self.readline()
        elif code == _FRAME:
            self.frame()
        elif code not in _NO_ARG:
            raise _End  # invalid load key
        return code == _STOP


def file_view(data: bytes, *, max_pickles: int = 100_000) -> bytes:
    """The bytes successive ``pickle.load(f)`` calls on a peek-less file holding ``data`` hand
    the unpickler, each pickle starting where the file reader left the previous one (the end of
    its last frame), FRAME lengths zeroed. Stops where a read runs out of data or meets an
    invalid opcode (the unpickler fails there too: the returned bytes end at that point).
    """
    reader = _FileReader(data)
    pickles = 0
    try:
        while reader.end < reader.size and pickles < max_pickles:
            reader.idx = reader.end  # a new load(): an empty buffer at the file's position
            while not reader.one():
                pass
            pickles += 1
    except _End:
        pass
    return bytes(reader.out)


def contiguous_view(data: bytes) -> bytes:
    """The bytes ``pickle.loads`` reads, FRAME lengths zeroed like :func:`file_view` does,
    so the two can be compared: they differ exactly when the two readers disagree."""
    out = bytearray()
    reader = _ContiguousReader(data, out)
    try:
        while reader.idx < reader.size:
            while not reader.one():
                pass
    except _End:
        pass
    return bytes(out)


class _ContiguousReader(_FileReader):
    """``pickle.loads``: the whole input is one buffer."""

    def __init__(self, data: bytes, out: bytearray) -> None:
        super().__init__(data)
        self.out = out
        self.end = len(data)

    def read(self, n: int) -> bytes:
        if n > self.end - self.idx:
            self.out += self.data[self.idx : self.end]
            raise _End
        chunk = bytes(self.data[self.idx : self.idx + n])
        self.idx += n
        self.out += chunk
        return chunk

    def read_into(self, n: int) -> None:
        self.read(n)

    def readline(self) -> None:
        nl = self.data[self.idx : self.end].find(b"\n")
        if nl < 0:
            self.out += self.data[self.idx : self.end]
            raise _End
        stop = self.idx + nl + 1
        self.out += self.data[self.idx : stop]
        self.idx = stop

    def frame(self) -> None:
        raw = self.read(8)
        n = int.from_bytes(raw, "little")
        if n > _MAX_SSIZE:
            raise _End
        if n > self.end - self.idx:
            self.out += self.data[self.idx : self.end]
            raise _End
        self.out[-8:] = bytes(8)


__all__ = ["contiguous_view", "file_view"]
