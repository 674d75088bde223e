"""RFC 6962 Merkle tree: the published test vectors (transparency-dev/merkle, the CT test data)
and properties checked against a direct transcription of the RFC's recursive definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.audit import merkle

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, proof): published inclusion vectors (0-based index here).
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def _nodes(n: int) -> merkle.MemoryNodes:
    return merkle.MemoryNodes(merkle.leaf_hash(x) for x in LEAVES[:n])


def test_prefixes_and_empty_tree() -> None:
    assert merkle.EMPTY_ROOT.hex() == hashlib.sha256(b"").hexdigest()
    assert merkle.root_of([]) == merkle.EMPTY_ROOT
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_published_roots(size: int) -> None:
    assert merkle.root_of([merkle.leaf_hash(x) for x in LEAVES[:size]]).hex() == ROOTS[size - 1]
    assert _nodes(size).root().hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_published_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    got = merkle.inclusion_proof(_nodes(8), index, size)
    assert [p.hex() for p in got] == proof
    leaf = merkle.leaf_hash(LEAVES[index])
    root = bytes.fromhex(ROOTS[size - 1])
    assert merkle.verify_inclusion(index, size, leaf, got, root)
    # Every corruption the reference suite tries is rejected.
    bad = [
        (index + 1, size, leaf, got, root),
        (index, size * 2, leaf, got, root),
        (index, size, merkle.leaf_hash(b"wrong"), got, root),
        (index, size, leaf, got, merkle.EMPTY_ROOT),
        (index, size, leaf, [*got, root], root),
        (index, size, leaf, [root, *got], root),
    ]
    if got:
        bad.append((index, size, leaf, got[:-1], root))
        for i in range(len(got)):
            flipped = list(got)
            flipped[i] = bytes([got[i][0] ^ 8]) + got[i][1:]
            bad.append((index, size, leaf, flipped, root))
    for probe in bad:
        assert not merkle.verify_inclusion(*probe), probe[:2]


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_published_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    got = merkle.consistency_proof(_nodes(8), old, new)
    assert [p.hex() for p in got] == proof
    r1, r2 = bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    assert merkle.verify_consistency(old, new, got, r1, r2)
    if got:
        assert not merkle.verify_consistency(old, new, got, r2, r1)
        assert not merkle.verify_consistency(old, new, got[:-1], r1, r2)
        assert not merkle.verify_consistency(old, new, [*got, r1], r1, r2)
        assert not merkle.verify_consistency(old + 1, new, got, r1, r2)
        assert not merkle.verify_consistency(old, new, [], r1, r2)
        for i in range(len(got)):
            flipped = list(got)
            flipped[i] = bytes([got[i][0] ^ 16]) + got[i][1:]
            assert not merkle.verify_consistency(old, new, flipped, r1, r2)


def test_trivial_consistency_cases() -> None:
    r = merkle.EMPTY_ROOT
    assert merkle.verify_consistency(0, 0, [], r, r)
    assert merkle.verify_consistency(0, 5, [], r, bytes(32))
    assert not merkle.verify_consistency(1, 0, [], r, r)
    assert not merkle.verify_consistency(1, 1, [], r, bytes(32))
    assert not merkle.verify_consistency(1, 1, [r], r, r)
    with pytest.raises(ValueError):
        merkle.consistency_proof(_nodes(8), 5, 3)
    with pytest.raises(ValueError):
        merkle.inclusion_proof(_nodes(8), 8, 8)


# A direct transcription of RFC 6962 section 2.1, as an oracle.
def _mth(d: list[bytes]) -> bytes:
    if not d:
        return merkle.EMPTY_ROOT
    if len(d) == 1:
        return merkle.leaf_hash(d[0])
    k = merkle.split_point(len(d))
    return merkle.node_hash(_mth(d[:k]), _mth(d[k:]))


def _path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = merkle.split_point(len(d))
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [_mth(d)]
    k = merkle.split_point(n)
    if m <= k:
        return [*_subproof(m, d[:k], b), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_proofs_match_the_rfc_definitions(data: list[bytes], draw: st.DataObject) -> None:
    nodes = merkle.MemoryNodes(merkle.leaf_hash(x) for x in data)
    n = len(data)
    assert nodes.root() == _mth(data)
    size = draw.draw(st.integers(1, n))
    index = draw.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(nodes, index, size)
    assert proof == _path(index, data[:size])
    root = _mth(data[:size])
    assert merkle.verify_inclusion(index, size, merkle.leaf_hash(data[index]), proof, root)
    old = draw.draw(st.integers(1, size))
    cproof = merkle.consistency_proof(nodes, old, size)
    assert cproof == ([] if old == size else _subproof(old, data[:size], True))
    assert merkle.verify_consistency(old, size, cproof, _mth(data[:old]), root)
    wrong_old = _mth([*data[: old - 1], data[old - 1] + b"!"])
    if old < size:
        assert not merkle.verify_consistency(old, size, cproof, wrong_old, root)


def test_compact_range_round_trip() -> None:
    compact = merkle.CompactRange()
    for x in LEAVES:
        compact.append(merkle.leaf_hash(x))
        again = merkle.CompactRange.unpack(compact.size, compact.packed())
        assert again.root() == compact.root()
    with pytest.raises(ValueError):
        merkle.CompactRange(3, [bytes(32)])
