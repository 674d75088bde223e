"""Pickles hidden inside other formats (HDF5 attributes, object datasets, ONNX strings).

A byte string that some loader may hand to ``pickle.loads`` (PyTables unpickles every string
attribute that ends in ``.``) is run through the pickle VM. When the VM says it is not a pickle
at all (it fails before anything that could act), the string is plain data, exactly as for the
loader, which falls back to the raw value.
"""

from __future__ import annotations

import io
from typing import BinaryIO, cast

from modelseal.scanning.context import Context
from modelseal.scanning.pickle_vm import PickleVM
from modelseal.scanning.report import Location
from modelseal.scanning.sniff import PICKLE_FIRST
from modelseal.scanning.source import Source


def maybe_pickle(data: bytes) -> bool:
    """True when ``data`` could be a pickle: a protocol 2+ header, or text that PyTables would
    try to unpickle (it ends with the STOP opcode ``.``)."""
    if len(data) < 2:
        return False
    if data[0] == 0x80:
        return data[1] <= 5
    return data[0] in PICKLE_FIRST and data.rstrip(b"\0").endswith(b".")


def probe_pickle(ctx: Context, data: bytes, location: Location) -> bool:
    """Scan ``data`` as one pickle if it is one; merge what the VM found into ``ctx``.

    Returns True when ``data`` was a pickle (complete, or acting before it broke).
    """
    if not maybe_pickle(data):
        return False
    return probe_stream(ctx, cast(BinaryIO, io.BytesIO(data)), len(data), location)


def probe_stream(ctx: Context, stream: BinaryIO, size: int | None, location: Location) -> bool:
    """Like :func:`probe_pickle` for a stream positioned at its start (read, never held)."""
    vm = PickleVM(
        Source(stream, size=size),
        location=location,
        allowlist=ctx.options.allowlist,
        limits=ctx.options.limits,
        single=True,
    )
    vm.run()
    complete = vm.pickles >= 1 and not vm.unscannable and vm.ops >= 2
    if not vm.findings and not complete:
        return False  # not a pickle: the loader's pickle.loads fails before doing anything
    ctx.saw("pickle")
    ctx.findings.extend(vm.findings)
    ctx.unscannable.extend(vm.unscannable)
    return True
