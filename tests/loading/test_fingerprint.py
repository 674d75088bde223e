"""The weights fingerprint: the same weights give the same digest in every container; any change
to a value, dtype, shape or name changes it; nothing in a file is executed to compute it."""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.errors import InputError, IntegrityError, TensorFormatError
from modelseal.hashing.fingerprint import SCHEME, fingerprint, fingerprint_tensors
from modelseal.hashing.tensors import Tensor

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "encoder.weight": rng.standard_normal((16, 8)).astype(np.float32),
        "encoder.bias": rng.standard_normal(16).astype(np.float32),
        "head.weight": rng.standard_normal((3, 16)).astype(np.float16),
        "steps": np.array(7, dtype=np.int64),
        "mask": rng.integers(0, 2, size=(4, 4)).astype(np.bool_),
    }


def _save_all(weights: dict[str, np.ndarray], d: Path) -> dict[str, Path]:
    tensors = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    out = {
        "torch": d / "w.pt",
        "safetensors": d / "w.safetensors",
        "npz": d / "w.npz",
        "npz-compressed": d / "wc.npz",
        "npz-fortran": d / "wf.npz",
        "onnx": d / "w.onnx",
    }
    torch.save(tensors, out["torch"])
    safetensors_torch.save_file(tensors, out["safetensors"])
    # allow_pickle named: numpy's stubs otherwise let **weights stand for it (the arrays are plain).
    np.savez(out["npz"], allow_pickle=False, **weights)
    np.savez_compressed(out["npz-compressed"], allow_pickle=False, **weights)
    np.savez(
        out["npz-fortran"],
        allow_pickle=False,
        **{k: np.asfortranarray(v) if v.ndim > 1 else v for k, v in weights.items()},
    )
    import onnx
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(v, name=k) for k, v in weights.items()]
    graph = helper.make_graph([], "g", [], [], initializer=inits)
    onnx.save(helper.make_model(graph), out["onnx"])
    return out


def test_same_weights_same_fingerprint_in_every_format(tmp_path: Path) -> None:
    paths = _save_all(_weights(), tmp_path)
    digests = {name: fingerprint(p).digest for name, p in paths.items()}
    assert len(set(digests.values())) == 1, digests
    result = fingerprint(paths["torch"])
    assert result.tensors == 5 and result.parameters == 128 + 16 + 48 + 1 + 16
    assert result.scheme == SCHEME


def test_non_contiguous_torch_tensors_are_canonicalized(tmp_path: Path) -> None:
    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    torch.save({"w": w.t()}, tmp_path / "t.pt")
    torch.save({"w": w.t().contiguous()}, tmp_path / "c.pt")
    assert fingerprint(tmp_path / "t.pt") == fingerprint(tmp_path / "c.pt")


def test_directory_of_sharded_weights(tmp_path: Path) -> None:
    weights = _weights()
    model = tmp_path / "model"
    model.mkdir()
    names = sorted(weights)
    safetensors_torch.save_file(
        {k: torch.from_numpy(weights[k].copy()) for k in names[:2]}, model / "a.safetensors"
    )
    safetensors_torch.save_file(
        {k: torch.from_numpy(weights[k].copy()) for k in names[2:]}, model / "b.safetensors"
    )
    (model / "config.json").write_text("{}")
    single = tmp_path / "all.safetensors"
    safetensors_torch.save_file({k: torch.from_numpy(v.copy()) for k, v in weights.items()}, single)
    assert fingerprint(model) == fingerprint(single)


def _tensor(name: str, array: np.ndarray) -> Tensor:
    return Tensor(name, str(array.dtype), tuple(array.shape), array.tobytes())


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=64),
    index=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=31),
)
def test_any_single_value_change_changes_the_fingerprint(
    values: list[float], index: int, bit: int
) -> None:
    array = np.array(values, dtype=np.float32)
    base = fingerprint_tensors([_tensor("w", array)])
    changed = array.copy()
    raw = changed.view(np.uint32)
    raw[index % len(raw)] ^= np.uint32(1 << bit)
    assert fingerprint_tensors([_tensor("w", changed)]) != base


def test_dtype_shape_and_name_changes(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float32)
    base = fingerprint_tensors([_tensor("w", array)])
    assert fingerprint_tensors([_tensor("w", array.astype(np.float64))]).digest != base.digest
    assert fingerprint_tensors([_tensor("w", array.reshape(3, 4))]).digest != base.digest
    assert fingerprint_tensors([_tensor("v", array)]).digest != base.digest
    nameless = fingerprint_tensors([_tensor("w", array)], ignore_names=True)
    assert fingerprint_tensors([_tensor("v", array)], ignore_names=True) == nameless
    a, b = _tensor("a", array), _tensor("b", array * 2)
    renamed = [Tensor("x", b.dtype, b.shape, b.data), Tensor("y", a.dtype, a.shape, a.data)]
    assert (
        fingerprint_tensors([a, b], ignore_names=True).digest
        == fingerprint_tensors(renamed, ignore_names=True).digest
    )
    assert fingerprint_tensors([a, b]).digest == fingerprint_tensors([b, a]).digest


class _Canary:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (self.path, "w"))


def test_malicious_checkpoint_is_refused_without_running(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    torch.save({"w": torch.zeros(2)}, tmp_path / "ok.pt")
    with (
        zipfile.ZipFile(tmp_path / "ok.pt") as src,
        zipfile.ZipFile(tmp_path / "bad.pt", "w") as dst,
    ):
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = pickle.dumps({"w": _Canary(str(canary))}, protocol=2)
            dst.writestr(info, data)
    with pytest.raises(TensorFormatError, match=r"builtins\.open is not allowed|io\.open"):
        fingerprint(tmp_path / "bad.pt")
    assert not canary.exists()


def test_malformed_and_unsupported_files(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    header = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        }
    ).encode()
    (tmp_path / "overlap.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + bytes(12)
    )
    with pytest.raises(TensorFormatError, match="overlap"):
        fingerprint(tmp_path / "overlap.safetensors")
    header = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    (tmp_path / "short.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + bytes(4)
    )
    with pytest.raises(TensorFormatError, match="offsets"):
        fingerprint(tmp_path / "short.safetensors")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TensorFormatError, match="not a plain numeric tensor"):
        fingerprint(tmp_path / "obj.npy")
    (tmp_path / "notes.txt").write_text("hello world, not weights")
    code, _, err = run_cli("fingerprint", tmp_path / "notes.txt")
    assert code == 2 and err.strip().splitlines()[-1].startswith("modelseal: error: ")
    assert "not a weights format" in err
    code, _, err = run_cli("fingerprint", tmp_path / "missing.pt")
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(InputError, match="no weights file"):
        fingerprint(empty)


def test_sign_records_fingerprint_and_verify_checks_it(
    tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    safetensors_torch.save_file({"w": torch.ones(3, 3)}, model / "model.safetensors")
    sig = tmp_path / "m.sig"
    code, _, err = run_cli(
        "sign", model, "--private-key", key_pair[0], "--signature", sig, "--fingerprint"
    )
    assert code == 0, err
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--public-key", key_pair[1], "--json"
    )
    assert code == 0, err
    assert json.loads(out)["fingerprint"]["digest"] == fingerprint(model).digest
    lying = modelseal.sign(
        model,
        private_key=key_pair[0],
        extensions={
            "modelseal": {"fingerprint": {"digest": "sha256:" + "0" * 64, "scheme": SCHEME}}
        },
    )
    with pytest.raises(IntegrityError) as err_info:
        modelseal.verify(model, signature=lying.bundle, public_key=key_pair[1])
    assert [r.code for r in err_info.value.reasons] == ["fingerprint-mismatch"]


@pytest.mark.interop
def test_model_signing_still_verifies_a_bundle_with_a_fingerprint(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    import subprocess
    import sys

    model = tmp_path / "model"
    model.mkdir()
    safetensors_torch.save_file({"w": torch.ones(3, 3)}, model / "model.safetensors")
    sig = tmp_path / "m.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=sig, fingerprint=True)
    tool = Path(sys.executable).parent / "model_signing"
    done = subprocess.run(
        [
            str(tool),
            "verify",
            "key",
            str(model),
            "--signature",
            str(sig),
            "--public_key",
            str(key_pair[1]),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_hdf5_weights_match_other_formats(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    weights = _weights()
    with h5py.File(tmp_path / "w.h5", "w") as handle:
        group = handle.create_group("model_weights")
        for name, array in weights.items():
            group.create_dataset(name, data=array)
    np.savez(tmp_path / "w.npz", allow_pickle=False, **weights)
    named = fingerprint(tmp_path / "w.h5")
    assert named.tensors == 5 and named != fingerprint(tmp_path / "w.npz")  # names carry the group
    assert (
        fingerprint(tmp_path / "w.h5", ignore_names=True).digest
        == fingerprint(tmp_path / "w.npz", ignore_names=True).digest
    )
    with h5py.File(tmp_path / "s.h5", "w") as handle:
        handle.create_dataset("names", data=np.array([b"a", b"b"]))
    with pytest.raises(TensorFormatError, match="not a plain numeric tensor"):
        fingerprint(tmp_path / "s.h5")
