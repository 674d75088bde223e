"""GGUF: metadata sanity, tensor bounds, and chat templates that smuggle code into Jinja."""

from __future__ import annotations

import math
import re
import struct
from typing import Any, BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.source import Source

MAX_STRING = 64 << 20
MAX_ARRAY = 1 << 28
MAX_KV = 1 << 20
MAX_TENSORS = 1 << 20
MAX_DIMS = 8
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
# ggml type -> (elements per block, bytes per block)
GGML_SIZES = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 36),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    34: (256, 54),
    35: (256, 66),
    39: (32, 17),
}
# Jinja constructs that reach Python internals (sandbox escapes, CVE-2024-34359 style).
_TEMPLATE_BAD = re.compile(
    r"__\w+__|\\x5f|\\u005f|\|\s*attr\s*\(|\bos\.|\bpopen\b|\bsubprocess\b|\beval\s*\(|"
    r"\bexec\s*\(|\bimport\b|\bself\._|\blipsum\b|\bcycler\b|\bjoiner\b|\burl_for\b|"
    r"\bget_flashed_messages\b|\bconfig\.|\brequest\.",
)


class _Bad(Exception):
    pass


def scan_gguf(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Check a GGUF file's header, metadata, tensor table and chat templates."""
    ctx.saw("gguf")
    src = Source(stream, size=size)

    def need(n: int) -> bytes:
        data = src.take(n)
        if data is None:
            raise _Bad("file ends inside the header")
        return data

    def u(fmt: str) -> Any:
        return struct.unpack(fmt, need(struct.calcsize(fmt)))[0]

    def string() -> str:
        n = u("<Q")
        if n > MAX_STRING:
            raise _Bad(f"string of {n} bytes exceeds the {MAX_STRING}-byte limit")
        return need(n).decode("utf-8", "replace")

    def value(kind: int, depth: int = 0) -> Any:
        if kind in _SCALARS:
            return u(_SCALARS[kind])
        if kind == 8:
            return string()
        if kind == 9 and depth == 0:
            sub = u("<I")
            n = u("<Q")
            if n > MAX_ARRAY:
                raise _Bad(f"array of {n} items exceeds the limit")
            if sub in _SCALARS:
                if not src.skip(n * struct.calcsize(_SCALARS[sub])):
                    raise _Bad("file ends inside an array")
                return None
            return [value(sub, depth + 1) for _ in range(n)]
        raise _Bad(f"unknown metadata value type {kind}")

    try:
        need(4)
        version = u("<I")
        if version not in (1, 2, 3):
            raise _Bad(f"unsupported GGUF version {version}")
        count = "<I" if version == 1 else "<Q"
        n_tensors, n_kv = u(count), u(count)
        if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
            ctx.find(
                rules.GGUF_COUNTS,
                Severity.HIGH,
                location.at(8),
                "counts",
                f"{n_tensors} tensors / {n_kv} metadata entries exceed sane limits "
                "(allocation bomb for readers)",
            )
            raise _Bad("implausible tensor or metadata count")
        alignment = 32
        for _ in range(n_kv):
            at = src.tell()
            key = string()
            kind = u("<I")
            val = value(kind)
            if key == "general.alignment":
                if not isinstance(val, int) or val <= 0 or val & (val - 1):
                    ctx.find(
                        rules.GGUF_METADATA,
                        Severity.MEDIUM,
                        location.at(at),
                        key,
                        "alignment must be a power of two",
                    )
                else:
                    alignment = val
            if key.startswith("tokenizer.chat_template"):
                texts = val if isinstance(val, list) else [val]
                for text in texts:
                    if isinstance(text, str):
                        _check_template(ctx, key, text, location.at(at))
        tensors: list[tuple[int, int, str]] = []
        for _ in range(n_tensors):
            name = string()
            n_dims = u("<I")
            if n_dims > MAX_DIMS:
                raise _Bad(f"tensor {name!r} has {n_dims} dimensions")
            dims = [u("<Q") for _ in range(n_dims)]
            ggml_type = u("<I")
            offset = u("<Q")
            sizes = GGML_SIZES.get(ggml_type)
            if sizes is None:
                ctx.find(
                    rules.GGUF_TENSOR,
                    Severity.LOW,
                    location,
                    name,
                    f"unknown ggml type {ggml_type}: its bounds cannot be checked",
                )
                continue
            numel = math.prod(dims)
            if numel % sizes[0]:
                ctx.find(
                    rules.GGUF_TENSOR,
                    Severity.MEDIUM,
                    location,
                    name,
                    "element count is not a whole number of quantisation blocks",
                )
            if offset % alignment:
                ctx.find(rules.GGUF_TENSOR, Severity.MEDIUM, location, name, "misaligned offset")
            tensors.append((offset, offset + numel // sizes[0] * sizes[1], name))
    except _Bad as exc:
        ctx.fail(location.at(src.tell()), f"GGUF header cannot be parsed: {exc}")
        return
    header_end = src.tell()
    data_start = (header_end + alignment - 1) // alignment * alignment
    tensors.sort()
    cursor = 0
    for begin, end, name in tensors:
        if begin < cursor:
            ctx.find(
                rules.GGUF_TENSOR, Severity.HIGH, location, name, "tensor data overlaps another"
            )
        cursor = max(cursor, end)
        if size is not None and data_start + end > size:
            ctx.find(
                rules.GGUF_TENSOR,
                Severity.HIGH,
                location,
                name,
                "tensor data lies past the end of the file",
            )


def _check_template(ctx: Context, key: str, text: str, loc: Location) -> None:
    hits = sorted({m.group(0) for m in _TEMPLATE_BAD.finditer(text)})
    if hits:
        ctx.find(
            rules.GGUF_CHAT_TEMPLATE,
            Severity.CRITICAL,
            loc,
            key,
            f"chat template uses {', '.join(hits[:5])}: Jinja rendering can escape to "
            "Python and run code",
        )
