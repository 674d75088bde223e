"""RFC 6962 Merkle tree hashing, proofs and proof verification.

Leaf hash ``SHA-256(0x00 || leaf)``, interior node ``SHA-256(0x01 || left || right)``, and a tree of
``n`` leaves splits at the largest power of two smaller than ``n``. Proof generation works over a
:class:`NodeSource` that returns the hash of any *perfect* subtree (``2**level`` leaves starting
at ``index * 2**level``), so a log that stores those nodes answers a proof with O(log n) reads.
Verification follows RFC 9162 section 2.1.3.2 and 2.1.4.2 (the same trees and proofs as RFC 6962).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class NodeSource(Protocol):
    """Returns the hash of the perfect subtree at ``(level, index)``; raises ``KeyError`` if the
    subtree is not (yet) complete."""

    def __call__(self, level: int, index: int) -> bytes:
        """The hash of the subtree at ``(level, index)``."""


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of already leaf-hashed ``leaves`` (``EMPTY_ROOT`` for none)."""
    compact = CompactRange()
    for leaf in leaves:
        compact.append(leaf)
    return compact.root()


class CompactRange:
    """The right edge of a growing tree: the roots of its perfect subtrees, largest first.

    Appending a leaf returns the perfect nodes it completed, as ``(level, index, hash)``, so a
    store can keep every perfect node with amortized two writes per leaf.
    """

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if len(peaks) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} peaks")
        self.size = size
        self.peaks: list[bytes] = list(peaks)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; the nodes it completes, as (level, index, hash)."""
        created = [(0, self.size, leaf)]
        node, level, index = leaf, 0, self.size
        while index & 1:
            node = node_hash(self.peaks.pop(), node)
            level, index = level + 1, index >> 1
            created.append((level, index, node))
        self.peaks.append(node)
        self.size += 1
        return created

    def root(self) -> bytes:
        """The root hash of the leaves appended so far."""
        if not self.peaks:
            return EMPTY_ROOT
        node = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            node = node_hash(peak, node)
        return node

    def packed(self) -> bytes:
        """The range's hashes as bytes (stored with the tree head)."""
        return b"".join(self.peaks)

    @classmethod
    def unpack(cls, size: int, packed: bytes) -> CompactRange:
        """The range of a tree of ``size`` leaves from :meth:`packed` bytes."""
        peaks = [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)]
        return cls(size, peaks)


def subtree_hash(nodes: NodeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range that is perfect and aligned or ends at the tree's edge."""
    n = end - start
    if n <= 0:
        raise ValueError("empty range")
    if n & (n - 1) == 0 and start % n == 0:
        return nodes(n.bit_length() - 1, start // n)
    k = split_point(n)
    return node_hash(subtree_hash(nodes, start, start + k), subtree_hash(nodes, start + k, end))


def inclusion_proof(nodes: NodeSource, index: int, size: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[size]), leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, end = 0, size
    # Walk down from the root, remembering siblings; the proof lists them bottom-up.
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(subtree_hash(nodes, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(nodes, start, start + k))
            start = start + k
    path.reverse()
    return path


def consistency_proof(nodes: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[new_size])."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    return _subproof(nodes, old_size, 0, new_size, True)


def _subproof(nodes: NodeSource, m: int, start: int, end: int, whole: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [subtree_hash(nodes, start, end)]
    k = split_point(n)
    if m <= k:
        return [
            *_subproof(nodes, m, start, start + k, whole),
            subtree_hash(nodes, start + k, end),
        ]
    return [*_subproof(nodes, m - k, start + k, end, False), subtree_hash(nodes, start, start + k)]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof; raises ``ValueError`` if it cannot be one."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    if len(leaf) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        raise ValueError("hashes must be 32 bytes")
    fn, sn = index, size - 1
    node = leaf
    for sibling in proof:
        if sn == 0:
            raise ValueError("proof is too long")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof is too short")
    return node


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree of ``size`` with
    ``root``."""
    try:
        return root_from_inclusion(index, size, leaf, proof) == root
    except ValueError:
        return False


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> bool:
    """Whether ``proof`` shows the tree ``(old_size, old_root)`` is a prefix of
    ``(new_size, new_root)``."""
    if old_size < 0 or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself on the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class MemoryNodes:
    """A :class:`NodeSource` over leaf hashes held in memory (tests, small exports)."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._compact = CompactRange()
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        """How many leaves the tree holds."""
        return self._compact.size

    def append(self, leaf: bytes) -> None:
        """Add a leaf."""
        for level, index, value in self._compact.append(leaf):
            self._nodes[(level, index)] = value

    def root(self) -> bytes:
        """The root hash."""
        return self._compact.root()

    def __call__(self, level: int, index: int) -> bytes:
        """The hash of node ``index`` at ``level``."""
        return self._nodes[(level, index)]


def cached(nodes: NodeSource) -> Callable[[int, int], bytes]:
    """Memoize a node source for the duration of one proof."""
    memo: dict[tuple[int, int], bytes] = {}

    def get(level: int, index: int) -> bytes:
        key = (level, index)
        if key not in memo:
            memo[key] = nodes(level, index)
        return memo[key]

    return get
