"""The restricted unpickler resolves only allow-listed globals."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import pytest

from modelseal.errors import ForbiddenGlobalError
from modelseal.loading import safe_load, safe_loads
from tests.scanning.scan_samples import SAMPLES, _os_system


def test_loads_ordinary_data() -> None:
    np = pytest.importorskip("numpy")
    value = {"a": np.arange(3), "od": collections.OrderedDict(x=1), "s": {1, 2}}
    for proto in range(6):
        out = safe_loads(pickle.dumps(value, protocol=proto))
        assert out["od"] == value["od"] and out["s"] == value["s"]
        assert (out["a"] == value["a"]).all()


@pytest.mark.parametrize(
    "sample",
    [s for s in SAMPLES if s.category in ("exec", "eval", "import", "network", "file", "runner")],
    ids=lambda s: s.kind,
)
def test_refuses_every_payload(sample: object, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    data = sample.build(canary)  # type: ignore[attr-defined]
    with pytest.raises((ForbiddenGlobalError, pickle.UnpicklingError)):
        safe_loads(data)
    assert not canary.exists()


def test_unknown_gadget_cannot_run_even_if_scanner_missed_it(tmp_path: Path) -> None:
    blob = b"\x80\x04\x8c\x0bsome_module\x94\x8c\x05Thing\x94\x93\x94)R."
    with pytest.raises(ForbiddenGlobalError) as info:
        safe_loads(blob)
    assert info.value.exit_code == 1 and "some_module.Thing" in info.value.message


def test_python2_names_are_mapped_before_the_check(tmp_path: Path) -> None:
    assert safe_loads(pickle.dumps({1, 2}, protocol=2)) == {1, 2}
    with pytest.raises(ForbiddenGlobalError, match=r"builtins\.eval"):
        safe_loads(b"c__builtin__\neval\n(S'1'\ntR.")


def test_explicit_allow(tmp_path: Path) -> None:
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(Path("x")))
    with pytest.raises(ForbiddenGlobalError):
        safe_load(path.open("rb"))
    with path.open("rb") as fh:
        assert safe_load(fh, allow=["pathlib.PosixPath"]) == Path("x")


def test_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(ForbiddenGlobalError):
        safe_loads(_os_system(tmp_path / "canary"))
    assert not (tmp_path / "canary").exists()
