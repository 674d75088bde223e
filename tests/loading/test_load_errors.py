"""Every user-reachable loading error is one line with a documented exit code: framework
mismatches, malformed native files, whole PyTorch modules; and the Python API takes every option
as a typed keyword (a str passphrase works)."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.errors import UnsafeModelError, UsageError
from modelseal.loading.verified import VerifiedModel, load, load_verified

torch = pytest.importorskip("torch")

Run = Callable[..., tuple[int, str, str]]


_Module: Any = torch.nn.Module


class Net(_Module):  # type: ignore[misc]
    """A user's own module: its class is not on the built-in list."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: Any) -> Any:
        return self.head(self.body(x))


NET = f"{Net.__module__}.Net"


def _signed(tmp_path: Path, key_pair: tuple[Path, Path], name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    modelseal.sign(path, private_key=key_pair[0], signature=tmp_path / f"{name}.sig")
    return path


def _check(run_cli: Run, path: Path, key_pair: tuple[Path, Path], *extra: str) -> tuple[int, str]:
    code, _, err = run_cli(
        "load-check", path, "--signature", f"{path}.sig", "--public-key", key_pair[1], *extra
    )
    return code, err


def _one_line(err: str) -> bool:
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("modelseal: error: ")


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# ---- whole PyTorch modules ------------------------------------------------------------------


def test_a_whole_torch_module_of_built_in_layers_loads(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    path = _signed(tmp_path, key_pair, "seq.pt", _torch_bytes(model))
    loaded = load_verified(path, signature=f"{path}.sig", public_key=key_pair[1])
    assert loaded.framework == "torch-module" and loaded.parameters == 26
    x = torch.ones(2, 3)
    assert torch.equal(loaded.obj(x), model(x))


def test_a_whole_torch_module_needs_its_classes_allowed_and_says_which(
    tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Run
) -> None:
    torch.manual_seed(0)
    model = Net()
    path = _signed(tmp_path, key_pair, "net.pt", _torch_bytes(model))
    with pytest.raises(UnsafeModelError) as err:
        load(path, signature=f"{path}.sig", public_key=key_pair[1])
    assert f"allow=['{NET}']" in err.value.hint
    code, err_text = _check(run_cli, path, key_pair)
    assert code == 1 and f"--allow {NET}" in err_text
    loaded = load(path, signature=f"{path}.sig", public_key=key_pair[1], allow=[NET])
    x = torch.ones(2, 3)
    assert isinstance(loaded, Net) and torch.equal(loaded(x), model(x))
    assert _check(run_cli, path, key_pair, "--allow", NET)[0] == 0


def test_a_checkpoint_dict_with_metadata_loads(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    ckpt = {"epoch": 3, "state": torch.nn.Linear(2, 2).state_dict(), "lr": 0.1}
    path = _signed(tmp_path, key_pair, "ckpt.pt", _torch_bytes(ckpt))
    loaded = load(path, signature=f"{path}.sig", public_key=key_pair[1])
    assert loaded["epoch"] == 3 and torch.equal(loaded["state"]["weight"], ckpt["state"]["weight"])


# ---- format mismatches and malformed files: one line, exit 2 --------------------------------


def test_framework_pickle_on_a_torch_zip_is_one_line(
    tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Run
) -> None:
    path = _signed(tmp_path, key_pair, "w.pt", _torch_bytes({"w": torch.ones(2)}))
    code, err = _check(run_cli, path, key_pair, "--framework", "pickle")
    assert code == 2 and _one_line(err) and "PyTorch checkpoint" in err and "not a pickle" in err


_MALFORMED = {
    "lightgbm.txt": b"tree\nversion=v4\nnum_class=1\nmax_feature_idx=zz\n\nTree=0\nnum_leaves=x\n",
    "lightgbm-bad-utf8.txt": b"tree\nversion=v4\nnum_class=\xff\n",
    "xgboost.json": b'{"learner": {"gradient_booster": 5, "x": [}',
    "xgboost-empty.json": b'{"learner": {}}',
    "model.onnx": b"\x08\x07\x12\x05junk\xff\xff\xff\xff\x01",
    "onnx-bad-graph.onnx": b"\x08\x07:\x02\x0a\x00",
    "keras.keras": None,
}


def _keras_garbage() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", b"{not json")
        zf.writestr("model.weights.h5", b"not hdf5")
        zf.writestr("metadata.json", b"{}")
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(_MALFORMED))
@pytest.mark.parametrize(
    "framework", ["auto", "pickle", "xgboost", "lightgbm", "onnx", "keras", "torch", "numpy"]
)
def test_malformed_native_files_are_one_line_exit_2(
    tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Run, name: str, framework: str
) -> None:
    data = _MALFORMED[name] or _keras_garbage()
    path = _signed(tmp_path, key_pair, name, data)
    code, err = _check(run_cli, path, key_pair, "--framework", framework)
    assert code == 2, err
    assert _one_line(err), err


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    prefix=st.sampled_from(
        [b"tree\nversion=v4\n", b'{"learner": ', b"\x08\x07", b"PK\x03\x04", b"\x80\x04"]
    ),
    tail=st.binary(max_size=64),
    framework=st.sampled_from(["auto", "pickle", "xgboost", "lightgbm", "onnx"]),
)
def test_fuzzed_native_headers_never_end_in_a_traceback(
    tmp_path_factory: pytest.TempPathFactory,
    key_pair: tuple[Path, Path],
    prefix: bytes,
    tail: bytes,
    framework: str,
) -> None:
    from modelseal.cli.main import main

    d = tmp_path_factory.mktemp("fuzz")
    path = _signed(d, key_pair, "m.bin", prefix + tail)
    args = ["load-check", str(path), "--signature", f"{path}.sig", "--public-key", str(key_pair[1])]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*args, "--framework", framework])
    assert code in (0, 1, 2), err.getvalue()
    if code == 2:
        assert _one_line(err.getvalue()), err.getvalue()


# ---- the Python API -------------------------------------------------------------------------


@pytest.mark.parametrize("function", [load, load_verified, VerifiedModel.__init__, modelseal.load])
def test_every_option_is_an_explicit_typed_keyword(function: Callable[..., Any]) -> None:
    params = inspect.signature(function).parameters.values()
    assert not [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    names = {p.name for p in params}
    for option in ("allow", "allow_config", "passphrase", "keyset", "memory", "tensor_type"):
        assert option in names
    assert all(p.annotation is not inspect.Parameter.empty for p in params if p.name != "self")


def test_a_str_passphrase_opens_a_protected_keyset(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    from modelseal import crypto
    from modelseal.crypto import keyset as ks

    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    import numpy as np

    path = tmp_path / "w.safetensors"
    safetensors_numpy.save_file({"w": np.arange(4, dtype=np.float32)}, path)
    modelseal.sign(path, private_key=key_pair[0], signature=tmp_path / "w.sig")
    keyset = ks.new_streaming_keyset(segment_size=4096)
    keyset_file = tmp_path / "keyset.json"
    ks.write_keyset_file(keyset_file, keyset, passphrase=b"correct horse")
    crypto.encrypt(path, tmp_path / "w.enc", keyset=keyset)
    for passphrase in ("correct horse", b"correct horse"):
        out = load(
            tmp_path / "w.enc",
            signature=tmp_path / "w.sig",
            public_key=key_pair[1],
            keyset=keyset_file,
            passphrase=passphrase,
        )
        assert out["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(modelseal.errors.ModelsealError):
        load(
            tmp_path / "w.enc",
            signature=tmp_path / "w.sig",
            public_key=key_pair[1],
            keyset=keyset_file,
            passphrase="wrong",
        )
    # A passphrase with nothing to open is an error, never silently ignored.
    with pytest.raises(UsageError, match="passphrase"):
        load(path, signature=tmp_path / "w.sig", public_key=key_pair[1], passphrase="x")


def test_allow_must_be_a_list(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    path = _signed(tmp_path, key_pair, "p.pkl", json.dumps([1]).encode())
    with pytest.raises(UsageError, match="list"):
        load(path, signature=f"{path}.sig", public_key=key_pair[1], allow="sklearn.*")


def test_every_passphrase_entry_point_takes_str_or_bytes(tmp_path: Path) -> None:
    """A str passphrase is never ignored: signing keys, keyset files and local KEKs open."""
    from modelseal.crypto import keyset as ks
    from modelseal.crypto.providers import open_provider
    from modelseal.crypto.providers.local import LocalProvider
    from modelseal.errors import PassphraseError
    from modelseal.signing.keys import generate_key, load_private_key, write_key_pair

    key = tmp_path / "k.pem"
    write_key_pair(generate_key("ecdsa-p256"), key, tmp_path / "k.pub", passphrase="pässword")
    for passphrase in ("pässword", "pässword".encode()):
        assert load_private_key(key, passphrase) is not None
    with pytest.raises(PassphraseError):
        load_private_key(key, "wrong")
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    modelseal.sign(model, private_key=key, signature=tmp_path / "m.sig", passphrase="pässword")
    assert modelseal.verify(model, signature=tmp_path / "m.sig", public_key=tmp_path / "k.pub")
    keyset_file = tmp_path / "ks.json"
    ks.write_keyset_file(keyset_file, ks.new_streaming_keyset(), passphrase="pässword")
    assert ks.read_keyset_file(keyset_file, passphrase="pässword").keys
    LocalProvider.create(tmp_path / "kek.json", passphrase=b"kek pass")
    provider = open_provider(f"local:{tmp_path / 'kek.json'}", passphrase="kek pass")
    wrapped = provider.wrap(b"k" * 32, context=b"c")
    assert provider.unwrap(wrapped, context=b"c") == b"k" * 32
