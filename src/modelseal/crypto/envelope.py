"""Envelope encryption: every artifact gets its own data key, wrapped by a key-encryption key.

The data key is a one-key Tink streaming keyset (``AES256_GCM_HKDF_1MB``); what a provider wraps
is its binary ``Keyset`` protobuf. The envelope is a small JSON document kept beside the
ciphertext (``FILE.envelope.json``, or inside an encrypted directory's header)::

    {"modelseal": "envelope/v1",
     "associatedDataSha256": HEX,
     "dataKey": {"provider": "local" | "pkcs11" | "aws-kms", "kekId": ID, "wrapped": B64}}

The wrap is bound (as AEAD associated data / KMS encryption context) to
``b"modelseal/data-key/v1\\0" + sha256(associated data)``, so a wrapped key only unwraps for
the artifact identity it was made for, and re-wrapping (rotation) needs no plaintext data.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any, BinaryIO

from modelseal.crypto import keyset as ks
from modelseal.crypto.providers import KeyProvider, WrappedKey
from modelseal.errors import DecryptionError, EnvelopeError

if TYPE_CHECKING:
    from modelseal.crypto.streaming import Writable

FORMAT = "envelope/v1"
CONTEXT_LABEL = b"modelseal/data-key/v1\x00"


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A wrapped data key and the digest of the associated data it was made for."""

    wrapped: WrappedKey
    associated_data_sha256: str

    def to_dict(self) -> dict[str, Any]:
        """The ``envelope/v1`` document as a JSON-ready dict."""
        return {
            "modelseal": FORMAT,
            "associatedDataSha256": self.associated_data_sha256,
            "dataKey": {
                "provider": self.wrapped.provider,
                "kekId": self.wrapped.kek_id,
                "wrapped": base64.b64encode(self.wrapped.ciphertext).decode("ascii"),
            },
        }

    def to_json(self) -> bytes:
        """The ``envelope/v1`` document as UTF-8 JSON (indented, keys sorted, final newline)."""
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @property
    def context(self) -> bytes:
        """The associated data of the wrap (see the module docstring)."""
        return CONTEXT_LABEL + bytes.fromhex(self.associated_data_sha256)


def from_dict(doc: Any, *, where: str = "envelope") -> Envelope:
    """Parse an envelope document strictly."""
    try:
        if not isinstance(doc, dict) or doc.get("modelseal") != FORMAT:
            raise ValueError(f"not a modelseal {FORMAT} document")
        key = doc["dataKey"]
        digest = doc["associatedDataSha256"]
        provider, kek_id = key["provider"], key["kekId"]
        if not all(isinstance(v, str) for v in (digest, provider, kek_id, key["wrapped"])):
            raise TypeError("fields must be strings")
        if len(bytes.fromhex(digest)) != 32:
            raise ValueError("associatedDataSha256 is not a SHA-256 digest")
        wrapped = base64.b64decode(key["wrapped"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise EnvelopeError(
            f"{where} is malformed ({detail})", hint="restore it from the encrypted artifact"
        ) from None
    return Envelope(WrappedKey(provider, kek_id, wrapped), digest.lower())


def from_json(data: bytes, *, where: str = "envelope") -> Envelope:
    """Parse an envelope document from JSON bytes, strictly; anything else is an
    :class:`~modelseal.errors.EnvelopeError` naming ``where``.
    """
    try:
        doc = json.loads(data)
    except ValueError:
        raise EnvelopeError(f"{where} is not JSON", hint="restore it from a backup") from None
    return from_dict(doc, where=where)


def ad_digest(associated_data: bytes) -> str:
    """The hex SHA-256 of ``associated_data``, as an envelope records it."""
    return hashlib.sha256(associated_data).hexdigest()


def seal(provider: KeyProvider, *, associated_data: bytes) -> tuple[ks.Keyset, Envelope]:
    """A fresh data key and its envelope, wrapped by ``provider``'s current key-encryption key."""
    data_key = ks.new_streaming_keyset()
    digest = ad_digest(associated_data)
    context = CONTEXT_LABEL + bytes.fromhex(digest)
    wrapped = provider.wrap(ks.to_binary(data_key), context=context)
    return data_key, Envelope(wrapped, digest)


def open_envelope(
    envelope: Envelope, provider: KeyProvider, *, associated_data: bytes
) -> ks.Keyset:
    """Unwrap the data key, after checking it was made for ``associated_data``."""
    if not hmac.compare_digest(envelope.associated_data_sha256, ad_digest(associated_data)):
        raise DecryptionError(
            "the associated data does not match this envelope (wrong model, version or digest)",
            hint="pass the associated data the artifact was encrypted with",
        )
    return ks.from_binary(
        provider.unwrap(envelope.wrapped, context=envelope.context), where="data key"
    )


def rewrap(envelope: Envelope, old: KeyProvider, new: KeyProvider) -> Envelope:
    """The same data key wrapped under ``new``'s current key-encryption key (no data touched)."""
    data_key = old.unwrap(envelope.wrapped, context=envelope.context)
    return Envelope(new.wrap(data_key, context=envelope.context), envelope.associated_data_sha256)


def encrypt_stream(
    src: BinaryIO,
    dst: Writable,
    *,
    provider: KeyProvider,
    associated_data: bytes,
    workers: int = 2,
) -> Envelope:
    """Encrypt a stream under a fresh data key wrapped by ``provider``; returns the envelope to
    store beside the ciphertext (e.g. one registry blob and its per-version wrapped key)."""
    from modelseal.crypto import streaming

    data_key, envelope = seal(provider, associated_data=associated_data)
    streaming.encrypt_stream(
        ks.primary_streaming_key(data_key),
        src,
        dst,
        associated_data=associated_data,
        workers=workers,
    )
    return envelope


def decrypt_stream(
    src: BinaryIO,
    dst: Writable,
    *,
    envelope: Envelope,
    provider: KeyProvider,
    associated_data: bytes,
    workers: int = 2,
) -> int:
    """Decrypt a stream made by :func:`encrypt_stream`. Plaintext of early segments reaches
    ``dst`` before the last one authenticates: give a temporary file or a buffer, and use it
    only if this returns (it raises :class:`DecryptionError` otherwise)."""
    from modelseal.crypto import streaming

    data_key = open_envelope(envelope, provider, associated_data=associated_data)
    return streaming.decrypt_stream(
        ks.decryption_keys(data_key), src, dst, associated_data=associated_data, workers=workers
    )
