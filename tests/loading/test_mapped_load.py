"""memory="map": safetensors files are hashed, scanned and parsed from one private mapping of the
file; every other file is copied as in the default mode. Same guarantees at load time."""

from __future__ import annotations

import json
import mmap
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.errors import IntegrityError, ModelChangedError, UnsafeModelError, UsageError
from modelseal.hashing import HashOptions, hash_model_lenient
from modelseal.loading import verified
from tests.loading.test_verified_load import _Canary, _make, _sign

KINDS = ["safetensors", "torch", "npz", "onnx", "pickle"]


@pytest.mark.parametrize("kind", KINDS)
def test_map_loads_what_copy_loads(tmp_path: Path, key_pair: tuple[Path, Path], kind: str) -> None:
    path = _make(kind, tmp_path)
    sig = _sign(path, key_pair)
    copied = verified.load_verified(path, signature=sig, public_key=key_pair[1])
    mapped = verified.load_verified(path, signature=sig, public_key=key_pair[1], memory="map")
    assert (mapped.framework, mapped.tensors, mapped.parameters) == (
        copied.framework,
        copied.tensors,
        copied.parameters,
    )
    if kind in ("safetensors", "npz"):
        assert sorted(mapped.obj) == sorted(copied.obj)
        for name in copied.obj:
            np.testing.assert_array_equal(mapped.obj[name], copied.obj[name])
    elif kind == "pickle":
        assert mapped.obj == copied.obj


def test_only_safetensors_files_stay_mapped(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    st_path = _make("safetensors", model)
    (model / "config.json").write_text(json.dumps({"layers": 2}))
    (model / "extra.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    outcome = hash_model_lenient(model, HashOptions(reader="map"))
    assert not outcome.failures
    kinds = {name: type(buf) for name, buf in outcome.captured.items()}
    assert kinds[st_path.name] is mmap.mmap
    # Copied into fresh memory (a bytearray when small): never a mapping of the file.
    assert all(
        not isinstance(buf, mmap.mmap) or buf.size() != os.path.getsize(model / name)
        for name, buf in outcome.captured.items()
        if name != st_path.name
    )


def test_map_writes_to_a_tensor_never_reach_the_file(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    path = _make("safetensors", tmp_path)
    sig = _sign(path, key_pair)
    before = path.read_bytes()
    weights = modelseal.load(path, signature=sig, public_key=key_pair[1], memory="map")
    weights["0.weight"][...] = 7.0  # a private (copy-on-write) mapping
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", KINDS)
def test_map_refuses_a_changed_byte(tmp_path: Path, key_pair: tuple[Path, Path], kind: str) -> None:
    path = _make(kind, tmp_path)
    sig = _sign(path, key_pair)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as err:
        modelseal.load(path, signature=sig, public_key=key_pair[1], memory="map")
    assert [r.code for r in err.value.reasons] == ["modified"]


def test_map_refuses_an_unsigned_extra_file(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    model = tmp_path / "model"
    model.mkdir()
    _make("safetensors", model)
    sig = _sign(model, key_pair)
    (model / "extra.safetensors").write_bytes(next(model.iterdir()).read_bytes())
    with pytest.raises(IntegrityError) as err:
        modelseal.load(model, signature=sig, public_key=key_pair[1], memory="map")
    assert [(r.code, r.path) for r in err.value.reasons] == [("extra", "extra.safetensors")]


def test_map_refuses_a_signed_malicious_pickle(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"w": [1.0], "x": _Canary(str(canary))}))
    sig = _sign(path, key_pair)
    with pytest.raises(UnsafeModelError):
        modelseal.load(path, signature=sig, public_key=key_pair[1], memory="map")
    assert not canary.exists()


def test_map_replaced_file_is_refused(
    tmp_path: Path, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _make("safetensors", tmp_path)
    sig = _sign(path, key_pair)
    swapped = bytearray(path.read_bytes())
    swapped[-1] ^= 0xFF

    def swap(_: Path) -> None:
        replacement = tmp_path / "replacement"
        replacement.write_bytes(bytes(swapped))
        os.replace(replacement, path)

    monkeypatch.setattr(verified, "_after_verification", swap)
    with pytest.raises(ModelChangedError):
        modelseal.load(path, signature=sig, public_key=key_pair[1], memory="map")


def test_map_in_place_write_after_verification_is_refused(
    tmp_path: Path, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented limit of the mode: an in-place write shares the page cache with the mapping.
    At load time it is caught (the file's identity changed) and nothing is returned."""
    path = _make("safetensors", tmp_path)
    sig = _sign(path, key_pair)

    def write_in_place(_: Path) -> None:
        with open(path, "r+b") as fh:
            fh.seek(-4, os.SEEK_END)
            fh.write(b"\xff\xff\xff\xff")
        st = path.stat()  # make sure the change is visible to a coarse clock too
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    monkeypatch.setattr(verified, "_after_verification", write_in_place)
    with pytest.raises(ModelChangedError):
        modelseal.load(path, signature=sig, public_key=key_pair[1], memory="map")


def test_unknown_memory_mode(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    path = _make("safetensors", tmp_path)
    sig = _sign(path, key_pair)
    with pytest.raises(UsageError, match="unknown memory mode"):
        modelseal.load(path, signature=sig, public_key=key_pair[1], memory="mmap")


def test_load_check_cli_memory_map(
    tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Any
) -> None:
    path = _make("safetensors", tmp_path)
    sig = _sign(path, key_pair)
    args = ("load-check", path, "--signature", sig, "--public-key", key_pair[1])
    code, out, err = run_cli(*args, "--memory", "map", "--json")
    assert code == 0, err
    assert json.loads(out)["framework"] == "safetensors"
    code, _, err = run_cli(*args, "--memory", "disk")
    assert code == 2 and "--memory" in err


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(head=st.binary(min_size=0, max_size=64), tail=st.binary(min_size=0, max_size=2048))
def test_map_reader_digests_equal_the_default_reader(
    tmp_path: Path, head: bytes, tail: bytes
) -> None:
    """Whatever the bytes (safetensors-looking or not), "map" hashes exactly what "read" does."""
    model = tmp_path / "m"
    model.mkdir(exist_ok=True)
    size = len(tail)
    (model / "a.safetensors").write_bytes(size.to_bytes(8, "little") + b"{" + tail)
    (model / "b.bin").write_bytes(head + tail)
    for shard in (None, 1 + len(tail) // 3):
        read = hash_model_lenient(model, HashOptions(reader="read", shard_size=shard))
        mapped = hash_model_lenient(model, HashOptions(reader="map", shard_size=shard))
        assert mapped.manifest.root_digest == read.manifest.root_digest
        assert bytes(mapped.captured["b.bin"]) == head + tail
