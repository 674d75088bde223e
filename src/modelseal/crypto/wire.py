"""Just enough of the protobuf wire format for Tink's key messages, strict on input.

Only varint (type 0) and length-delimited (type 2) fields occur in the messages we read; any
other wire type, a truncated field or an over-long varint is rejected.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT = 0
LEN = 2


class WireError(ValueError):
    """The bytes are not a well-formed message of the expected shape."""


def _varint(value: int) -> bytes:
    if value < 0:
        raise WireError("negative varint")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    """A varint field; proto3 omits zero values, and so do we (byte-identical to protobuf)."""
    return b"" if value == 0 else _varint(number << 3 | VARINT) + _varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    """A length-delimited field; empty values are omitted as proto3 does."""
    return b"" if not value else _varint(number << 3 | LEN) + _varint(len(value)) + value


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result >= 1 << 64:
                raise WireError("varint too large")
            return result, pos
    raise WireError("varint too long")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field number, wire type, value)`` for every field in ``data``."""
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == VARINT:
            value, pos = _read_varint(data, pos)
            yield number, wire_type, value
        elif wire_type == LEN:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise WireError("truncated field")
            yield number, wire_type, data[pos : pos + length]
            pos += length
        else:
            raise WireError(f"unexpected wire type {wire_type}")


def parse(data: bytes, schema: dict[int, int]) -> dict[int, list[int | bytes]]:
    """Group the fields of ``data`` by number; ``schema`` maps each known number to its wire type.

    Unknown field numbers are skipped (protobuf semantics); a known number with the wrong wire
    type is an error.
    """
    out: dict[int, list[int | bytes]] = {}
    for number, wire_type, value in fields(data):
        expected = schema.get(number)
        if expected is None:
            continue
        if expected != wire_type:
            raise WireError(f"field {number} has wire type {wire_type}, expected {expected}")
        out.setdefault(number, []).append(value)
    return out


def last_int(parsed: dict[int, list[int | bytes]], number: int) -> int:
    """The last value of varint field ``number`` in a :func:`parse` result (0 when absent)."""
    values = parsed.get(number)
    value = values[-1] if values else 0
    assert isinstance(value, int)  # guaranteed by parse()'s schema check
    return value


def last_bytes(parsed: dict[int, list[int | bytes]], number: int) -> bytes:
    """The last value of bytes field ``number`` in a :func:`parse` result (empty when absent)."""
    values = parsed.get(number)
    value = values[-1] if values else b""
    assert isinstance(value, bytes)
    return value
