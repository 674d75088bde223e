"""The quick pass over common opcodes is the exact walk, only faster.

Differential tests: hypothesis builds opcode streams (mostly the data opcodes the quick pass
runs inline, mixed with imports, calls, structural opcodes, errors and cut-offs), and the scan
with the quick pass must give the same verdict as the scan that sends every opcode through its
exact handler: the same findings, unscannable regions, pickles, opcodes walked, and the same
top-level value (numbers compared as numbers: the quick pass does not keep their values).
"""

from __future__ import annotations

import io
import struct
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modelseal.scanning.allowlist import Allowlist
from modelseal.scanning.pickle_vm import PickleVM
from modelseal.scanning.report import Location
from modelseal.scanning.source import Source
from modelseal.scanning.unpickler.values import GlobalRef, Made, Number, Opaque, Seq

_ALLOW = Allowlist()


class _Trickle(io.BytesIO):
    """A stream that returns at most ``step`` bytes per read: opcodes straddle buffer edges."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__(data)
        self.step = step

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.step
        return super().read(min(n, self.step))


def _shape(value: Any, depth: int = 0) -> Any:
    """A comparable rendering of a symbolic value (numbers as ``#``)."""
    if depth > 6:
        return "..."
    if value is None or isinstance(value, (bool, int, float, Number)):
        return "#"
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Seq):
        return (value.kind, value.n, [_shape(v, depth + 1) for v in value.items])
    if isinstance(value, GlobalRef):
        return ("global", value.module, value.name, value.allowed)
    if isinstance(value, Made):
        return (
            "made",
            _shape(value.func, depth + 1),
            _shape(value.args, depth + 1),
            _shape(value.state, depth + 1),
        )
    if isinstance(value, Opaque):
        return ("opaque", value.what)
    if isinstance(value, list):
        return [_shape(v, depth + 1) for v in value]
    return type(value).__name__


def verdict(data: bytes, *, fast: bool, step: int | None = None) -> dict[str, Any]:
    """Everything a scan of ``data`` decides, with or without the quick pass."""
    stream: io.BytesIO = io.BytesIO(data) if step is None else _Trickle(data, step)
    vm = PickleVM(
        Source(stream, size=len(data)),
        location=Location("x.pkl"),
        allowlist=_ALLOW,
        fast=fast,
    )
    vm.run()
    return {
        "findings": [
            (f.rule, f.severity, f.location.offset, f.subject, f.message) for f in vm.findings
        ],
        "unscannable": [(u.location.offset, u.reason) for u in vm.unscannable],
        "pickles": vm.pickles,
        "ops": vm.ops,
        "truncated": vm.truncated,
        "value": _shape(vm.last_value),
        "memo": sorted(vm.memo),
    }


def _text(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=n) | st.text(max_size=n).map(lambda s: s.encode("utf-8"))


_NAMES = st.sampled_from(
    [b"os\nsystem", b"collections\nOrderedDict", b"builtins\ngetattr", b"__builtin__\nset"]
)
_FIXED = st.sampled_from(
    [
        b"\x94",  # MEMOIZE
        b"(",  # MARK
        b"u",  # SETITEMS
        b"e",  # APPENDS
        b"\x90",  # ADDITEMS
        b"}",  # EMPTY_DICT
        b"]",  # EMPTY_LIST
        b")",  # EMPTY_TUPLE
        b"\x8f",  # EMPTY_SET
        b"N",  # NONE
        b"\x88",  # NEWTRUE
        b"\x89",  # NEWFALSE
        b"\x85",  # TUPLE1
        b"\x86",  # TUPLE2
        b"\x87",  # TUPLE3
        b"s",  # SETITEM
        b"a",  # APPEND
        b"0",  # POP
        b"1",  # POP_MARK
        b"2",  # DUP
        b"d",  # DICT
        b"l",  # LIST
        b"t",  # TUPLE
        b"\x91",  # FROZENSET
        b"R",  # REDUCE
        b"b",  # BUILD
        b"\x81",  # NEWOBJ
        b"\x93",  # STACK_GLOBAL
        b"o",  # OBJ
        b".",  # STOP
    ]
)
_OP = st.one_of(
    _FIXED,
    _FIXED,
    _FIXED,
    st.integers(0, 255).map(lambda n: b"K" + bytes([n])),  # BININT1
    st.integers(-(2**31), 2**31 - 1).map(lambda n: b"J" + struct.pack("<i", n)),  # BININT
    st.integers(0, 65535).map(lambda n: b"M" + struct.pack("<H", n)),  # BININT2
    st.floats(allow_nan=False).map(lambda f: b"G" + struct.pack(">d", f)),  # BINFLOAT
    _text(40).map(lambda b: b"\x8c" + bytes([len(b)]) + b),  # SHORT_BINUNICODE
    _text(40).map(lambda b: b"X" + struct.pack("<I", len(b)) + b),  # BINUNICODE
    _text(20).map(lambda b: b"C" + bytes([len(b)]) + b),  # SHORT_BINBYTES
    st.integers(0, 6).map(lambda n: b"q" + bytes([n])),  # BINPUT
    st.integers(0, 6).map(lambda n: b"h" + bytes([n])),  # BINGET
    st.integers(0, 6).map(lambda n: b"j" + struct.pack("<I", n)),  # LONG_BINGET
    st.integers(0, 6).map(lambda n: b"r" + struct.pack("<I", n)),  # LONG_BINPUT
    st.integers(0, 3).map(lambda n: b"\x96" + struct.pack("<Q", n) + b"\0" * n),  # BYTEARRAY8
    st.integers(0, 5).map(lambda n: b"\x80" + bytes([n])),  # PROTO
    st.integers(0, 64).map(lambda n: b"\x95" + struct.pack("<Q", n)),  # FRAME
    _NAMES.map(lambda n: b"c" + n + b"\n"),  # GLOBAL
    st.integers(1, 3).map(lambda n: b"\x82" + bytes([n])),  # EXT1
    # A run of one number opcode (matched in C by the quick pass after a MARK): BININT2 and
    # BININT runs of wide values, of byte values, or mixed.
    st.tuples(st.sampled_from([b"K", b"M", b"J", b"G"]), st.integers(14, 40)).map(
        lambda t: b"(" + (t[0] + b"\x07" * {b"K": 1, b"M": 2, b"J": 4, b"G": 8}[t[0]]) * t[1]
    ),
    st.lists(
        st.sampled_from([b"M\x07\x00", b"M\x00\x01", b"M\x4a\x00"]), min_size=14, max_size=30
    ).map(lambda items: b"(" + b"".join(items)),
    st.lists(
        st.sampled_from([b"J\x07\x00\x00\x00", b"J\x00\x00\x01\x00", b"J\x4a\x00\x00\x4a"]),
        min_size=14,
        max_size=30,
    ).map(lambda items: b"(" + b"".join(items)),
    st.binary(min_size=1, max_size=2),  # anything at all
)


def _stream(ops: list[bytes], proto: int, stop: bool) -> bytes:
    return bytes([0x80, proto]) + b"".join(ops) + (b"." if stop else b"")


_STREAMS = st.builds(
    _stream, st.lists(_OP, min_size=1, max_size=120), st.integers(0, 5), st.booleans()
)
_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(data=_STREAMS)
@example(data=b"\x80\x04}]Ns" + b"N" * 20 + b".")  # an unhashable key by SETITEM
@example(data=b"\x80\x04}(]NNNu" + b"N" * 20 + b".")  # ... and by SETITEMS
@example(data=b"\x80\x04\x8f(]\x90" + b"N" * 20 + b".")  # an unhashable set item
@example(data=b"\x80\x04\x96" + b"\0" * 8 + b"(" + b"K\x07" * 20 + b"e." + b"N" * 20)
@example(data=b"\x80\x04\x96" + b"\0" * 8 + b"(" + b"M\x07\x00" * 20 + b"e." + b"N" * 20)
@example(data=b"\x80\x04\x96" + b"\0" * 8 + b"(" + b"M\x07\x07" * 20 + b"e." + b"N" * 20)
@example(data=b"\x80\x04(" + b"J\x07\x07\x07\x07" * 20 + b"K\x01a." + b"N" * 20)  # on an int
def test_quick_pass_gives_the_exact_verdict(data: bytes) -> None:
    assert verdict(data, fast=True) == verdict(data, fast=False)


@_SETTINGS
@given(data=_STREAMS, step=st.integers(1, 80))
def test_quick_pass_gives_the_exact_verdict_across_buffer_edges(data: bytes, step: int) -> None:
    assert verdict(data, fast=True, step=step) == verdict(data, fast=False)


def test_the_differential_test_can_fail() -> None:
    """The verdict sees what a scan decides: a dangerous import is not a benign pickle's."""
    benign = b"\x80\x04}\x94(\x8c\x01a\x94K\x01u."
    payload = b"\x80\x04cos\nsystem\n\x8c\x02id\x85R."
    assert verdict(benign, fast=True) != verdict(payload, fast=True)
    assert verdict(payload, fast=False)["findings"][0][0] == "pickle.global"


def test_every_opcode_of_cpython_has_a_handler() -> None:
    """The table knows exactly the opcodes pickletools lists (protocols 0-5), each a method."""
    import pickletools

    from modelseal.scanning.unpickler.table import HANDLERS

    assert {op.code.encode("latin-1") for op in pickletools.opcodes} == set(HANDLERS)
    vm = PickleVM(Source(io.BytesIO(b"")), location=Location("x"), allowlist=_ALLOW)
    assert [i for i, h in enumerate(vm.table) if h is not None] == sorted(b[0] for b in HANDLERS)
