"""The local provider: AES-256-GCM key-encryption keys in a passphrase-protected keyset file.

The file is a protected keyset (scrypt or argon2id, see :mod:`modelseal.crypto.protected`)
holding Tink ``AesGcmKey`` keys. Wrapping uses the primary key and Tink's RAW AES-GCM layout
(12-byte random IV || ciphertext || 16-byte tag, the context as associated data), so the same
keyset opened in Tink unwraps too. Rotation adds a key and makes it primary; retiring deletes
old keys from the file, after which what they wrapped cannot be unwrapped.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from modelseal.crypto import keyset as ks
from modelseal.crypto.providers import WrappedKey
from modelseal.errors import ProviderError, UnwrapError

NAME = "local"


class LocalProvider:
    """KEKs in a protected keyset file; every change is written back atomically (0600)."""

    def __init__(self, path: str | os.PathLike[str], *, passphrase: bytes | None) -> None:
        self._path = Path(path)
        self._passphrase = passphrase
        self._keyset = ks.read_keyset_file(self._path, passphrase=passphrase)
        self._protected = ks.is_protected_file(self._path)
        self._lock = threading.Lock()
        for entry in self._keyset.keys:
            ks.decode_aead_key(entry)  # a streaming keyset here is a usage mistake: say so now

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        passphrase: bytes | None,
        kdf: str = "scrypt",
        overwrite: bool = False,
    ) -> LocalProvider:
        """Make a new KEK file (passphrase ``None`` writes cleartext Tink JSON; avoid that)."""
        ks.write_keyset_file(
            path, ks.new_aead_keyset(), passphrase=passphrase, kdf=kdf, overwrite=overwrite
        )
        return cls(path, passphrase=passphrase)

    @property
    def name(self) -> str:
        """``local``, the provider scheme recorded in envelopes."""
        return NAME

    def current_kek_id(self) -> str:
        """The primary key's id (decimal), the KEK :meth:`wrap` uses."""
        return str(self._keyset.primary_key_id)

    def kek_ids(self) -> frozenset[str]:
        """The id (decimal) of every key in the keyset file."""
        return frozenset(str(k) for k in self._keyset.key_ids())

    def wrap(self, data_key: bytes, *, context: bytes) -> WrappedKey:
        """AES-GCM under the primary KEK with ``context`` as associated data.

        The ciphertext is Tink's RAW layout (IV 12 || ciphertext || tag), so ``tink.aead``
        unwraps it too.
        """
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        kek = ks.decode_aead_key(self._keyset.primary())
        iv = secrets.token_bytes(12)
        sealed = iv + AESGCM(kek.key_value).encrypt(iv, data_key, context)
        return WrappedKey(NAME, str(kek.key_id), sealed)

    def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        """Decrypt under the KEK ``wrapped`` names.

        A KEK not in the file, a failed tag or a wrong ``context`` is an :class:`UnwrapError`; a
        key wrapped by another provider a :class:`ProviderError`.
        """
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if wrapped.provider != NAME:
            raise ProviderError(
                f"this data key was wrapped by the {wrapped.provider!r} provider, not {NAME!r}",
                hint=f"pass --kek {wrapped.provider}:...",
            )
        entry = next((k for k in self._keyset.keys if str(k.key_id) == wrapped.kek_id), None)
        if entry is None:
            raise UnwrapError(
                f"key-encryption key {wrapped.kek_id} is not in {str(self._path)!r} "
                "(retired by a rotation, or another KEK file)",
                hint="use the KEK file the artifact was encrypted for",
            )
        kek = ks.decode_aead_key(entry)
        try:
            return AESGCM(kek.key_value).decrypt(
                wrapped.ciphertext[:12], wrapped.ciphertext[12:], context
            )
        except (InvalidTag, ValueError):
            raise UnwrapError(
                f"the wrapped data key does not verify under KEK {wrapped.kek_id}",
                hint="the envelope was modified or belongs to another artifact",
            ) from None

    def add_kek(self) -> str:
        """Add a fresh AES-256 KEK, make it primary and write the file back; returns its id."""
        with self._lock:
            self._keyset = ks.add_aead_key(self._keyset)
            self._save()
            return self.current_kek_id()

    def retire(self, kek_ids: frozenset[str]) -> None:
        """Remove these KEKs from the file (and the file itself once no key is left)."""
        with self._lock:
            drop = [k for k in self._keyset.key_ids() if str(k) in kek_ids]
            if len(drop) == len(self._keyset.keys):
                # Every key retired (rotated to another provider): the file itself goes.
                self._path.unlink()
                self._keyset = ks.Keyset(0, ())
                return
            self._keyset = ks.without_keys(self._keyset, drop)
            self._save()

    def _save(self) -> None:
        # Written back the way it was read: protected stays protected, cleartext stays cleartext.
        passphrase = self._passphrase if self._protected else None
        ks.write_keyset_file(self._path, self._keyset, passphrase=passphrase, overwrite=True)


def from_uri(uri: str, *, passphrase: bytes | None = None) -> LocalProvider:
    """``local:PATH``."""
    path = uri.split(":", 1)[1]
    if not path:
        raise ProviderError("local: needs a path", hint="e.g. --kek local:kek.json")
    return LocalProvider(path, passphrase=passphrase)
