"""Known answers and ordering rules of OMS v1.0 manifests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelseal.hashing import HashOptions, ManifestItem, hash_model
from modelseal.hashing.manifest import Manifest, Serialization, root_digest
from tests.conftest import build_kat_model

# Root digests of the tree in build_kat_model, computed with model_signing 1.1.1's hashing API.
KAT = {
    ("sha256", None): "bcfeda5203e5252b1a4e5725b8f48b9efc8320809c4dd0ee62a4e647aea4df61",
    ("sha256", 1000): "dff30459464394448e7da3a1bc1358084177526a27ff799fc042f6b44b109c3a",
    ("blake2b", None): "f90e75954e69f53229265fc63b1d1b87e7c8ad1ed164248ea0335f3c9d62d11b",
    ("blake3", None): "13a7e896a2d913e618b4f7fabb75a844f5e7f2e2f2feb2b2bda3d5d32523deb1",
}


@pytest.mark.parametrize(("hash_type", "shard_size"), list(KAT))
def test_root_digest_known_answers(tmp_path: Path, hash_type: str, shard_size: int | None) -> None:
    model = build_kat_model(tmp_path / "model")
    manifest = hash_model(model, HashOptions(hash_type=hash_type, shard_size=shard_size))
    assert manifest.root_digest.hex() == KAT[(hash_type, shard_size)]


def test_order_is_by_path_components_then_offsets(tmp_path: Path) -> None:
    model = build_kat_model(tmp_path / "model")
    files = hash_model(model)
    assert [i.name for i in files.items] == ["a/b", "a.txt", "empty.bin", "sub/big.bin"]
    shards = hash_model(model, HashOptions(shard_size=1000))
    assert [i.name for i in shards.items] == [
        "a/b:0:1",
        "a.txt:0:5",
        "sub/big.bin:0:1000",
        "sub/big.bin:1000:2000",
        "sub/big.bin:2000:2500",
    ]


def test_root_digest_is_sha256_of_concatenated_item_digests(tmp_path: Path) -> None:
    model = build_kat_model(tmp_path / "model")
    manifest = hash_model(model)
    expected = hashlib.sha256(
        b"".join(hashlib.sha256(c).digest() for c in [b"b", b"hello", b"", b"x" * 2500])
    ).hexdigest()
    assert manifest.root_digest.hex() == expected


def test_single_file_model_is_named_dot(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights")
    manifest = hash_model(path)
    assert manifest.model_name == "model.safetensors"
    assert [i.name for i in manifest.items] == ["."]
    assert manifest.serialization.ignore_paths == ()
    assert manifest.items[0].digest == hashlib.sha256(b"weights").digest()


_segment = st.text(alphabet="ab.-_/", min_size=1, max_size=6).filter(
    lambda s: all(p not in ("", ".", "..") for p in s.split("/"))
)


@given(st.lists(_segment, min_size=1, max_size=12, unique=True))
def test_sort_matches_pure_posix_path_ordering(paths: list[str]) -> None:
    from pathlib import PurePosixPath

    items = [ManifestItem(p, hashlib.sha256(p.encode()).digest()) for p in paths]
    manifest = Manifest.build("m", Serialization(), items)
    assert [i.path for i in manifest.items] == [
        str(p) for p in sorted(PurePosixPath(p) for p in paths)
    ]


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=20))
def test_root_digest_property(digests: list[bytes]) -> None:
    assert root_digest(digests) == hashlib.sha256(b"".join(digests)).digest()
