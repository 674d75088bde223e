"""Publishing an encrypted upload: the registry cannot unwrap the version's data key, so it
checks what it can: the key is bound to this exact version, and the plaintext digests the client
reports agree with the signed manifest."""

from __future__ import annotations

import re
from typing import Any

from modelseal.errors import InputError, VersionTakenError
from modelseal.registry.signature import CheckedSignature
from modelseal.registry.views import SealedVersion


def key_row(envelope: Any) -> dict[str, Any]:
    """The database row of a wrapped data key."""
    import base64

    return {
        "provider": envelope.wrapped.provider,
        "kek_id": envelope.wrapped.kek_id,
        "wrapped": base64.b64encode(envelope.wrapped.ciphertext).decode("ascii"),
        "ad_sha256": envelope.associated_data_sha256,
    }


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def seal(
    name: str,
    number: int,
    root: str,
    checked: CheckedSignature,
    received: dict[str, tuple[str, int, str | None, int | None]],
    sealed: SealedVersion,
) -> tuple[dict[str, tuple[str, int, str | None, int | None]], dict[str, Any]]:
    """Check an encrypted upload's wrapped key and plaintext digests; the file rows to store
    (plaintext digest as the file's identity, the ciphertext blob as ``stored``) and the key row.
    The registry cannot unwrap the key: it checks the key claims this exact version."""
    from modelseal.crypto import envelope as env
    from modelseal.registry import encryption as enc

    if sealed.version != number:
        raise VersionTakenError(
            f"version {sealed.version} of {name!r} is taken; the next is {number}",
            hint="wrap the data key for the next number and publish again",
            next_version=number,
        )
    envelope = env.from_dict(sealed.envelope, where="the version's envelope")
    want = env.ad_digest(enc.version_associated_data(name, number, root))
    if envelope.associated_data_sha256 != want:
        raise InputError(
            f"the wrapped data key was not made for {name}:{number} (sha256:{root[:16]}...)",
            hint="wrap the data key for this model, version and manifest digest",
        )
    if set(sealed.plaintext_sha256) != set(received):
        raise InputError(
            "the plaintext digests do not list exactly the uploaded files",
            hint="push again",
        )
    signed = enc.SignedFiles.from_statement(checked.statement)
    rows: dict[str, tuple[str, int, str | None, int | None]] = {}
    for path, (stored, size, _, stored_size) in received.items():
        claimed = sealed.plaintext_sha256[path].lower()
        if not re.fullmatch(r"[0-9a-f]{64}", claimed):
            raise InputError(f"invalid plaintext digest for {path!r}", hint="64 hex digits")
        known = signed.digest_of(path) or (_EMPTY_SHA256 if size == 0 else None)
        if known is not None and claimed != known:
            raise enc.mismatch(path)
        rows[path] = (claimed, size, stored, stored_size)
    return rows, key_row(envelope)
