"""The PKCS#11 provider: AES-256 key-encryption keys that never leave an HSM token.

A KEK is an AES secret key object with the URI's label (``object=``), created ``SENSITIVE`` and
not ``EXTRACTABLE``. Its ``CKA_ID`` is a 4-byte big-endian version followed by 4 random bytes;
the highest version is current, and the hex ``CKA_ID`` is the KEK id recorded in envelopes.
Data keys are wrapped on the token with ``CKM_AES_GCM`` (12-byte random IV, 128-bit tag, the
envelope context as AAD); what is stored is ``IV || ciphertext || tag``. Retiring a KEK destroys
the key object, so nothing it wrapped can be unwrapped any more.
"""

from __future__ import annotations

import secrets
from typing import Any

from modelseal.crypto.pkcs11_token import Pkcs11Uri, parse_uri, require_binding, session
from modelseal.crypto.providers import WrappedKey
from modelseal.errors import ProviderError, UnwrapError

NAME = "pkcs11"


class Pkcs11Provider:
    """KEKs on a PKCS#11 token (tested against SoftHSM2)."""

    def __init__(self, uri: str | Pkcs11Uri) -> None:
        require_binding()
        self._uri = parse_uri(uri) if isinstance(uri, str) else uri
        if not self._uri.object_label:
            raise ProviderError("the PKCS#11 URI names no key", hint="add ;object=LABEL to the URI")
        self._label: str = self._uri.object_label

    @classmethod
    def create(cls, uri: str | Pkcs11Uri) -> Pkcs11Provider:
        """Generate the first (or next) AES-256 KEK with the URI's label on the token."""
        provider = cls(uri)
        provider.add_kek()
        return provider

    @property
    def name(self) -> str:
        """``pkcs11``, the provider scheme recorded in envelopes."""
        return NAME

    def _keys(self, s: Any) -> dict[str, Any]:
        from pkcs11 import Attribute, ObjectClass

        found = s.get_objects(
            {Attribute.LABEL: self._label, Attribute.CLASS: ObjectClass.SECRET_KEY}
        )
        return {bytes(k[Attribute.ID]).hex(): k for k in found}

    @staticmethod
    def _version(kek_id: str) -> int:
        return int(kek_id[:8], 16) if len(kek_id) == 16 else -1

    def _current(self, s: Any) -> tuple[str, Any]:
        keys = self._keys(s)
        if not keys:
            raise ProviderError(
                f"no key-encryption key {self._label!r} on {self._uri.describe()}",
                hint=f"create one: modelseal keys create --kek '{self._uri.describe()}'",
            )
        kek_id = max(keys, key=self._version)
        return kek_id, keys[kek_id]

    def current_kek_id(self) -> str:
        """The id (hex ``CKA_ID``) of the newest KEK with the URI's label."""
        with session(self._uri) as s:
            return self._current(s)[0]

    def kek_ids(self) -> frozenset[str]:
        """The id (hex ``CKA_ID``) of every KEK on the token with the URI's label."""
        with session(self._uri) as s:
            return frozenset(self._keys(s))

    def wrap(self, data_key: bytes, *, context: bytes) -> WrappedKey:
        """AES-GCM on the token under the newest KEK, ``context`` as associated data."""
        from pkcs11 import Mechanism, PKCS11Error
        from pkcs11.mechanisms import GCMParams

        iv = secrets.token_bytes(12)
        with session(self._uri) as s:
            kek_id, key = self._current(s)
            try:
                sealed = key.encrypt(
                    data_key,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(iv, context, 128),
                )
            except PKCS11Error as exc:
                raise ProviderError(
                    f"the token refused to wrap with {self._label!r} ({type(exc).__name__})",
                    hint="the key must allow CKA_ENCRYPT with CKM_AES_GCM",
                ) from None
        return WrappedKey(NAME, kek_id, iv + bytes(sealed))

    def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        """Decrypt on the token under the KEK ``wrapped`` names.

        A missing KEK, a failed tag or a wrong ``context`` is an :class:`UnwrapError`; a key
        wrapped by another provider a :class:`ProviderError`.
        """
        from pkcs11 import Mechanism, PKCS11Error
        from pkcs11.mechanisms import GCMParams

        if wrapped.provider != NAME:
            raise ProviderError(
                f"this data key was wrapped by the {wrapped.provider!r} provider, not {NAME!r}",
                hint=f"pass --kek {wrapped.provider}:...",
            )
        with session(self._uri) as s:
            key = self._keys(s).get(wrapped.kek_id)
            if key is None:
                raise UnwrapError(
                    f"key-encryption key {self._label}/{wrapped.kek_id} is not on the token "
                    "(retired by a rotation, or another token)",
                    hint="use the token and key the artifact was encrypted for",
                )
            iv, body = wrapped.ciphertext[:12], wrapped.ciphertext[12:]
            try:
                plain = key.decrypt(
                    body, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, context, 128)
                )
            except PKCS11Error:
                raise UnwrapError(
                    f"the wrapped data key does not verify under {self._label}/{wrapped.kek_id}",
                    hint="the envelope was modified or belongs to another artifact",
                ) from None
        return bytes(plain)

    def add_kek(self) -> str:
        """Generate the next AES-256 KEK (sensitive, not extractable) with the URI's label on the
        token and make it current; returns its id.
        """
        from pkcs11 import Attribute, KeyType

        with session(self._uri, rw=True) as s:
            versions = [self._version(k) for k in self._keys(s)]
            version = max(versions, default=0) + 1
            key_id = version.to_bytes(4, "big") + secrets.token_bytes(4)
            s.generate_key(
                KeyType.AES,
                256,
                label=self._label,
                id=key_id,
                store=True,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.ENCRYPT: True,
                    Attribute.DECRYPT: True,
                },
            )
        return key_id.hex()

    def retire(self, kek_ids: frozenset[str]) -> None:
        """Destroy these KEKs on the token."""
        with session(self._uri, rw=True) as s:
            for kek_id, key in self._keys(s).items():
                if kek_id in kek_ids:
                    key.destroy()


def from_uri(uri: str, *, passphrase: bytes | None = None) -> Pkcs11Provider:
    """``pkcs11:token=...;object=LABEL[?module-path=...&pin-source=file:...]``."""
    return Pkcs11Provider(uri)
