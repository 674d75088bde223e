"""The pytest plugin as a user meets it: a test file of theirs, run by pytest, with the
fixtures modelseal installs."""

from __future__ import annotations

import pytest

USER_TESTS = """
import json
from pathlib import Path

import numpy as np
import pytest

import modelseal
from modelseal.errors import IntegrityError


def _model(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(3, 4))
    return path


def test_sign_and_load_verified(tmp_path, modelseal_sign, modelseal_keys, verified_model):
    model = _model(tmp_path)
    signature = modelseal_sign(model)
    assert json.loads(signature.read_text())["mediaType"].startswith("application/vnd.dev.sigstore")
    weights = verified_model(model, signature, modelseal_keys.public)
    assert weights.shape == (3, 4) and float(weights.sum()) == 66.0


def test_a_tampered_model_does_not_load(tmp_path, modelseal_sign, modelseal_keys, verified_model):
    model = _model(tmp_path)
    signature = modelseal_sign(model)
    data = bytearray(model.read_bytes())
    data[-1] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        verified_model(model, signature, modelseal_keys.public)


def test_registry_round_trip(tmp_path, modelseal_registry, modelseal_sign, modelseal_keys):
    from modelseal.registry.versions import ListVersions

    model = _model(tmp_path)
    signature = modelseal_sign(model)
    pushed = modelseal_registry.push(model, name="demo", signature=signature,
                                     public_key=modelseal_keys.public)
    assert pushed.version == 1
    assert [v.version for v in modelseal_registry.call(ListVersions(name="demo"))] == [1]
    out = modelseal_registry.pull("demo:1", tmp_path / "pulled.npy")
    assert out.root_digest == pushed.root_digest
    assert (tmp_path / "pulled.npy").read_bytes() == model.read_bytes()


def test_keys_are_private(modelseal_keys):
    assert modelseal_keys.private.stat().st_mode & 0o077 == 0
"""


def test_users_get_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)


def test_the_plugin_is_registered_by_entry_point() -> None:
    from importlib.metadata import entry_points

    found = {e.name: e.value for e in entry_points(group="pytest11")}
    assert found.get("modelseal") == "modelseal.testing.pytest_plugin"
