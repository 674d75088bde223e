"""Byte counts written by people: ``1048576``, ``256MiB``, ``1G``, ``500GiB``, ``2T``."""

from __future__ import annotations

import re

_UNITS = {
    "": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}  # fmt: skip
_SIZE = re.compile(r"\A\s*(\d+)\s*([kmgt](?:i?b)?)?\s*\Z", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """The positive number of bytes ``text`` says, or ``None`` if it is not one."""
    match = _SIZE.match(text)
    if not match:
        return None
    unit = (match.group(2) or "").lower()
    unit = unit[0] if unit in ("kb", "mb", "gb", "tb") else unit
    value = int(match.group(1)) * _UNITS[unit] if unit in _UNITS else 0
    return value if value > 0 else None
