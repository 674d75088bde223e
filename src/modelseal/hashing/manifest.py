"""The manifest: every file (or file shard) of a model paired with its digest, in OMS v1.0 order.

Ordering and the root digest follow OpenSSF Model Signing v1.0: items are ordered by their path
split into POSIX components (so ``a/b`` sorts before ``a.txt``), shards of one file by start and
end offset; the root digest is SHA-256 over the concatenated raw item digests in that order.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

Method = Literal["files", "shards"]


@dataclasses.dataclass(frozen=True)
class ManifestItem:
    """One file (``start``/``end`` are ``None``) or one shard ``[start, end)`` of a file."""

    path: str
    digest: bytes
    start: int | None = None
    end: int | None = None

    @property
    def name(self) -> str:
        """The OMS resource name: the POSIX path, or ``path:start:end`` for a shard."""
        if self.start is None:
            return self.path
        return f"{self.path}:{self.start}:{self.end}"

    @property
    def sort_key(self) -> tuple[tuple[str, ...], int, int]:
        """Orders items by path components, then by shard range (the OMS resource order)."""
        return (tuple(self.path.split("/")), self.start or 0, self.end or 0)


@dataclasses.dataclass(frozen=True)
class Serialization:
    """How a manifest was made; recorded in the signature so a verifier can redo it."""

    method: Method = "files"
    hash_type: str = "sha256"
    shard_size: int | None = None
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()

    @property
    def resource_algorithm(self) -> str:
        """The per-resource ``algorithm`` string OMS writes (``sha256-sharded-N`` for shards)."""
        if self.method == "shards":
            return f"{self.hash_type}-sharded-{self.shard_size}"
        return self.hash_type

    def to_dict(self) -> dict[str, Any]:
        """The OMS ``serialization`` object (``shard_size`` only for shards, ``ignore_paths`` only
        when there are any).
        """
        out: dict[str, Any] = {
            "method": self.method,
            "hash_type": self.hash_type,
            "allow_symlinks": self.allow_symlinks,
        }
        if self.method == "shards":
            out["shard_size"] = self.shard_size
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        return out


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A model's items in canonical order, with how they were made."""

    model_name: str
    serialization: Serialization
    items: tuple[ManifestItem, ...]

    @classmethod
    def build(
        cls, model_name: str, serialization: Serialization, items: Iterable[ManifestItem]
    ) -> Manifest:
        """Sort ``items`` into canonical order."""
        return cls(model_name, serialization, tuple(sorted(items, key=lambda i: i.sort_key)))

    @property
    def root_digest(self) -> bytes:
        """The OMS root digest: SHA-256 over every item's digest, in manifest order."""
        return root_digest(item.digest for item in self.items)

    @property
    def total_bytes(self) -> int:
        """Bytes covered by shard items (files mode does not record sizes: 0)."""
        return sum((i.end or 0) - (i.start or 0) for i in self.items)

    def by_name(self) -> Mapping[str, ManifestItem]:
        """The items keyed by their OMS resource name."""
        return {item.name: item for item in self.items}

    def resources(self) -> list[dict[str, str]]:
        """The OMS ``resources`` list: each item's name, algorithm and hex digest, in order."""
        algorithm = self.serialization.resource_algorithm
        return [
            {"name": item.name, "algorithm": algorithm, "digest": item.digest.hex()}
            for item in self.items
        ]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: model name, root digest, serialization and resources."""
        return {
            "model_name": self.model_name,
            "root_digest": {"sha256": self.root_digest.hex()},
            "serialization": self.serialization.to_dict(),
            "resources": self.resources(),
        }


def root_digest(digests: Iterable[bytes]) -> bytes:
    """SHA-256 over the concatenation of item digests, in manifest order (OMS v1.0)."""
    hasher = hashlib.sha256()
    for digest in digests:
        hasher.update(digest)
    return hasher.digest()
