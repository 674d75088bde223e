"""A single-file model is named by its file in every message, never by OMS's ``"."`` (which stays
the resource path in ``Reason.path``, as signed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.errors import IntegrityError, ModelPathError
from modelseal.hashing.engine import Task
from modelseal.hashing.manifest import Method
from modelseal.hashing.walk import Listing

NAME = "model.safetensors"


@pytest.fixture
def single(tmp_path: Path) -> Path:
    path = tmp_path / NAME
    path.write_bytes(os.urandom(2500))
    return path


def _sign(path: Path, key_pair: tuple[Path, Path], shard_size: int | None) -> Path:
    sig = path.parent / "model.sig"
    modelseal.sign(path, private_key=key_pair[0], signature=sig, shard_size=shard_size)
    return sig


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@settings(max_examples=20, deadline=None)
@given(shard_size=st.sampled_from([None, 1000]), offset=st.integers(min_value=0, max_value=2499))
def test_a_changed_byte_names_the_file(
    tmp_path_factory: pytest.TempPathFactory,
    key_pair: tuple[Path, Path],
    shard_size: int | None,
    offset: int,
) -> None:
    path = tmp_path_factory.mktemp("single") / NAME
    path.write_bytes(os.urandom(2500))
    sig = _sign(path, key_pair, shard_size)
    _flip(path, offset)
    with pytest.raises(IntegrityError) as err:
        modelseal.verify(path, signature=sig, public_key=key_pair[1])
    [reason] = err.value.reasons
    assert reason.code == "modified"
    if shard_size is None:
        assert reason.message == f"{NAME}: content changed"
        assert reason.path == "."
    else:
        start = offset - offset % shard_size
        end = min(start + shard_size, 2500)
        assert reason.message == f"{NAME}: content changed in bytes {start}..{end}"
        assert reason.path == f".:{start}:{end}"
    assert f"({NAME}: content changed" in err.value.message


def test_a_changed_size_names_the_file(single: Path, key_pair: tuple[Path, Path]) -> None:
    sig = _sign(single, key_pair, 1000)
    with open(single, "ab") as fh:
        fh.write(b"more")
    with pytest.raises(IntegrityError) as err:
        modelseal.verify(single, signature=sig, public_key=key_pair[1])
    assert [r.message for r in err.value.reasons] == [
        f"{NAME}: size changed from 2500 to 2504 bytes"
    ]


def _grow_after_planning(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    import modelseal.hashing.engine as engine

    real_plan = engine.plan

    def plan_then_grow(listing: Listing, method: Method, shard_size: int | None) -> list[Task]:
        tasks = real_plan(listing, method, shard_size)
        with open(path, "ab") as fh:
            fh.write(b"more")
        return tasks

    monkeypatch.setattr(engine, "plan", plan_then_grow)


def test_a_file_that_changes_while_signed_is_named(
    single: Path, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _grow_after_planning(monkeypatch, single)
    with pytest.raises(ModelPathError) as err:
        modelseal.sign(single, private_key=key_pair[0], shard_size=1000)
    assert err.value.message == f"cannot hash {NAME!r}: changed size while hashing"


def test_a_file_that_changes_while_verified_is_named(
    single: Path, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sig = _sign(single, key_pair, 1000)
    _grow_after_planning(monkeypatch, single)
    with pytest.raises(IntegrityError) as err:
        modelseal.verify(single, signature=sig, public_key=key_pair[1])
    assert [(r.code, r.path, r.message) for r in err.value.reasons] == [
        ("unreadable", ".", f"{NAME}: changed size while hashing")
    ]
