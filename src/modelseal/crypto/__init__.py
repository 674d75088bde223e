"""Protect: encryption at rest for models (Tink-compatible streaming AEAD) and key management.

Public API (imported lazily; heavy provider libraries load only when a provider is used):

* :func:`encrypt`, :func:`decrypt` -- files and directories, with a keyset or a KEK provider;
* :func:`decrypt_to_memory` -- plaintext never touches disk (for verify/scan/load in memory);
* :func:`associated_data` -- bind a ciphertext to a model name, version and manifest digest;
* :func:`new_streaming_keyset`, :func:`read_keyset_file`, :func:`write_keyset_file` -- Tink
  JSON keysets (cleartext, or passphrase-protected with scrypt/argon2id);
* :func:`open_provider` -- ``local:``, ``pkcs11:`` or ``aws-kms:`` key-encryption keys;
* :func:`rotate` -- re-wrap data keys under a new KEK and retire the old one.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "encrypt": "modelseal.crypto.api",
    "decrypt": "modelseal.crypto.api",
    "decrypt_to_memory": "modelseal.crypto.api",
    "associated_data": "modelseal.crypto.api",
    "CryptoResult": "modelseal.crypto.api",
    "Keyset": "modelseal.crypto.keyset",
    "new_streaming_keyset": "modelseal.crypto.keyset",
    "read_keyset_file": "modelseal.crypto.keyset",
    "write_keyset_file": "modelseal.crypto.keyset",
    "KeyProvider": "modelseal.crypto.providers",
    "WrappedKey": "modelseal.crypto.providers",
    "open_provider": "modelseal.crypto.providers",
    "Envelope": "modelseal.crypto.envelope",
    "rotate": "modelseal.crypto.rotation",
    "DecryptionError": "modelseal.errors",
}

__all__ = [
    "CryptoResult",
    "DecryptionError",
    "Envelope",
    "KeyProvider",
    "Keyset",
    "WrappedKey",
    "associated_data",
    "decrypt",
    "decrypt_to_memory",
    "encrypt",
    "new_streaming_keyset",
    "open_provider",
    "read_keyset_file",
    "rotate",
    "write_keyset_file",
]

if TYPE_CHECKING:
    from modelseal.crypto.api import (
        CryptoResult,
        associated_data,
        decrypt,
        decrypt_to_memory,
        encrypt,
    )
    from modelseal.crypto.envelope import Envelope
    from modelseal.crypto.keyset import (
        Keyset,
        new_streaming_keyset,
        read_keyset_file,
        write_keyset_file,
    )
    from modelseal.crypto.providers import KeyProvider, WrappedKey, open_provider
    from modelseal.crypto.rotation import rotate
    from modelseal.errors import DecryptionError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelseal.crypto' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
