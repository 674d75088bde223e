"""Hashing from memory gives exactly the manifest hashing the same files on disk gives, so a
model signed on disk verifies after it was decrypted into memory (and a change is caught)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import ModelPathError
from modelseal.hashing import HashOptions, hash_model_lenient
from modelseal.hashing.memory import hash_buffers

_names = st.lists(
    st.text(alphabet="abcxyz_.-", min_size=1, max_size=6).filter(lambda s: s not in (".", "..")),
    min_size=1,
    max_size=3,
).map("/".join)
_trees = st.dictionaries(_names, st.binary(max_size=300), min_size=1, max_size=6).filter(
    # a path may not be both a file and a directory
    lambda t: not any(a != b and b.startswith(a + "/") for a in t for b in t)
)


def _write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@settings(max_examples=40, deadline=None)
@given(
    files=_trees,
    shard_size=st.one_of(st.none(), st.integers(min_value=1, max_value=400)),
    hash_type=st.sampled_from(["sha256", "blake2b", "blake3"]),
    ignore=st.lists(st.sampled_from(["*.md", "a*", "x", ".git"]), max_size=2),
)
def test_memory_and_disk_agree(
    files: dict[str, bytes], shard_size: int | None, hash_type: str, ignore: list[str]
) -> None:
    options = HashOptions(hash_type=hash_type, shard_size=shard_size, ignore=tuple(ignore))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "model"
        _write(root, files)
        disk = hash_model_lenient(root, options)
    memory = hash_buffers(files, options, model_name="model")
    assert memory.manifest == disk.manifest
    assert sorted(memory.captured) == sorted(e.name for e in disk.files)


@settings(max_examples=30, deadline=None)
@given(data=st.binary(min_size=1, max_size=500), flip=st.integers(min_value=0))
def test_any_changed_byte_changes_the_manifest(data: bytes, flip: int) -> None:
    before = hash_buffers({".": data}, model_name="m").manifest
    changed = bytearray(data)
    changed[flip % len(data)] ^= 0x01
    assert hash_buffers({".": bytes(changed)}, model_name="m").manifest != before


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/../b", "a//b", "a/./b", "dir/", ""])
def test_untrusted_names_are_refused(name: str) -> None:
    with pytest.raises(ModelPathError, match="not a plain relative POSIX path"):
        hash_buffers({name: b"x"}, model_name="m")


def test_single_file_and_named_files_do_not_mix() -> None:
    with pytest.raises(ModelPathError, match="either one file"):
        hash_buffers({".": b"x", "a": b"y"}, model_name="m")
