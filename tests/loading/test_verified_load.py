"""Verified loading: only signed, clean bytes reach the framework, and they are the bytes that
were hashed; every refusal raises its own exception and returns nothing."""

from __future__ import annotations

import json
import os
import pickle
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

import modelseal
import modelseal.loading.verified as verified
from modelseal.errors import (
    IntegrityError,
    ModelChangedError,
    Reason,
    UnsafeModelError,
    UsageError,
)
from modelseal.hashing.engine import Buffer
from modelseal.loading.parse import parse_buffers
from modelseal.scanning.allowlist import Allowlist

T = TypeVar("T")

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

Run = Callable[..., tuple[int, str, str]]


def _sign(path: Path, key_pair: tuple[Path, Path], **kwargs: Any) -> Path:
    sig = path.parent / f"{path.name}.sig"
    modelseal.sign(path, private_key=key_pair[0], signature=sig, **kwargs)
    return sig


def _state() -> dict[str, Any]:
    torch.manual_seed(1)
    state: dict[str, Any] = torch.nn.Sequential(
        torch.nn.Linear(6, 4), torch.nn.Linear(4, 2)
    ).state_dict()
    return state


def _make(kind: str, d: Path) -> Path:
    state = _state()
    if kind == "safetensors":
        path = d / "model.safetensors"
        safetensors_torch.save_file(state, path)
    elif kind == "torch":
        path = d / "model.pt"
        torch.save(state, path)
    elif kind == "npz":
        path = d / "model.npz"
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    elif kind == "onnx":
        import onnx
        from onnx import helper, numpy_helper

        inits = [numpy_helper.from_array(v.numpy(), name=k) for k, v in state.items()]
        x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 6])
        y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
        node = helper.make_node("Gemm", ["x", "0.weight", "0.bias"], ["y"], transB=1)
        graph = helper.make_graph([node], "g", [x], [y], initializer=inits)
        path = d / "model.onnx"
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, path)
    elif kind == "pickle":
        path = d / "model.pkl"
        path.write_bytes(pickle.dumps({"weights": [1.0, 2.0, 3.0], "name": "tiny"}))
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("kind", ["safetensors", "torch", "npz", "onnx", "pickle"])
def test_each_framework_loads_verified_bytes(
    tmp_path: Path, key_pair: tuple[Path, Path], kind: str
) -> None:
    path = _make(kind, tmp_path)
    sig = _sign(path, key_pair)
    loaded = verified.load_verified(path, signature=sig, public_key=key_pair[1])
    obj = loaded.obj
    state = _state()
    if kind == "safetensors":
        assert loaded.framework == "safetensors" and loaded.parameters == 6 * 4 + 4 + 4 * 2 + 2
        np.testing.assert_array_equal(obj["0.weight"], state["0.weight"].numpy())
        as_torch = modelseal.load(path, signature=sig, public_key=key_pair[1], tensor_type="torch")
        assert torch.equal(as_torch["1.bias"], state["1.bias"])
    elif kind == "torch":
        assert loaded.framework == "torch"
        assert all(torch.equal(obj[k], v) for k, v in state.items())
    elif kind == "npz":
        np.testing.assert_array_equal(obj["1.weight"], state["1.weight"].numpy())
    elif kind == "onnx":
        assert loaded.framework == "onnx" and loaded.tensors == 4
        if type(obj).__name__ == "InferenceSession":
            out = obj.run(None, {"x": np.ones((1, 6), dtype=np.float32)})[0]
            expected = torch.ones(1, 6) @ state["0.weight"].T + state["0.bias"]
            np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5)
    else:
        assert obj == {"weights": [1.0, 2.0, 3.0], "name": "tiny"}


@pytest.mark.parametrize("memory", ["copy", "map"])
@pytest.mark.parametrize("kind", ["safetensors", "torch", "npz", "onnx", "pickle"])
def test_one_changed_byte_is_refused(
    tmp_path: Path, key_pair: tuple[Path, Path], kind: str, memory: str
) -> None:
    path = _make(kind, tmp_path)
    sig = _sign(path, key_pair)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as err:
        modelseal.load(path, signature=sig, public_key=key_pair[1], memory=memory)
    assert [r.code for r in err.value.reasons] == ["modified"]


def test_directory_with_unsigned_extra_file(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    model = tmp_path / "model"
    model.mkdir()
    state = _state()
    names = sorted(state)
    safetensors_torch.save_file({k: state[k] for k in names[:2]}, model / "model-1.safetensors")
    safetensors_torch.save_file({k: state[k] for k in names[2:]}, model / "model-2.safetensors")
    (model / "config.json").write_text(json.dumps({"layers": 2}))
    sig = _sign(model, key_pair)
    loaded = verified.load_verified(model, signature=sig, public_key=key_pair[1])
    assert loaded.framework == "directory" and sorted(loaded.obj) == names
    (model / "extra.safetensors").write_bytes((model / "model-1.safetensors").read_bytes())
    with pytest.raises(IntegrityError) as err:
        modelseal.load(model, signature=sig, public_key=key_pair[1])
    assert [(r.code, r.path) for r in err.value.reasons] == [("extra", "extra.safetensors")]
    allowed = verified.load_verified(
        model, signature=sig, public_key=key_pair[1], allow_unsigned_files=True
    )
    assert "extra.safetensors" not in allowed.files and sorted(allowed.obj) == names


class _Canary:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def test_signed_malicious_pickle_is_refused_and_never_runs(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"w": [1.0], "x": _Canary(str(canary))}))
    sig = _sign(path, key_pair)  # a valid signature does not make content safe
    with pytest.raises(UnsafeModelError) as err:
        modelseal.load(path, signature=sig, public_key=key_pair[1])
    assert err.value.reasons[0].code == "unsafe-content"
    assert not canary.exists()


def test_signed_malicious_torch_checkpoint_is_refused(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    import zipfile

    canary = tmp_path / "canary"
    good = _make("torch", tmp_path)
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = pickle.dumps({"w": _Canary(str(canary))}, protocol=2)
            dst.writestr(info, data)
    sig = _sign(bad, key_pair)
    with pytest.raises(UnsafeModelError):
        modelseal.load(bad, signature=sig, public_key=key_pair[1])
    assert not canary.exists()


def spy_on_parse(monkeypatch: pytest.MonkeyPatch, record: Callable[[Buffer], T]) -> list[T]:
    """``record`` of every buffer handed to the parser, in order, from now on."""
    seen: list[T] = []
    real_parse = parse_buffers

    def spy(
        root: Path,
        buffers: Mapping[str, Buffer],
        framework: str,
        tensor_type: str | None,
        allow: Allowlist,
    ) -> tuple[Any, str, int, int]:
        seen.extend(record(b) for b in buffers.values())
        return real_parse(root, buffers, framework, tensor_type, allow)

    monkeypatch.setattr(verified, "_parse", spy)
    return seen


def test_swap_after_verification_is_refused_and_never_loaded(
    tmp_path: Path, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = tmp_path / "canary"
    path = _make("pickle", tmp_path)
    sig = _sign(path, key_pair)
    parsed = spy_on_parse(monkeypatch, bytes)

    def swap(_: Path) -> None:
        replacement = tmp_path / "swap.pkl"
        replacement.write_bytes(pickle.dumps(_Canary(str(canary))))
        os.replace(replacement, path)

    monkeypatch.setattr(verified, "_after_verification", swap)
    with pytest.raises(ModelChangedError) as err:
        modelseal.load(path, signature=sig, public_key=key_pair[1])
    assert [r.path for r in err.value.reasons] == ["."]
    assert not canary.exists()
    assert parsed == [pickle.dumps({"weights": [1.0, 2.0, 3.0], "name": "tiny"})]


def test_verified_model_detects_a_swap_without_reloading(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    path = _make("safetensors", tmp_path)
    sig = _sign(path, key_pair)
    seen: list[list[Reason]] = []
    fired = threading.Event()

    def on_change(reasons: list[Reason]) -> None:
        seen.append(reasons)
        fired.set()

    with modelseal.VerifiedModel(path, signature=sig, public_key=key_pair[1]) as vm:
        assert vm.check() == []
        vm.watch(0.05, on_change)
        before = dict(vm.model)
        safetensors_torch.save_file({k: v * 2 for k, v in _state().items()}, path)
        assert fired.wait(10)
        assert [r.code for r in vm.check()] == ["modified"]
        assert vm.model.keys() == before.keys()
    assert seen and seen[0][0].code == "modified"


def test_usage_errors(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    path = _make("safetensors", tmp_path)
    sig = _sign(path, key_pair)
    with pytest.raises(UsageError, match="unknown framework"):
        modelseal.load(path, signature=sig, public_key=key_pair[1], framework="tf")
    with pytest.raises(UsageError, match="not torch"):
        modelseal.load(path, signature=sig, public_key=key_pair[1], framework="torch")


def test_load_check_cli(tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Run) -> None:
    path = _make("torch", tmp_path)
    sig = _sign(path, key_pair)
    code, out, err = run_cli(
        "load-check", path, "--signature", sig, "--public-key", key_pair[1], "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["framework"] == "torch" and report["tensors"] == 4 and report["parameters"] == 38
    path.write_bytes(path.read_bytes() + b"x")
    code, out, err = run_cli("load-check", path, "--signature", sig, "--public-key", key_pair[1])
    assert code == 1 and err.strip().splitlines()[-1].startswith("modelseal: error: ")
    code, _, err = run_cli("load-check", path, "--signature", sig)
    assert code == 2 and "--public-key" in err


@pytest.mark.parametrize("container", ["pickle", "joblib", "joblib-compressed"])
def test_scikit_learn_models_load_with_the_built_in_allow_list(
    tmp_path: Path, key_pair: tuple[Path, Path], container: str
) -> None:
    joblib = pytest.importorskip("joblib")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.random((30, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    path = tmp_path / "model.bin"
    if container == "pickle":
        path.write_bytes(pickle.dumps(model))
    else:
        joblib.dump(model, path, compress=3 if container == "joblib-compressed" else 0)
    sig = _sign(path, key_pair)
    loaded = verified.load_verified(path, signature=sig, public_key=key_pair[1])
    assert loaded.framework == ("pickle" if container == "pickle" else "joblib")
    np.testing.assert_array_equal(loaded.obj.predict(x), model.predict(x))


def _native_model(kind: str, d: Path) -> tuple[Path, Callable[[Any], Any], Any]:
    rng = np.random.default_rng(0)
    x = rng.random((40, 3)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(int)
    if kind == "xgboost":
        xgb = pytest.importorskip("xgboost")
        booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=y), 3)
        path = d / "model.ubj"
        booster.save_model(path)
        return path, lambda m: m.predict(xgb.DMatrix(x)), booster.predict(xgb.DMatrix(x))
    if kind == "lightgbm":
        lgb = pytest.importorskip("lightgbm")
        booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, label=y), 3)
        path = d / "model.txt"
        booster.save_model(path)
        return path, lambda m: m.predict(x), booster.predict(x)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = d / "model.keras"
    model.save(path)
    return (
        path,
        lambda m: np.asarray(m.predict(x, verbose=0)),
        np.asarray(model.predict(x, verbose=0)),
    )


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm", "keras"])
def test_native_formats_load_from_verified_bytes(
    tmp_path: Path, key_pair: tuple[Path, Path], kind: str
) -> None:
    path, predict, expected = _native_model(kind, tmp_path)
    sig = _sign(path, key_pair)
    loaded = verified.load_verified(path, signature=sig, public_key=key_pair[1])
    assert loaded.framework == kind
    np.testing.assert_allclose(predict(loaded.obj), expected, rtol=1e-6)
    data = bytearray(path.read_bytes())
    data[-10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        modelseal.load(path, signature=sig, public_key=key_pair[1])


def test_keras_lambda_layer_is_refused(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    sig = _sign(path, key_pair)
    with pytest.raises(UnsafeModelError):
        modelseal.load(path, signature=sig, public_key=key_pair[1])


ALL_KINDS = ["safetensors", "torch", "npz", "onnx", "pickle", "xgboost", "lightgbm", "keras"]


def _any_model(kind: str, d: Path) -> Path:
    if kind in ("xgboost", "lightgbm", "keras"):
        return _native_model(kind, d)[0]
    return _make(kind, d)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_unsigned_extra_file_beside_each_framework_is_refused(
    tmp_path: Path, key_pair: tuple[Path, Path], kind: str
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    _any_model(kind, model)
    sig = _sign(model, key_pair)
    (model / "notes.txt").write_text("added after signing")
    with pytest.raises(IntegrityError) as err:
        modelseal.load(model, signature=sig, public_key=key_pair[1])
    assert [(r.code, r.path) for r in err.value.reasons] == [("extra", "notes.txt")]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_swap_after_verification_is_refused_for_each_framework(
    tmp_path: Path, key_pair: tuple[Path, Path], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _any_model(kind, tmp_path)
    sig = _sign(path, key_pair)
    original = path.read_bytes()
    swapped = bytearray(original)
    swapped[len(swapped) // 2] ^= 0xFF

    def swap(_: Path) -> None:
        replacement = tmp_path / "replacement"
        replacement.write_bytes(bytes(swapped))
        os.replace(replacement, path)

    monkeypatch.setattr(verified, "_after_verification", swap)
    with pytest.raises(ModelChangedError):
        modelseal.load(path, signature=sig, public_key=key_pair[1])


def _malicious(kind: str, d: Path, canary: Path) -> Path:
    payload = _Canary(str(canary))
    if kind == "pickle":
        path = d / "model.pkl"
        path.write_bytes(pickle.dumps({"w": payload}))
    elif kind == "joblib":
        joblib = pytest.importorskip("joblib")
        path = d / "model.joblib"
        joblib.dump({"w": np.zeros(3), "x": payload}, path)
    elif kind == "npy-object":
        path = d / "model.npy"
        np.save(path, np.array([payload], dtype=object), allow_pickle=True)
    elif kind == "torch":
        import zipfile

        good = _make("torch", d)
        path = d / "bad.pt"
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename.endswith("data.pkl"):
                    data = pickle.dumps({"w": payload}, protocol=2)
                dst.writestr(info, data)
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("kind", ["pickle", "joblib", "npy-object", "torch"])
def test_signed_malicious_payloads_never_run(
    tmp_path: Path, key_pair: tuple[Path, Path], kind: str
) -> None:
    canary = tmp_path / "canary"
    path = _malicious(kind, tmp_path, canary)
    sig = _sign(path, key_pair)
    with pytest.raises(UnsafeModelError) as err:
        modelseal.load(path, signature=sig, public_key=key_pair[1])
    assert err.value.reasons
    assert not canary.exists()
