"""NumPy ``.npy`` arrays; object arrays hold a pickle that ``np.load(allow_pickle=True)`` runs."""

from __future__ import annotations

import ast
from typing import BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.report import Location, Severity

_MAX_HEADER = 1 << 16


def _has_object(descr: object) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list):
        return any(isinstance(f, tuple) and len(f) >= 2 and _has_object(f[1]) for f in descr)
    return True  # unknown descr shapes are treated as able to hold objects


def scan_npy(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    ctx.saw("npy")
    head = stream.read(10)
    major = head[6] if len(head) > 6 else 0
    if major == 1:
        hlen = int.from_bytes(head[8:10], "little")
        start = 10
    elif major in (2, 3):
        head += stream.read(2)
        hlen = int.from_bytes(head[8:12], "little")
        start = 12
    else:
        ctx.fail(location, f"unsupported .npy version {major}")
        return
    if hlen > _MAX_HEADER:
        ctx.fail(location, f".npy header of {hlen} bytes is larger than numpy accepts")
        return
    raw = stream.read(hlen)
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin-1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        ctx.fail(location, ".npy header is not a valid literal")
        return
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        ctx.fail(location, ".npy header lacks descr/fortran_order/shape")
        return
    if not _has_object(header["descr"]):
        return
    ctx.find(
        rules.NPY_OBJECT_ARRAY,
        Severity.LOW,
        location.at(0),
        str(header["descr"]),
        "object array: loading it needs allow_pickle=True, which runs the embedded pickle",
    )
    stream.seek(start + hlen)
    left = None if size is None else size - start - hlen
    ctx.run_pickle(stream, left, location, single=True, start=start + hlen)
