"""Key-encryption-key providers: the small interface envelope encryption needs.

A provider wraps and unwraps short secrets (data keys) under a key-encryption key (KEK) it
holds: a passphrase-protected local keyset (``local:PATH``), an AES key on a PKCS#11 token
(``pkcs11:token=...;object=...``) or an AWS KMS key (``aws-kms:KEY-ID-OR-ARN-OR-ALIAS``).
Adding another (Vault transit, a cloud KMS) is one module with a ``from_uri`` function returning
an object that satisfies :class:`KeyProvider` (and :class:`RotatingProvider` to support
``modelseal keys rotate`` without naming a new key).
"""

from __future__ import annotations

import dataclasses
from importlib import import_module
from typing import Protocol, runtime_checkable

from modelseal.errors import ProviderError


@dataclasses.dataclass(frozen=True, repr=False)
class WrappedKey:
    """A data key wrapped by a provider: which provider, which KEK, and the opaque ciphertext."""

    provider: str
    kek_id: str
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"WrappedKey(provider={self.provider!r}, kek_id={self.kek_id!r})"


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps data keys under its current KEK; unwraps under whichever KEK wrapped them."""

    @property
    def name(self) -> str:
        """The provider scheme recorded in envelopes (``local``, ``pkcs11``, ``aws-kms``)."""
        ...

    def wrap(self, data_key: bytes, *, context: bytes) -> WrappedKey:
        """Encrypt ``data_key`` with authenticated ``context``."""
        ...

    def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        """Decrypt; raises :class:`~modelseal.errors.UnwrapError` if it does not verify."""
        ...


@runtime_checkable
class RotatingProvider(KeyProvider, Protocol):
    """A provider that can make a new KEK current and later destroy the old ones."""

    def current_kek_id(self) -> str:
        """The id of the KEK :meth:`wrap` uses now."""
        ...

    def add_kek(self) -> str:
        """Create a new KEK and make it current (old KEKs still unwrap); returns its id."""
        ...

    def retire(self, kek_ids: frozenset[str]) -> None:
        """Destroy or disable these KEKs: what they wrapped stops unwrapping."""
        ...

    def kek_ids(self) -> frozenset[str]:
        """Every KEK this provider can unwrap with."""
        ...


SCHEMES: dict[str, str] = {
    "local": "modelseal.crypto.providers.local",
    "pkcs11": "modelseal.crypto.providers.pkcs11",
    "aws-kms": "modelseal.crypto.providers.aws_kms",
}


def open_provider(uri: str, *, passphrase: str | bytes | None = None) -> KeyProvider:
    """The provider a URI names, e.g. ``local:kek.json``, ``pkcs11:token=t;object=kek``;
    ``passphrase`` (str as UTF-8, or bytes) opens a protected local KEK or logs in a token."""
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    scheme = uri.split(":", 1)[0] if ":" in uri else ""
    module = SCHEMES.get(scheme)
    if module is None:
        raise ProviderError(
            f"unknown key provider {uri.split(':', 1)[0]!r}",
            hint="use local:PATH, pkcs11:token=...;object=..., or aws-kms:KEY-ID",
        )
    provider: KeyProvider = import_module(module).from_uri(uri, passphrase=passphrase)
    return provider
