"""Differential test: the globals, calls and errors the scanner's unpickler model predicts are
what CPython's C unpickler really does, through ``pickle.loads``-style reading and through
``pickle.load(file)`` (peek-less file: FRAME lengths that diverge from the opcodes change what is
read), over hypothesis-generated opcode streams with frames, memo, marks, every import and call
opcode, extensions, persistent ids, several pickles and junk after STOP.

The real unpickler runs with an inert ``find_class`` (``unpickler_trace``): nothing is imported.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.scanning.allowlist import Allowlist
from modelseal.scanning.engine import Options, scan_bytes
from modelseal.scanning.pickle_vm import PickleVM
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.rules import PICKLE_LIMIT, Rule
from modelseal.scanning.source import Source
from modelseal.scanning.unpickler.framing import contiguous_view, file_view
from modelseal.scanning.unpickler.values import GlobalRef, Limits, Made, Opaque
from tests.scanning.unpickler_trace import EXTENSIONS, Event, trace


class Predictor(PickleVM):
    """The scanner's VM, recording the events it predicts up to its first predicted error."""

    def __init__(self, data: bytes, *, single: bool) -> None:
        limits = Limits()
        # At the nesting limit: no salvage after errors, no nested loads (as in the trace).
        super().__init__(
            Source(io.BytesIO(data), size=len(data)),
            location=Location("<differential>"),
            allowlist=Allowlist(),
            limits=limits,
            depth=limits.max_nesting,
            single=single,
        )
        self.ascii_strings = True  # pickle.load's default encoding
        self.events: list[Event] = []
        self.closed = False

    def rec(self, event: Event) -> None:
        if not self.closed:
            self.events.append(event)

    def error(self, reason: str) -> None:
        if not self.quiet:
            self.rec(("error",))
            self.closed = True
        super().error(reason)

    def fail(self, reason: str, offset: int) -> None:
        self.rec(("error",))
        self.closed = True
        super().fail(reason, offset)

    def find(self, rule: Rule, severity: Severity, subject: str, message: str, offset: int) -> None:
        if rule is PICKLE_LIMIT:
            # The scan stops at its memory budget; whether the real unpickler gets that memory
            # (a memo grown to twice a huge index) depends on the machine, not on the bytes.
            self.rec(("dynamic",))
            self.closed = True
        super().find(rule, severity, subject, message, offset)

    def on_global(self, module: str, name: str, effective: tuple[str, str], offset: int) -> bool:
        self.rec(("global", module, name))
        return super().on_global(module, name, effective, offset)

    def on_dynamic_global(self, offset: int) -> None:
        self.rec(("dynamic",))
        super().on_dynamic_global(offset)

    def on_extension(self, code: int) -> None:
        self.rec(("ext", str(code)))
        super().on_extension(code)

    def persistent(self, pid: Any) -> None:
        self.rec(("persid",))
        super().persistent(pid)

    def called(self, func: Any, args: Any, how: str) -> Made:
        if isinstance(args, Opaque) and args.what == "persistent":
            # Whether the loader's persistent_load returns an argument tuple (the trace's
            # stand-in does not) is not in the bytes.
            self.rec(("dynamic",))
        made = super().called(func, args, how)
        if isinstance(func, GlobalRef):
            if func.module == "copyreg._extension_registry":
                label = "{}.{}".format(*EXTENSIONS.get(int(func.name), ("?", "?")))
            else:
                label = f"{func.module}.{func.name}"
        elif isinstance(func, Opaque):
            label = f"<{func.what}>"
        else:
            label = "<made>"
        self.rec(("call", label))
        return made

    def run_one(self) -> None:
        super().run_one()
        self.rec(("stop",))


def predict(data: bytes, mode: str) -> list[Event]:
    """The events the scanner's model predicts for ``mode`` (see ``unpickler_trace.trace``)."""
    vm = Predictor(file_view(data) if mode == "file" else data, single=mode == "loads")
    vm.run()
    return _resolve_extensions(vm.events)


def _resolve_extensions(events: list[Event]) -> list[Event]:
    """EXT codes name what the loading process registered: apply the test's registry and
    copyreg's per-process cache (a cached code imports nothing)."""
    out: list[Event] = []
    cached: set[int] = set()
    for event in events:
        if event[0] != "ext":
            out.append(event)
            continue
        code = int(event[1])
        if code <= 0 or code not in EXTENSIONS:
            out.append(("error",))
            break
        if code not in cached:
            cached.add(code)
            out.append(("global", *EXTENSIONS[code]))
    return out


def _comparable(events: list[Event]) -> list[Event]:
    """Up to the first error (the unpickler stops there) or the first point the model cannot
    know (a global whose name is computed at load time)."""
    out: list[Event] = []
    for event in events:
        if event[0] == "dynamic":
            return out
        out.append(event)
        if event[0] == "error":
            return out
    return out


def _same(predicted: list[Event], actual: list[Event]) -> bool:
    """The prediction matches: event for event up to the first error, or up to the first point
    the model cannot know (then the real trace must agree that far)."""
    p = _comparable(predicted)
    if any(e[0] == "dynamic" for e in predicted[: len(p) + 1]):
        return _comparable(actual)[: len(p)] == p
    return p == _comparable(actual)


def test_the_comparison_can_fail() -> None:
    """The check sees a missed import, a missed call, a missed or an invented error."""
    real = [("global", "os", "system"), ("call", "os.system"), ("stop",)]
    assert _same(real, real)
    assert not _same([("stop",)], real)
    assert not _same([("global", "os", "system"), ("stop",)], real)
    assert not _same([("global", "os", "system"), ("error",)], real)
    assert not _same(real, [("global", "os", "system"), ("error",)])
    data = b"\x80\x04cos\nsystem\n\x8c\x02id\x85R."
    assert predict(data, "loads") == trace(data, "loads") == real


# ---- opcode stream generators ------------------------------------------------------------

_NAMES = [
    ("os", "system"),
    ("builtins", "eval"),
    ("collections", "OrderedDict"),
    ("a.b", "c.d"),
    ("__builtin__", "set"),
    ("copy_reg", "_reconstructor"),
    ("bad module", "x"),
    ("", "x"),
    ("torch._utils", "_rebuild_tensor_v2"),
]


def _u(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _opcode_tokens() -> st.SearchStrategy[bytes]:
    names = st.sampled_from(_NAMES)
    small = st.integers(0, 255)
    text = st.text(alphabet="ab\u00e9'\\ ", max_size=4)
    tokens = [
        # data
        st.sampled_from(
            [
                bytes([c])
                for c in b"N\x88\x89)]}\x8f(tldaesu\x90\x91\x85\x86\x87012\x94R\x81\x92obQ\x93."
            ]
        ),
        small.map(lambda n: b"K" + bytes([n])),
        st.integers(-(2**31), 2**31 - 1).map(lambda n: b"J" + struct.pack("<i", n)),
        st.integers(-5, 300).map(lambda n: b"I" + str(n).encode() + b"\n"),
        st.sampled_from(
            [b"I01\n", b"I00\n", b"Ix\n", b"L5L\n", b"F1.5\n", b"Fz\n", b"G" + bytes(8)]
        ),
        text.map(lambda t: b"S" + repr(t).encode() + b"\n"),
        text.map(lambda t: b"V" + t.encode("raw_unicode_escape") + b"\n"),
        text.map(_u),
        st.binary(max_size=3).map(lambda b: b"C" + bytes([len(b)]) + b),
        st.binary(max_size=3).map(lambda b: b"B" + struct.pack("<I", len(b)) + b),
        st.binary(max_size=3).map(lambda b: b"\x96" + struct.pack("<Q", len(b)) + b),
        st.sampled_from([b"\x8c\x02\xff\xfe", b"X\x01\x00\x00\x00a", b"U\x01z"]),
        # memo
        small.map(lambda n: b"q" + bytes([n % 4])),
        small.map(lambda n: b"h" + bytes([n % 4])),
        small.map(lambda n: b"p" + str(n % 4).encode() + b"\n"),
        small.map(lambda n: b"g" + str(n % 4).encode() + b"\n"),
        small.map(lambda n: b"r" + struct.pack("<I", n % 4)),
        small.map(lambda n: b"j" + struct.pack("<I", n % 4)),
        # globals and calls
        names.map(lambda mn: b"c" + mn[0].encode() + b"\n" + mn[1].encode() + b"\n"),
        names.map(lambda mn: _u(mn[0]) + _u(mn[1]) + b"\x93"),
        names.map(lambda mn: b"i" + mn[0].encode() + b"\n" + mn[1].encode() + b"\n"),
        st.sampled_from([b"\x82\x01", b"\x82\x02", b"\x82\x00", b"\x83\x2c\x01", b"\x82\x07"]),
        st.sampled_from([b"Pabc\n", b"P\xff\n", b"P\n"]),
        # framing and protocol
        st.integers(0, 24).map(lambda n: b"\x95" + struct.pack("<Q", n)),
        st.sampled_from([b"\x80\x02", b"\x80\x04", b"\x80\x07"]),
        st.binary(min_size=1, max_size=2),  # junk
    ]
    return st.one_of(tokens)


_STREAMS = st.lists(_opcode_tokens(), min_size=1, max_size=24).map(b"".join)
_MULTI = st.lists(_STREAMS.map(lambda body: b"\x80\x04" + body + b"."), min_size=1, max_size=3)


def _check(data: bytes, mode: str) -> None:
    predicted = predict(data, mode)
    actual = trace(data, mode)
    assert _same(predicted, actual), (mode, data, predicted, actual)


_SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(body=_STREAMS)
def test_loads_events_match_the_c_unpickler(body: bytes) -> None:
    _check(b"\x80\x04" + body + b".", "loads")


@_SETTINGS
@given(pickles=_MULTI, junk=st.binary(max_size=3))
def test_file_reader_events_match_the_c_unpickler(pickles: list[bytes], junk: bytes) -> None:
    data = b"".join(pickles) + junk
    _check(data, "file")
    _check(data, "buffered")


@_SETTINGS
@given(body=_STREAMS, cut=st.integers(0, 30), length=st.integers(0, 40))
def test_diverging_frames_match_both_readers(body: bytes, cut: int, length: int) -> None:
    """A FRAME whose length ends inside an opcode or before STOP: both readers, as predicted."""
    payload = b"\x80\x04" + body + b"."
    cut %= len(payload) + 1
    data = payload[:cut] + b"\x95" + struct.pack("<Q", length) + payload[cut:] + b"N."
    for mode in ("loads", "file", "buffered"):
        _check(data, mode)


_TRICKY = {
    "setitem-list-index": b"\x80\x04](K\x01eK\x00Ns.",
    "setitem-list-out-of-range": b"\x80\x04](K\x01eK\x05Ns.",
    "setitems-list": b"\x80\x04](K\x01e(K\x00Nu.",
    "setitem-bytearray": b"\x80\x04\x96\x02" + bytes(7) + b"abK\x01K\x05s.",
    "setitem-bytearray-non-byte": b"\x80\x04\x96\x02" + bytes(7) + b"abK\x01Ns.",
    "append-bytearray-non-byte": b"\x80\x04\x96" + bytes(8) + b"Na.",
    "additems-on-list": b"\x80\x04](K\x01\x90.",
    "dict-key-from-a-call": b"\x80\x04}cos\nsystem\n)RK\x01s.",
    "reduce-on-a-list": b"\x80\x04])R.",
    "unhashable-frozenset": b"\x80\x04(]\x91.",
    "stack-global-of-ints": b"\x80\x04K\x01K\x02\x93.",
    "build-list-with-dict": b"\x80\x04]}b.",
    "inst-non-ascii": b"\x80\x04(i\xc3\xa9\nx\n.",
    "inst-without-mark": b"\x80\x04ios\nsystem\n.",
    "extension-cached": b"\x80\x04\x82\x01\x82\x01\x86.",
    "newobj-ex-kwargs-not-dict": b"\x80\x04cos\nsystem\n)N\x92.",
    "persistent-id-called": b"\x80\x04Pabc\n)R.",
    "readonly-buffer-of-int": b"\x80\x04K\x01\x98.",
    "next-buffer": b"\x80\x05\x97.",
    "string-non-ascii": b"S'\xc3\xa9'\n.",
}


@pytest.mark.parametrize("name", sorted(_TRICKY))
def test_tricky_cases_match_the_c_unpickler(name: str) -> None:
    for mode in ("loads", "file", "buffered"):
        _check(_TRICKY[name], mode)


def test_frame_divergence_is_a_finding_and_both_views_are_scanned() -> None:
    # Read contiguously (pickle.loads, or load on a peeking file) the second pickle is a
    # harmless string whose bytes are a call of os.system; pickle.load on a peek-less file
    # starts the second pickle where the first one's frame ends: inside that string.
    payload = b"\x80\x02cos\nsystem\n(S'id'\ntR."
    second = b"X" + struct.pack("<I", len(payload)) + payload + b"."
    data = b"\x80\x04\x95" + struct.pack("<Q", 2 + 5) + b"N." + second
    assert ("global", "os", "system") in trace(data, "file")
    assert ("global", "os", "system") not in trace(data, "buffered")
    assert file_view(data) != contiguous_view(data)
    report = scan_bytes(data, Options())
    rules = {(f.rule, f.subject) for f in report.findings}
    assert ("pickle.frame-divergence", "FRAME") in rules
    assert ("pickle.global", "os.system") in rules
    assert report.status == "unsafe"


def test_well_formed_frames_never_diverge() -> None:
    import pickle

    value = {"w": [list(range(300)), "x" * 70_000, b"y" * 70_000], "n": None}
    for protocol in (4, 5):
        data = pickle.dumps(value, protocol=protocol)
        assert file_view(data) == contiguous_view(data)
        report = scan_bytes(data, Options())
        assert report.status == "clean", report.to_dict()
