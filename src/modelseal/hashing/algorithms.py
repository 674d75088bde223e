"""The content hashes a manifest may use, by their OMS names."""

from __future__ import annotations

import hashlib
from typing import Protocol

from modelseal.errors import UnsupportedAlgorithmError

# OMS name -> digest size in bytes; "blake2b" is hashlib's default BLAKE2b-512 (as model_signing).
DIGEST_SIZES: dict[str, int] = {"sha256": 32, "blake2b": 64, "blake3": 32}
HASH_NAMES: tuple[str, ...] = tuple(DIGEST_SIZES)

# Accepted spellings on input; the manifest always records the OMS name.
_ALIASES = {"sha-256": "sha256", "blake2": "blake2b", "blake2b-512": "blake2b"}


class Hasher(Protocol):
    """The part of a hash object the engine uses (``hashlib`` and ``blake3`` objects fit)."""

    def update(self, data: bytes | memoryview, /) -> object:
        """Feed ``data`` into the hash."""
        ...

    def digest(self) -> bytes:
        """The digest of everything fed so far."""
        ...


def canonical_hash_name(name: str) -> str:
    """Return the OMS name for ``name`` or raise :class:`UnsupportedAlgorithmError`."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DIGEST_SIZES:
        raise UnsupportedAlgorithmError(
            f"unsupported hash algorithm {name!r}",
            hint=f"use one of: {', '.join(HASH_NAMES)}",
        )
    return key


def new_hasher(name: str, *, threads: int = 1) -> Hasher:
    """A fresh incremental hasher; ``threads`` > 1 lets BLAKE3 hash one large buffer in parallel."""
    if name == "sha256":
        return hashlib.sha256()
    if name == "blake2b":
        return hashlib.blake2b()
    if name == "blake3":
        import blake3

        max_threads = blake3.blake3.AUTO if threads > 1 else 1
        hasher: Hasher = blake3.blake3(max_threads=max_threads)
        return hasher
    raise UnsupportedAlgorithmError(f"unsupported hash algorithm {name!r}")
