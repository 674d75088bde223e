"""Passphrase-protected keyset files: the envelope around a keyset's binary form.

Format (JSON, documented in docs/crypto.md)::

    {"modelseal": "protected-keyset/v1",
     "kdf": {"name": "scrypt", "salt": B64, "n": 32768, "r": 8, "p": 1}
            | {"name": "argon2id", "salt": B64, "time_cost": 3, "memory_cost": 65536,
               "parallelism": 2},
     "nonce": B64, "ciphertext": B64}

``ciphertext`` is AES-256-GCM, under the key the KDF derives from the passphrase, of the binary
Tink ``Keyset``; its associated data is the canonical JSON of ``{"modelseal", "kdf"}`` so the
KDF parameters cannot be weakened without the tag failing.

This module seals and opens the envelope over bytes; :mod:`modelseal.crypto.keyset` turns those
bytes into a keyset, so the envelope knows nothing of the keyset format.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

from modelseal.errors import KeysetError, PassphraseError

FORMAT = "protected-keyset/v1"
SCRYPT_DEFAULT = {"n": 1 << 15, "r": 8, "p": 1}
ARGON2_DEFAULT = {"time_cost": 3, "memory_cost": 65536, "parallelism": 2}
# Refuse parameters that would let a crafted file burn minutes of CPU or gigabytes of memory.
_SCRYPT_MAX_N = 1 << 20
_ARGON2_MAX_MEMORY = 1 << 21  # KiB
_ARGON2_MAX_TIME = 20


def is_protected(data: bytes) -> bool:
    """Whether ``data`` looks like a protected keyset (decided on the format marker alone)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("modelseal") == FORMAT


def _derive(passphrase: bytes, kdf: dict[str, Any]) -> bytes:
    salt = base64.b64decode(kdf["salt"], validate=True)
    if len(salt) < 16:
        raise ValueError("salt too short")
    if kdf["name"] == "scrypt":
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        n, r, p = (int(kdf[k]) for k in ("n", "r", "p"))
        if not (2 <= n <= _SCRYPT_MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
            raise ValueError("scrypt parameters out of range")
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)
    if kdf["name"] == "argon2id":
        try:
            from argon2.low_level import Type, hash_secret_raw
        except ImportError:
            raise KeysetError(
                "this keyset is protected with argon2id, which needs argon2-cffi",
                hint="pip install 'modelseal[crypto]'",
            ) from None
        t, m, par = (int(kdf[k]) for k in ("time_cost", "memory_cost", "parallelism"))
        if not (1 <= t <= _ARGON2_MAX_TIME and 8 <= m <= _ARGON2_MAX_MEMORY and 1 <= par <= 16):
            raise ValueError("argon2id parameters out of range")
        return hash_secret_raw(passphrase, salt, t, m, par, 32, Type.ID)
    raise ValueError(f"unknown kdf {kdf['name']!r}")


def _aad(kdf: dict[str, Any]) -> bytes:
    return json.dumps(
        {"modelseal": FORMAT, "kdf": kdf}, sort_keys=True, separators=(",", ":")
    ).encode()


def seal_protected(plaintext: bytes, passphrase: bytes, *, kdf: str = "scrypt") -> bytes:
    """Encrypt a binary keyset under ``passphrase`` into a protected keyset file's bytes.

    ``kdf`` is ``scrypt`` or ``argon2id``; an empty passphrase is a :class:`PassphraseError`.
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not passphrase:
        raise PassphraseError("empty passphrase", hint="choose a passphrase")
    salt = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
    if kdf == "scrypt":
        params: dict[str, Any] = {"name": "scrypt", "salt": salt, **SCRYPT_DEFAULT}
    elif kdf == "argon2id":
        params = {"name": "argon2id", "salt": salt, **ARGON2_DEFAULT}
    else:
        raise KeysetError(f"unknown KDF {kdf!r}", hint="use scrypt or argon2id")
    key = _derive(passphrase, params)
    nonce = secrets.token_bytes(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(params))
    doc = {
        "modelseal": FORMAT,
        "kdf": params,
        "nonce": base64.b64encode(nonce).decode("ascii"),
        "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def open_protected(data: bytes, passphrase: bytes | None, *, where: str) -> bytes:
    """Decrypt a protected keyset file's bytes into the binary keyset it holds.

    A missing or wrong passphrase (or a modified file) is a :class:`PassphraseError`; a
    malformed file a :class:`KeysetError`. ``where`` names the file in messages.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if passphrase is None:
        raise PassphraseError(
            f"{where} is passphrase-protected",
            hint="set MODELSEAL_PASSPHRASE or pass --passphrase-file",
        )
    try:
        doc = json.loads(data)
        kdf = doc["kdf"]
        if not isinstance(kdf, dict):
            raise TypeError("kdf is not an object")
        key = _derive(passphrase, kdf)
        nonce = base64.b64decode(doc["nonce"], validate=True)
        ciphertext = base64.b64decode(doc["ciphertext"], validate=True)
        if len(nonce) != 12:
            raise ValueError("nonce is not 12 bytes")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise KeysetError(
            f"{where} is a malformed protected keyset ({exc})",
            hint="restore the file from a backup",
        ) from None
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, _aad(kdf))
    except InvalidTag:
        raise PassphraseError(
            f"wrong passphrase for {where} (or the file was modified)",
            hint="check MODELSEAL_PASSPHRASE / --passphrase-file",
        ) from None
