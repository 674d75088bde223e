"""memory="map": safetensors files are hashed, scanned and parsed from one private mapping of the
file; every other file is copied as in the default mode. Same guarantees at load time."""

from __future__ import annotations

import json
import mmap
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.errors import IntegrityError, ModelChangedError, UnsafeModelError, UsageError
from modelseal.hashing import HashOptions, hash_model_lenient
from modelseal.hashing.tensors import tensor_payload_ranges
from modelseal.loading import verified
from tests.loading.test_verified_load import _Canary, _make, _sign, spy_on_parse

KINDS = ["safetensors", "torch", "npz", "onnx", "pickle"]


def _big(kind: str, d: Path) -> Path:
    """A checkpoint whose tensor values are most of the file (tiny ones are copied, not mapped)."""
    import torch
    from safetensors.torch import save_file

    state = {"w": torch.arange(64 * 1024, dtype=torch.float32), "b": torch.ones(3000)}
    if kind == "safetensors":
        path = d / "big.safetensors"
        save_file(state, path)
    else:
        path = d / "big.pt"
        torch.save(state, path)
    return path


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


def test_only_tensor_containers_stay_mapped(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    st_path = _big("safetensors", model)
    pt_path = _big("torch", model)
    (model / "config.json").write_text(json.dumps({"layers": 2}))
    (model / "extra.pkl").write_bytes(pickle.dumps([1, 2, 3] * 1000))
    opts = HashOptions(reader="map", shared_ranges=tensor_payload_ranges)
    outcome = hash_model_lenient(model, opts)
    assert not outcome.failures
    for name, buf in outcome.captured.items():
        kept = name in (st_path.name, pt_path.name)
        assert isinstance(buf, mmap.mmap) == kept, name
        assert bytes(buf) == (model / name).read_bytes()
    # Without shared ranges nothing stays mapped.
    plain = hash_model_lenient(model, HashOptions(reader="map"))
    assert not any(isinstance(b, mmap.mmap) for b in plain.captured.values())
    assert plain.manifest.root_digest == outcome.manifest.root_digest


@pytest.mark.parametrize("kind", ["safetensors", "torch"])
def test_structure_is_private_and_tensor_values_are_shared(tmp_path: Path, kind: str) -> None:
    """After mapping, an in-place write to the file reaches the tensor values (the documented
    trade-off) but never the structure the parser reads (header, zip directory, pickle)."""
    path = _big(kind, tmp_path)
    original = path.read_bytes()
    opts = HashOptions(reader="map", shared_ranges=tensor_payload_ranges)
    outcome = hash_model_lenient(path, opts)
    mapped = outcome.captured["."]
    assert isinstance(mapped, mmap.mmap)
    ranges = tensor_payload_ranges(memoryview(original))
    assert ranges
    page = mmap.PAGESIZE
    with open(path, "r+b") as fh:
        fh.write(bytes(b ^ 0xFF for b in original))  # every byte changes, in place
    now = bytes(mapped)
    for offset in range(0, len(original)):
        inside = any(-(-a // page) * page <= offset < b - b % page for a, b in ranges)
        if inside:
            assert now[offset] == original[offset] ^ 0xFF
        else:
            assert now[offset] == original[offset], offset


def test_map_writes_to_a_tensor_never_reach_the_file(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    path = _make("safetensors", tmp_path)
    sig = _sign(path, key_pair)
    before = path.read_bytes()
    weights = modelseal.load(path, signature=sig, public_key=key_pair[1], memory="map")
    weights["0.weight"][...] = 7.0  # a private (copy-on-write) mapping
    assert path.read_bytes() == before


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


def test_unknown_memory_mode(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    path = _make("safetensors", tmp_path)
    sig = _sign(path, key_pair)
    with pytest.raises(UsageError, match="unknown memory mode"):
        modelseal.load(path, signature=sig, public_key=key_pair[1], memory="mmap")


def test_load_check_cli_memory_map(
    tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Callable[..., tuple[int, str, str]]
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


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=4096),
    prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x10\x00\x00\x00\x00\x00\x00\x00{"]),
)
def test_payload_ranges_never_fail_and_stay_in_bounds(data: bytes, prefix: bytes) -> None:
    blob = prefix + data
    ranges = tensor_payload_ranges(memoryview(blob))
    assert ranges is None or all(0 <= a <= b <= len(blob) for a, b in ranges)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(min_value=1, max_value=6 * 4096),
    cuts=st.lists(st.integers(min_value=0, max_value=6 * 4096), min_size=2, max_size=8),
)
def test_privatize_copies_exactly_the_pages_outside_shared_ranges(
    tmp_path: Path, size: int, cuts: list[int]
) -> None:
    from modelseal.hashing.engine import _privatize_structure

    points = sorted(min(c, size) for c in cuts)
    ranges = [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    path = tmp_path / "f.bin"
    original = os.urandom(size)
    path.write_bytes(original)
    with open(path, "rb") as fh:
        data = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY)
    try:
        kept = _privatize_structure(data, lambda _view: ranges)
        shared = sum(b - a for a, b in ranges)
        if shared == 0 or 2 * shared < size:
            assert not kept
            return
        assert kept
        with open(path, "r+b") as fh:
            fh.write(bytes(b ^ 0xFF for b in original))
        now = bytes(data)
        page = mmap.PAGESIZE
        for offset in range(0, size, 97):
            inside = any(-(-a // page) * page <= offset < b - b % page for a, b in ranges)
            assert now[offset] == (original[offset] ^ 0xFF if inside else original[offset])
    finally:
        data.close()


@pytest.mark.parametrize("kind", ["safetensors", "torch"])
def test_map_loads_big_checkpoints_from_the_mapping(
    tmp_path: Path, key_pair: tuple[Path, Path], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    path = _big(kind, tmp_path)
    sig = _sign(path, key_pair)
    seen = spy_on_parse(monkeypatch, type)
    copied = modelseal.load(path, signature=sig, public_key=key_pair[1], tensor_type="torch")
    mapped = modelseal.load(
        path, signature=sig, public_key=key_pair[1], tensor_type="torch", memory="map"
    )
    assert seen[0] is not mmap.mmap and seen[1] is mmap.mmap
    assert sorted(mapped) == sorted(copied) == ["b", "w"]
    assert all(torch.equal(mapped[k], copied[k]) for k in copied)


@pytest.mark.parametrize("change", ["replace", "write-in-place"])
@pytest.mark.parametrize("kind", ["safetensors", "torch"])
def test_map_file_changed_after_verification_is_refused(
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    kind: str,
    change: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replaced file never reaches the mapping; an in-place write does (the documented limit of
    the mode), but at load time both change the file's identity: refused, nothing returned."""
    path = _big(kind, tmp_path)
    sig = _sign(path, key_pair)
    size = path.stat().st_size

    def modify(_: Path) -> None:
        if change == "replace":
            changed = bytearray(path.read_bytes())
            changed[size // 2] ^= 0xFF
            (tmp_path / "replacement").write_bytes(bytes(changed))
            os.replace(tmp_path / "replacement", path)
            return
        with open(path, "r+b") as fh:
            fh.seek(size // 2)
            old = fh.read(4)
            fh.seek(size // 2)
            fh.write(bytes(b ^ 0x7F for b in old))  # always a change
        st = path.stat()  # make the change visible to a coarse clock too
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    monkeypatch.setattr(verified, "_after_verification", modify)
    with pytest.raises(ModelChangedError):
        modelseal.load(path, signature=sig, public_key=key_pair[1], memory="map")


def test_overlapping_zip_members_are_never_left_shared(tmp_path: Path) -> None:
    """A checkpoint whose central directory points the pickle at a storage's bytes (overlapping
    members) would leave bytes the parser reads in shared pages: such a file is copied whole."""
    path = _big("torch", tmp_path)
    data = bytearray(path.read_bytes())
    assert tensor_payload_ranges(memoryview(bytes(data)))
    entries: dict[str, int] = {}  # member name -> offset of its central directory entry
    at = data.find(b"PK\x01\x02")
    while at != -1:
        name_len = int.from_bytes(data[at + 28 : at + 30], "little")
        entries[data[at + 46 : at + 46 + name_len].decode()] = at
        at = data.find(b"PK\x01\x02", at + 46)
    pkl = next(n for n in entries if n.endswith("data.pkl"))
    storage = next(n for n in entries if n.endswith("data/0"))
    data[entries[pkl] + 42 : entries[pkl] + 46] = data[
        entries[storage] + 42 : entries[storage] + 46
    ]
    assert tensor_payload_ranges(memoryview(bytes(data))) is None
    path.write_bytes(bytes(data))
    outcome = hash_model_lenient(
        path, HashOptions(reader="map", shared_ranges=tensor_payload_ranges)
    )
    assert not isinstance(outcome.captured["."], mmap.mmap)


def test_verified_model_in_map_mode_rechecks_the_files(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    path = _big("safetensors", tmp_path)
    sig = _sign(path, key_pair)
    with modelseal.VerifiedModel(path, signature=sig, public_key=key_pair[1], memory="map") as vm:
        assert sorted(vm.model) == ["b", "w"] and vm.check() == []
        (tmp_path / "other").write_bytes(path.read_bytes()[:-4] + b"\x00\x00\x80\x7f")
        os.replace(tmp_path / "other", path)
        assert [r.code for r in vm.check()] == ["modified"]
