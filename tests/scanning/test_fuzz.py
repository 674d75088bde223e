"""Hypothesis fuzzing: mutated pickles and archives never crash the scanner, never make it call
an unparsed file clean, and a file it calls clean makes the real unpickler ask for nothing
outside the allow-list."""

from __future__ import annotations

import contextlib
import io
import pickle
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.scanning.allowlist import Allowlist
from modelseal.scanning.engine import Options, scan_bytes
from tests.scanning.scan_samples import _os_system, make_zip, p4, sg, su, torch_zip

_ALLOW = Allowlist()
_SEEDS: list[bytes] = [
    pickle.dumps({"a": [1, 2.5, "x", b"y"], "b": (None, True)}, protocol=p) for p in range(6)
] + [
    _os_system(__import__("pathlib").Path("/nonexistent/canary")),
    p4(sg("collections", "OrderedDict") + b")R"),
    p4(sg("os", "system") + b"(" + su("true") + b"tR"),
    b"\x80\x02c__builtin__\nset\n]\x85R.",
]


class _Stub:
    """Stands in for every allow-listed global so nothing real is ever called."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


class _Recorder(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.asked: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        self.asked.append((module, name))
        return _Stub

    def persistent_load(self, pid: Any) -> Any:
        return _Stub()


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in ops:
        if not buf:
            buf.append(value)
            continue
        pos %= len(buf) + (kind == 1)
        if kind == 0:
            buf[pos % len(buf)] = value
        elif kind == 1:
            buf.insert(pos, value)
        elif kind == 2:
            del buf[pos % len(buf)]
        else:
            del buf[pos:]
    return bytes(buf)


_OPS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)
_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(seed=st.sampled_from(_SEEDS), ops=_OPS)
def test_mutated_pickles(seed: bytes, ops: list[tuple[int, int, int]]) -> None:
    data = _mutate(seed, ops)
    report = scan_bytes(data, Options())
    if report.status != "clean" or "pickle" not in report.formats:
        return
    recorder = _Recorder(data)
    # Malformed input may fail; what it asked find_class for is what counts.
    with contextlib.suppress(Exception):
        recorder.load()
    for module, name in recorder.asked:
        import _compat_pickle

        mapped = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
        )
        assert _ALLOW.allows(module, name) or _ALLOW.allows(*mapped), (module, name, data)


@_FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_never_crash(data: bytes) -> None:
    report = scan_bytes(data, Options())
    assert report.status in ("clean", "unsafe", "unscannable")


@settings(max_examples=150, deadline=None)
@given(seed=st.sampled_from(_SEEDS[:6]), cut=st.integers(0, 10_000))
def test_truncated_pickles_are_never_clean(seed: bytes, cut: int) -> None:
    data = seed[: cut % len(seed)]
    assert scan_bytes(data, Options()).status != "clean" or not data


_ARCHIVES = [
    torch_zip(pickle.dumps({"w": [1.0]})),
    torch_zip(_os_system(__import__("pathlib").Path("/nonexistent/canary"))),
    make_zip({"a.npy": b"\x93NUMPY\x01\x00v\x00" + b" " * 118}),
]


@_FUZZ
@given(seed=st.sampled_from(_ARCHIVES), ops=_OPS)
def test_mutated_archives(seed: bytes, ops: list[tuple[int, int, int]]) -> None:
    data = _mutate(seed, ops)
    report = scan_bytes(data, Options())
    assert report.status in ("clean", "unsafe", "unscannable")
    if report.status == "clean" and data[:4] == b"PK\x03\x04":
        import zipfile

        # A zip we call clean must be one Python's zipfile can at least list.
        zipfile.ZipFile(io.BytesIO(data)).infolist()


@pytest.mark.parametrize("protocol", range(6))
def test_every_seed_round_trips_clean(protocol: int) -> None:
    report = scan_bytes(pickle.dumps([1, {"k": "v"}], protocol=protocol), Options())
    assert report.status == "clean"


def _format_seeds() -> list[bytes]:
    from pathlib import Path

    from tests.scanning.format_samples import (
        FORMAT_SAMPLES,
        gguf_ok,
        onnx_model,
        saved_model,
        st_ok,
    )

    out = [gguf_ok(), st_ok(), onnx_model([("", "Relu")]), saved_model(["Const"])]
    out += [
        s.build(Path("/nonexistent/canary"))
        for s in FORMAT_SAMPLES
        if "h5" not in s.kind and "hdf5" not in s.kind
    ]
    return out


@_FUZZ
@given(seed=st.sampled_from(_format_seeds()), ops=_OPS)
def test_mutated_model_formats(seed: bytes, ops: list[tuple[int, int, int]]) -> None:
    report = scan_bytes(_mutate(seed, ops), Options())
    assert report.status in ("clean", "unsafe", "unscannable")


_DATA_OPS = [
    b"(",
    b"N",
    b"]",
    b"}",
    b"a",
    b"e",
    b"s",
    b"u",
    b"0",
    b"1",
    b"2",
    b"K\x01",
    b"\x94",
    b"h\x00",
    b"h\x01",
    b"q\x01",
    b")",
    b"t",
    b"\x85",
    b"\x86",
    b"\x87",
    b"l",
    b"d",
    b"\x8f",
    b"\x90",
    b"\x91",
    b"\x88",
    b"\x8c\x01a",
    b"X\x01\x00\x00\x00b",
    b"G" * 9,
    b"S'x'\n",
    b"Vab\n",
    b"I12\n",
    b"I01\n",
    b"L5L\n",
    b"F1.5\n",
    b"g0\n",
    b"p3\n",
    b"C\x02ab",
    b"B\x01\x00\x00\x00z",
    b"\x8a\x01\x05",
    b"\x8b\x01\x00\x00\x00\x07",
    b"T\x01\x00\x00\x00q",
    b"U\x01r",
    b"\x80\x02",
    b"\x80\x05",
    b"j\x00\x00\x00\x00",
    b"r\x02\x00\x00\x00",
    b"M\x01\x00",
    b"J\x01\x00\x00\x00",
    b"\x96\x01\x00\x00\x00\x00\x00\x00\x00x",
    b"\x8e\x01\x00\x00\x00\x00\x00\x00\x00y",
    b"\x8d\x01\x00\x00\x00\x00\x00\x00\x00w",
]


def _with_frame(body: list[bytes], where: int, length: int) -> bytes:
    """Insert a FRAME of ``length`` (maybe too short or too long) before ``body[where:]``."""
    where %= len(body) + 1
    return b"".join(body[:where]) + b"\x95" + struct.pack("<Q", length) + b"".join(body[where:])


@settings(max_examples=500, deadline=None)
@given(
    body=st.lists(st.sampled_from(_DATA_OPS), min_size=1, max_size=14),
    frame=st.none() | st.tuples(st.integers(0, 20), st.integers(0, 80)),
)
def test_stack_model_agrees_with_the_c_unpickler(
    body: list[bytes], frame: tuple[int, int] | None
) -> None:
    """Differential test on data-only opcodes (no globals, so running the C unpickler is safe),
    frames included: the scan is clean exactly when CPython's C unpickler accepts the pickle."""
    middle = b"".join(body) if frame is None else _with_frame(body, *frame)
    data = b"\x80\x04" + middle + b"."
    try:
        pickle.loads(data)
        accepted = True
    except Exception:
        accepted = False
    assert (scan_bytes(data, Options()).status == "clean") == accepted, data
