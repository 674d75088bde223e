"""Raw pickle streams: plain pickles, concatenated pickles, joblib files, legacy torch files."""

from __future__ import annotations

import math
import re
from typing import Any, BinaryIO

from modelseal.scanning.context import Context
from modelseal.scanning.pickle_vm import GlobalRef, Made, Number, PickleError, PickleVM, Seq
from modelseal.scanning.report import Location
from modelseal.scanning.sniff import HEAD, pickle_verdict

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_SIZES = {
    "Float": 4,
    "Double": 8,
    "Half": 2,
    "BFloat16": 2,
    "ComplexFloat": 8,
    "ComplexDouble": 16,
    "Byte": 1,
    "Char": 1,
    "Short": 2,
    "Int": 4,
    "Long": 8,
    "Bool": 1,
    "QInt8": 1,
    "QUInt8": 1,
    "QInt32": 4,
    "QUInt4x2": 1,
    "QUInt2x4": 1,
}
_DIGITS = re.compile(r"(\d+)")


def _tuple_items(value: Any) -> list[Any] | None:
    if isinstance(value, Seq) and value.kind in ("tuple", "list") and value.n == len(value.items):
        return value.items
    return None


def _dtype_info(dtype: Any) -> tuple[int, bool]:
    """(itemsize, has_objects) of a pickled ``numpy.dtype(...)`` value."""
    if not isinstance(dtype, Made) or not isinstance(dtype.func, GlobalRef):
        raise PickleError("inline numpy array with an unrecognisable dtype")
    args = _tuple_items(dtype.args)
    state = _tuple_items(dtype.state) or []
    if not args or not isinstance(args[0], str):
        raise PickleError("inline numpy array with an unrecognisable dtype")
    code = args[0]
    if any(isinstance(v, Number) for v in state):
        # An int the quick pass did not keep (a run of 16+ wide ints): flags and size unknown.
        raise PickleError("inline numpy array with an unrecognisable dtype")
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    hasobject = code.startswith("O") or bool(flags & 1)
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    if elsize <= 0:
        m = _DIGITS.search(code)
        if m is None:
            raise PickleError(f"inline numpy array with dtype {code!r} of unknown size")
        elsize = int(m.group(1))
        if code[:1] == "U":
            elsize *= 4
    return elsize, hasobject


def joblib_hook(ctx: Context) -> Any:
    """BUILD hook: after a joblib ``NumpyArrayWrapper`` the raw array data follows inline."""

    def hook(vm: PickleVM, made: Made) -> None:
        func = made.func
        if isinstance(func, GlobalRef) and func.name == "_reconstructor":
            args = _tuple_items(made.args)
            func = args[0] if args else None
        if not (
            isinstance(func, GlobalRef)
            and func.module == "joblib.numpy_pickle"
            and func.name == "NumpyArrayWrapper"
        ):
            return
        state = made.state
        if not isinstance(state, Seq) or state.kind != "dict":
            raise PickleError("joblib array wrapper without a readable state")
        shape = _tuple_items(state.get("shape"))
        if shape is None or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise PickleError("joblib array wrapper with an unreadable shape")
        elsize, hasobject = _dtype_info(state.get("dtype"))
        ctx.saw("joblib")
        if hasobject:
            # joblib calls pickle.load on the same file here: a nested, unrestricted pickle.
            inner = PickleVM(
                vm.src,
                location=vm.location,
                allowlist=vm.allowlist,
                limits=vm.limits,
                build_hook=hook,
                single=True,
                depth=vm.depth + 1,
            )
            inner.pickles = vm.pickles * 1000
            inner.run()
            vm.findings.extend(inner.findings)
            vm.unscannable.extend(inner.unscannable)
            if inner.unscannable:
                raise PickleError("stopped after a malformed inline object array")
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            pad = vm.need(1)[0]
            vm.need(pad) if pad <= 64 else vm.src.skip(pad)
        nbytes = math.prod(shape) * elsize
        if not vm.src.skip(nbytes):
            raise PickleError("inline joblib array data is truncated")

    return hook


def _legacy_torch(ctx: Context) -> Any:
    """After the 5 pickles of a legacy ``torch.save`` file, skip the raw storages that follow."""
    state: dict[str, Any] = {"legacy": False, "sizes": {}}

    def after(vm: PickleVM) -> None:
        if vm.pickles == 1:
            state["legacy"] = vm.last_value == TORCH_LEGACY_MAGIC
            return
        if not state["legacy"]:
            return
        if vm.pickles == 4:
            ctx.saw("torch-legacy")
            for pid in vm.persistent_ids:
                items = _tuple_items(pid)
                if items and len(items) >= 3 and items[0] == "storage":
                    kind = items[1]
                    if isinstance(kind, GlobalRef) and isinstance(items[2], str):
                        state["sizes"][items[2]] = _STORAGE_SIZES.get(
                            kind.name.removesuffix("Storage"), 0
                        )
        if vm.pickles == 5:
            keys = _tuple_items(vm.last_value)
            if keys is None:
                raise PickleError("legacy torch file: storage key list is unreadable")
            for key in keys:
                size = state["sizes"].get(key) if isinstance(key, str) else None
                if not size:
                    raise PickleError(f"legacy torch file: storage {key!r} has no known type")
                numel = int.from_bytes(vm.need(8), "little")
                if not vm.src.skip(numel * size):
                    raise PickleError("legacy torch file: storage data is truncated")

    return after


def scan_pickle_file(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Scan a pickle stream: concatenated pickles, joblib inline arrays, legacy torch."""
    ctx.saw("pickle")
    ctx.run_pickle(
        stream, size, location, build_hook=joblib_hook(ctx), after_stop=_legacy_torch(ctx)
    )


def scan_unknown(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Content of no known format: it is still a pickle if the unpickler would act on it."""
    start = stream.tell()
    head = stream.read(HEAD)
    stream.seek(start)
    if pickle_verdict(head, size) is False and head[:1] != b"\x80":
        # The unpickler fails before doing anything: not a pickle (a pickle header is still
        # searched for a payload after junk, below).
        return
    probe = ctx.probe()
    vm = probe.run_pickle(
        stream, size, location, build_hook=joblib_hook(probe), after_stop=_legacy_torch(probe)
    )
    if vm.looks_like_pickle(complete=True):
        ctx.saw("pickle")
        ctx.fallback_pickle = True
        ctx.findings.extend(probe.findings)
        ctx.unscannable.extend(probe.unscannable)
        for fmt in probe.formats:
            ctx.saw(fmt)
