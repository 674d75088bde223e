"""LightGBM text models (``Booster.save_model``): plain ``key=value`` text read by LightGBM's C++
parser, which executes nothing. Such a file can never be unpickled either: its first byte ``t``
is the TUPLE opcode, which the real unpickler rejects at offset 0 (no MARK), before any global
is resolved. So the scan checks that the file is what it says, text from start to end; anything
else in it (control bytes, invalid UTF-8) makes it unscannable, never clean."""

from __future__ import annotations

import codecs
from typing import BinaryIO

from modelseal.scanning.context import Context
from modelseal.scanning.report import Location

MAGIC = b"tree\nversion=v"
_CHUNK = 1 << 20
_ALLOWED_CONTROL = frozenset(b"\t\n\r")
_BAD = bytes(c for c in range(32) if c not in _ALLOWED_CONTROL) + b"\x7f"


def scan_lightgbm(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Check that a LightGBM text model is plain UTF-8 text without control bytes."""
    ctx.saw("lightgbm")
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        if len(chunk.translate(None, _BAD)) != len(chunk):
            bad = next(i for i, c in enumerate(chunk) if c in _BAD)
            ctx.fail(
                location.at(offset + bad),
                f"binary byte 0x{chunk[bad]:02x} in a LightGBM text model",
            )
            return
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            ctx.fail(location.at(offset + exc.start), "invalid UTF-8 in a LightGBM text model")
            return
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        ctx.fail(location.at(offset), "a LightGBM text model ends inside a UTF-8 character")
