"""The errors the Protect capability raises (see :mod:`modelseal.errors` for exit codes).

A wrong key, tampered or truncated ciphertext, or wrong associated data is a verification
failure (exit 1); a malformed keyset, envelope or provider address is an input error (exit 2).
"""

from __future__ import annotations

from modelseal.errors import InputError, KeyFileError, VerificationError


class DecryptionError(VerificationError):
    """Ciphertext did not authenticate: wrong key, wrong associated data, or tampering (exit 1)."""


class KeysetError(KeyFileError):
    """A keyset file is malformed, of the wrong key type, or unusable (exit 2)."""


class EnvelopeError(InputError):
    """An envelope or encrypted-directory header is malformed (exit 2)."""


class ProviderError(InputError):
    """A key provider (local file, PKCS#11 token, AWS KMS) cannot be reached or used (exit 2)."""


class UnwrapError(VerificationError):
    """A wrapped data key does not unwrap under the given key-encryption key (exit 1)."""
