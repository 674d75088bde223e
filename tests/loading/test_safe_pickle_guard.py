"""The restricted unpickler never hands out a module, calls only allowed globals, and never
changes the running process: targeted gadgets, the scanner's malicious corpus, and a fuzzer
over opcode streams that checks process state and every call after each example."""

from __future__ import annotations

import collections
import contextlib
import importlib
import io
import os
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import ForbiddenGlobalError, UnsafePickleError
from modelseal.loading import safe_loads
from modelseal.loading.safe_pickle import RestrictedUnpickler
from modelseal.scanning.allowlist import Allowlist

# The scanner's corpus builders (imported by name: that helper module is not typed strictly).
_samples: Any = importlib.import_module("tests.scanning.scan_samples")
SAMPLES: list[Any] = _samples.SAMPLES
call: Callable[..., bytes] = _samples.call
p4: Callable[[bytes], bytes] = _samples.p4
sg: Callable[[str, str], bytes] = _samples.sg
su: Callable[[str], bytes] = _samples.su

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
linear_module = sys.modules["torch.nn.modules.linear"]

# ---- targeted gadgets (each one got through before the guard) ---------------------------


def _build_module_attr() -> bytes:
    """``torch.nn.modules.linear.F`` (a module) then BUILD rebinds ``F.linear``."""
    state = b"N}" + su("linear") + sg("builtins", "dict") + b"s\x86"  # (None, {linear: len})
    return p4(sg("torch.nn.modules.linear", "F") + state + b"b")


def _build_on_class() -> bytes:
    """An allowed class object itself, then BUILD with slot state sets a class attribute."""
    state = b"N}" + su("forward") + sg("builtins", "dict") + b"s\x86"
    return p4(sg("torch.nn.modules.linear", "Linear") + state + b"b")


def _build_on_shared_global() -> bytes:
    """BUILD on an allowed object that the whole process shares (``torch.float32``)."""
    return p4(sg("torch", "float32") + b"}" + su("x") + b"K\x01sb")


def _reduce_on_instance() -> bytes:
    """REDUCE on something no allowed global named: an object built along the way."""
    made = call(sg("collections", "OrderedDict"))
    return p4(made + b")R")


def _setitem_into_class() -> bytes:
    return p4(sg("collections", "OrderedDict") + su("k") + su("v") + b"s")


@pytest.mark.parametrize(
    "build",
    [_build_module_attr, _build_on_class, _build_on_shared_global, _reduce_on_instance],
    ids=["module-F", "build-on-class", "build-on-global", "reduce-on-instance"],
)
def test_gadgets_through_allowed_names_are_refused(build: Callable[[], bytes]) -> None:
    before = (torch.nn.functional.linear, linear_module.F, dict(vars(torch.nn.Linear)))
    with pytest.raises(UnsafePickleError) as err:
        safe_loads(build())
    assert err.value.exit_code == 1
    after = (torch.nn.functional.linear, linear_module.F, dict(vars(torch.nn.Linear)))
    assert before[0] is after[0] and before[1] is after[1] and before[2] == after[2]


def test_writing_into_a_class_is_refused() -> None:
    with pytest.raises(UnsafePickleError, match="SETITEM"):
        safe_loads(_setitem_into_class())


def test_a_pattern_allows_classes_defined_under_the_name_only() -> None:
    allow = Allowlist().extended(["torch.nn.modules.*"])
    # A function and a re-exported class, both reachable under the pattern.
    for name in ("F", "Tensor"):
        with pytest.raises(UnsafePickleError):
            safe_loads(p4(sg("torch.nn.modules.linear", name) + b"."), allowlist=allow)
    assert safe_loads(p4(sg("torch.nn.modules.linear", "Linear"))) is torch.nn.Linear
    # A dotted name is never matched by a pattern (it would walk attributes).
    with pytest.raises(ForbiddenGlobalError):
        safe_loads(p4(sg("torch.nn.modules.linear", "F.linear")), allowlist=allow)


def test_an_exact_name_can_never_be_a_module() -> None:
    allow = Allowlist().extended(["torch.nn.modules.linear.F", "os:path"])
    for module, name in (("torch.nn.modules.linear", "F"), ("os", "path")):
        with pytest.raises(UnsafePickleError, match="is a module"):
            safe_loads(p4(sg(module, name)), allowlist=allow)


def test_ordinary_objects_still_round_trip() -> None:
    value = {
        "a": np.arange(6).reshape(2, 3),
        "od": collections.OrderedDict(x=1),
        "dd": collections.defaultdict(list, {"k": [1]}),
        "s": {1, 2},
        "f": frozenset({3}),
        "dt": np.dtype("float32"),
        "sc": np.float64(2.5),
    }
    for proto in range(2, 6):
        out = safe_loads(pickle.dumps(value, protocol=proto))
        assert out["od"] == value["od"] and out["s"] == value["s"] and out["dd"] == value["dd"]
        assert (out["a"] == value["a"]).all() and out["dt"] == value["dt"]
        assert out["sc"] == value["sc"]


def test_plain_pickles_of_torch_tensors_are_refused() -> None:
    """``pickle.dumps(tensor)`` names torch.storage._load_from_bytes, which calls torch.load."""
    with pytest.raises(ForbiddenGlobalError, match="_load_from_bytes"):
        safe_loads(pickle.dumps(torch.arange(4.0)))


# ---- the scanner's malicious corpus ---------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.kind)
def test_no_sample_of_the_scanner_corpus_runs(sample: Any, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    data = sample.build(canary)
    with _watch() as record, contextlib.suppress(Exception):  # refusing in any way is fine
        safe_loads(data)
    assert not canary.exists()
    record.check()


# ---- the fuzzer -------------------------------------------------------------------------------

# Names a gadget would use: allowed ones, ones that reach modules or callables, and dangerous ones.
_MODULES = [
    "torch.nn.modules.linear",
    "torch.nn.functional",
    "torch",
    "torch._utils",
    "torch._tensor",
    "collections",
    "copyreg",
    "builtins",
    "os",
    "posix",
    "numpy",
    "numpy._core.multiarray",
    "numpy.testing",
    "sklearn.utils._bunch",
    "sklearn.tree._tree",
]
_NAMES = [
    "F",
    "Linear",
    "Module",
    "linear",
    "forward",
    "float32",
    "OrderedDict",
    "defaultdict",
    "_reconstructor",
    "__newobj__",
    "object",
    "dict",
    "list",
    "set",
    "getattr",
    "setattr",
    "eval",
    "system",
    "ndarray",
    "dtype",
    "_reconstruct",
    "_rebuild_from_type_v2",
    "_rebuild_tensor_v2",
    "Bunch",
    "Tree",
    "runstring",
    "__setstate__",
    "__dict__",
    "F.linear",
    "Linear.forward",
]
_STRINGS = st.sampled_from(_MODULES + _NAMES + ["x", "weight"])
_SIMPLE_OPS = [
    pickle.STACK_GLOBAL,
    pickle.REDUCE,
    pickle.BUILD,
    pickle.NEWOBJ,
    pickle.NEWOBJ_EX,
    pickle.OBJ,
    pickle.MARK,
    pickle.TUPLE,
    pickle.EMPTY_TUPLE,
    pickle.TUPLE1,
    pickle.TUPLE2,
    pickle.TUPLE3,
    pickle.EMPTY_DICT,
    pickle.EMPTY_LIST,
    pickle.EMPTY_SET,
    pickle.DICT,
    pickle.LIST,
    pickle.SETITEM,
    pickle.SETITEMS,
    pickle.APPEND,
    pickle.APPENDS,
    pickle.ADDITEMS,
    pickle.DUP,
    pickle.POP,
    pickle.MEMOIZE,
    pickle.NONE,
    pickle.NEWTRUE,
    b"K\x01",
    b"h\x00",
    b"h\x01",
    b"h\x02",
]


# Pairs that reach something: an allowed class, a module behind an allowed-looking name, a
# process-wide singleton, a dangerous callable.
_PAIRS = [
    ("torch.nn.modules.linear", "F"),
    ("torch.nn.modules.linear", "Linear"),
    ("torch.nn.modules.linear", "Tensor"),
    ("torch.nn.modules.module", "Module"),
    ("torch", "float32"),
    ("torch", "FloatStorage"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("builtins", "object"),
    ("builtins", "dict"),
    ("builtins", "getattr"),
    ("os", "system"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("sklearn.utils._bunch", "Bunch"),
    ("sklearn.tree._tree", "Tree"),
    ("numpy.testing", "runstring"),
]
_VALUES = [b"N", b"K\x01", b")", b"}", b"]"]


def _gadget(pair: tuple[str, str], kind: str, attr: str, value: bytes) -> bytes:
    """One step a gadget takes with an object a global names."""
    head = sg(*pair)
    steps = {
        "build-slots": b"N}" + su(attr) + value + b"s\x86b",
        "build-dict": b"}" + su(attr) + value + b"sb",
        "reduce": value + b"\x85R",
        "reduce-empty": b")R",
        "newobj": b")\x81",
        "setitem": su(attr) + value + b"s",
        "append": value + b"a",
        "made-then-build": b")R}" + su(attr) + value + b"sb",
        "made-then-call": b")R)R",
    }
    return head + steps[kind]


_GADGET_KINDS = [
    "build-slots",
    "build-dict",
    "reduce",
    "reduce-empty",
    "newobj",
    "setitem",
    "append",
    "made-then-build",
    "made-then-call",
]


def _instruction() -> st.SearchStrategy[bytes]:
    string = _STRINGS.map(su)
    random_pair = st.tuples(st.sampled_from(_MODULES), st.sampled_from(_NAMES))
    pair = st.one_of(st.sampled_from(_PAIRS), random_pair)
    value = st.one_of(st.sampled_from(_VALUES), string, pair.map(lambda p: sg(*p)))
    gadget = st.builds(_gadget, pair, st.sampled_from(_GADGET_KINDS), _STRINGS, value)
    old_glob = random_pair.map(lambda p: b"c" + p[0].encode() + b"\n" + p[1].encode() + b"\n")
    inst = random_pair.map(lambda p: b"i" + p[0].encode() + b"\n" + p[1].encode() + b"\n")
    return st.one_of(gadget, st.sampled_from(_SIMPLE_OPS), string, old_glob, inst)


_stream = st.lists(_instruction(), min_size=1, max_size=12).map(
    lambda ops: b"\x80\x04" + b"".join(ops) + b"."
)


def _snapshot() -> dict[str, Any]:
    """Identities of everything a gadget in the vocabulary could rebind."""
    import builtins
    import copyreg

    import sklearn.tree._tree
    import sklearn.utils._bunch

    watched: dict[str, Any] = {
        "modules": frozenset(sys.modules),
        "os.system": os.system,
        "F": linear_module.F,
    }
    spaces: list[tuple[str, Any]] = [
        ("torch.nn.functional", torch.nn.functional),
        ("linear", linear_module),
        ("Linear", torch.nn.Linear),
        ("Module", torch.nn.Module),
        ("builtins", builtins),
        ("collections", collections),
        ("OrderedDict", collections.OrderedDict),
        ("copyreg", copyreg),
        ("os", os),
        ("numpy", np),
        ("Bunch", sklearn.utils._bunch.Bunch),
        ("torch", torch),
    ]
    for label, space in spaces:
        watched[label] = {k: id(v) for k, v in vars(space).items()}
    watched["float32"] = repr(torch.float32)
    return watched


_FORBIDDEN_CALLS = {id(f) for f in (eval, exec, compile, os.system, os.popen, open, __import__)}
# Modules whose Python code a pickle in this vocabulary must never enter.
_NEVER_ENTERED = ("os", "subprocess", "runpy", "code", "pdb", "pty", "shutil", "numpy.testing")


class _CallRecord:
    """Every call of a code-running builtin or into a forbidden module, seen by a profiler."""

    def __init__(self) -> None:
        self.forbidden: list[str] = []

    def hook(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "c_call" and id(arg) in _FORBIDDEN_CALLS:
            self.forbidden.append(str(getattr(arg, "__name__", arg)))
        elif event == "call":
            module = str(frame.f_globals.get("__name__", ""))
            if any(module == m or module.startswith(m + ".") for m in _NEVER_ENTERED):
                self.forbidden.append(f"{module}.{frame.f_code.co_qualname}")

    def check(self) -> None:
        assert not self.forbidden, f"called outside the allow-list: {self.forbidden}"


@contextlib.contextmanager
def _watch() -> Iterator[_CallRecord]:
    record = _CallRecord()
    old = sys.getprofile()
    sys.setprofile(record.hook)
    try:
        yield record
    finally:
        sys.setprofile(old)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream)
def test_fuzzed_streams_never_call_or_change_anything_outside_the_allow_list(data: bytes) -> None:
    before = _snapshot()
    # Refusing or failing is fine; running is not.
    with _watch() as record, contextlib.suppress(Exception):
        RestrictedUnpickler(io.BytesIO(data)).load()
    record.check()
    after = _snapshot()
    assert after["modules"] <= before["modules"], "the pickle imported a module"
    assert after == before
