"""safetensors: the header must describe exactly the data that follows, nothing more."""

from __future__ import annotations

import json
import math
from typing import Any, BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.report import Location, Severity

MAX_HEADER = 100_000_000  # the reference implementation's limit
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def scan_safetensors(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Check a safetensors header and that its tensors tile the data exactly."""
    ctx.saw("safetensors")

    def bad(subject: str, message: str, severity: Severity = Severity.HIGH) -> None:
        ctx.find(rules.SAFETENSORS_HEADER, severity, location.at(0), subject, message)

    n = int.from_bytes(stream.read(8), "little")
    if n > MAX_HEADER:
        bad("header size", f"header of {n} bytes exceeds the {MAX_HEADER}-byte limit")
        ctx.fail(location, "safetensors header too large to parse")
        return
    raw = stream.read(n)
    if len(raw) != n:
        ctx.fail(location, "safetensors header is truncated")
        return
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs)
    except ValueError as exc:
        bad("header", f"header is not valid JSON: {exc}")
        ctx.fail(location, f"safetensors header cannot be parsed: {exc}")
        return
    except RecursionError:
        bad("header", "header nests too deeply (a parser bomb)")
        ctx.fail(location, "safetensors header nests too deeply")
        return
    if not isinstance(header, dict):
        bad("header", "header is not a JSON object")
        ctx.fail(location, "safetensors header is not an object")
        return
    data_len = None if size is None else size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in entry.items()
            ):
                bad("__metadata__", "metadata must map strings to strings", Severity.MEDIUM)
            continue
        if not isinstance(entry, dict) or set(entry) - {"dtype", "shape", "data_offsets"}:
            bad(name, "tensor entry has unexpected fields", Severity.MEDIUM)
            if not isinstance(entry, dict):
                continue
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BITS:
            bad(name, f"unknown dtype {dtype!r}", Severity.MEDIUM)
            continue
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            bad(name, "shape is not a list of non-negative integers")
            continue
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and o >= 0 for o in offsets)
            and offsets[0] <= offsets[1]
        ):
            bad(name, "data_offsets is not [begin, end] with begin <= end")
            continue
        begin, end = offsets
        nbytes = math.prod(shape) * DTYPE_BITS[str(dtype)]
        if nbytes % 8 or nbytes // 8 != end - begin:
            bad(name, f"{dtype} {shape} needs {nbytes / 8:g} bytes, offsets give {end - begin}")
        if data_len is not None and end > data_len:
            bad(name, f"data_offsets end {end} lies past the {data_len} data bytes")
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin < cursor:
            bad(name, "tensor data overlaps another tensor")
        elif begin > cursor:
            bad(
                name,
                f"{begin - cursor} bytes before this tensor belong to no tensor "
                "(room to smuggle data)",
                Severity.LOW,
            )
        cursor = max(cursor, end)
    if data_len is not None and cursor < data_len:
        bad(
            "trailing data",
            f"{data_len - cursor} bytes after the last tensor belong to no "
            "tensor (room to smuggle data)",
            Severity.LOW,
        )
