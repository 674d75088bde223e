"""Tink keysets: the JSON keyset format (cleartext) and the binary ``Keyset`` protobuf.

A keyset is a list of keys with one primary. modelseal uses two key types, both with the RAW
output prefix:

* ``AesGcmHkdfStreamingKey`` -- streaming AEAD data keys (``AES256_GCM_HKDF_1MB`` by default);
* ``AesGcmKey`` -- AES-256-GCM key-encryption keys in the local passphrase-protected provider.

Parsing is strict: unknown key types, non-RAW prefixes, a missing or disabled primary and
unsupported parameters are :class:`~modelseal.errors.KeysetError`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelseal.crypto import protected, wire
from modelseal.errors import KeysetError
from modelseal.fsinput import read_regular

STREAMING_TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"
AES_GCM_TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmKey"

_STATUS = {"ENABLED": 1, "DISABLED": 2, "DESTROYED": 3}
_PREFIX = {"TINK": 1, "LEGACY": 2, "RAW": 3, "CRUNCHY": 4}
_MATERIAL = {"SYMMETRIC": 1, "ASYMMETRIC_PRIVATE": 2, "ASYMMETRIC_PUBLIC": 3, "REMOTE": 4}
# Tink's HashType enum values and the names cryptography uses for them.
HASH_TYPES = {1: "sha1", 3: "sha256", 4: "sha512"}
SEGMENT_1MB = 1 << 20
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7


@dataclasses.dataclass(frozen=True, repr=False)
class KeysetKey:
    """One entry of a keyset: the serialized key protobuf and its metadata."""

    key_id: int
    type_url: str
    value: bytes
    status: str = "ENABLED"
    output_prefix: str = "RAW"
    material_type: str = "SYMMETRIC"

    def __repr__(self) -> str:  # never show key material
        return f"KeysetKey(key_id={self.key_id}, type_url={self.type_url!r}, status={self.status})"


@dataclasses.dataclass(frozen=True, repr=False)
class StreamingKey:
    """The parameters and secret of one ``AesGcmHkdfStreamingKey``."""

    key_id: int
    key_value: bytes
    segment_size: int = SEGMENT_1MB
    derived_key_size: int = 32
    hkdf_hash: str = "sha256"

    def __repr__(self) -> str:
        return (
            f"StreamingKey(key_id={self.key_id}, segment_size={self.segment_size}, "
            f"derived_key_size={self.derived_key_size}, hkdf_hash={self.hkdf_hash})"
        )

    @property
    def header_size(self) -> int:
        """Header length byte + salt (as long as the derived key) + nonce prefix."""
        return 1 + self.derived_key_size + NONCE_PREFIX_SIZE


@dataclasses.dataclass(frozen=True, repr=False)
class AeadKey:
    """The secret of one ``AesGcmKey`` (Tink AES-GCM, 12-byte IV, 16-byte tag)."""

    key_id: int
    key_value: bytes

    def __repr__(self) -> str:
        return f"AeadKey(key_id={self.key_id})"


@dataclasses.dataclass(frozen=True)
class Keyset:
    """A Tink keyset; :meth:`primary` is the key new ciphertexts use."""

    primary_key_id: int
    keys: tuple[KeysetKey, ...]

    def primary(self) -> KeysetKey:
        """The key whose id is ``primary_key_id``; a :class:`KeysetError` if there is none."""
        for key in self.keys:
            if key.key_id == self.primary_key_id:
                return key
        raise KeysetError(  # unreachable for keysets built by the parsers below
            "the keyset has no primary key", hint="recreate it with 'modelseal keys create'"
        )

    def enabled(self) -> tuple[KeysetKey, ...]:
        """The keys whose status is ``ENABLED``, in keyset order."""
        return tuple(k for k in self.keys if k.status == "ENABLED")

    def key_ids(self) -> tuple[int, ...]:
        """The id of every key, enabled or not, in keyset order."""
        return tuple(k.key_id for k in self.keys)


def _new_key_id(taken: Iterable[int]) -> int:
    used = set(taken)
    while True:
        key_id = secrets.randbits(31) | 1  # positive and non-zero, like Tink's ids
        if key_id not in used:
            return key_id


# --- key protobufs -------------------------------------------------------------------------


def encode_streaming_key(key: StreamingKey) -> bytes:
    """Serialize as ``AesGcmHkdfStreamingKey`` (byte-identical to Tink's own encoding)."""
    hash_type = {v: k for k, v in HASH_TYPES.items()}[key.hkdf_hash]
    params = (
        wire.field_varint(1, key.segment_size)
        + wire.field_varint(2, key.derived_key_size)
        + wire.field_varint(3, hash_type)
    )
    return (
        wire.field_varint(1, 0) + wire.field_bytes(2, params) + wire.field_bytes(3, key.key_value)
    )


def decode_streaming_key(entry: KeysetKey) -> StreamingKey:
    """Parse and check one streaming key entry."""
    if entry.type_url != STREAMING_TYPE_URL:
        raise KeysetError(
            f"key {entry.key_id} is a {entry.type_url.rsplit('.', 1)[-1]}, "
            "not a streaming AEAD key",
            hint="use a keyset made by 'modelseal keys create' or Tink's AES256_GCM_HKDF_1MB",
        )
    try:
        msg = wire.parse(entry.value, {1: wire.VARINT, 2: wire.LEN, 3: wire.LEN})
        params = wire.parse(
            wire.last_bytes(msg, 2), {1: wire.VARINT, 2: wire.VARINT, 3: wire.VARINT}
        )
    except wire.WireError as exc:
        raise KeysetError(f"key {entry.key_id} is malformed ({exc})", hint=_RECREATE) from None
    version = wire.last_int(msg, 1)
    key_value = wire.last_bytes(msg, 3)
    segment_size = wire.last_int(params, 1)
    derived = wire.last_int(params, 2)
    hash_name = HASH_TYPES.get(wire.last_int(params, 3))
    problem = None
    if version != 0:
        problem = f"version {version} is not supported"
    elif derived not in (16, 32):
        problem = f"derived key size {derived} is not 16 or 32"
    elif hash_name is None:
        problem = "its HKDF hash is not SHA-1, SHA-256 or SHA-512"
    elif len(key_value) < derived:
        problem = "its key is shorter than the derived key"
    elif not 1 + derived + NONCE_PREFIX_SIZE + TAG_SIZE + 2 <= segment_size < 1 << 31:
        problem = f"segment size {segment_size} is out of range"
    if problem:
        raise KeysetError(f"streaming key {entry.key_id}: {problem}", hint=_RECREATE)
    assert hash_name is not None
    return StreamingKey(entry.key_id, key_value, segment_size, derived, hash_name)


def encode_aead_key(key_value: bytes) -> bytes:
    """Serialize as ``AesGcmKey`` (version 0, key_value field 3)."""
    return wire.field_varint(1, 0) + wire.field_bytes(3, key_value)


def decode_aead_key(entry: KeysetKey) -> AeadKey:
    """The AES-GCM key-encryption key in ``entry``.

    Another key type, a malformed value or a key size other than 128 or 256 bits is a
    :class:`KeysetError`.
    """
    if entry.type_url != AES_GCM_TYPE_URL:
        raise KeysetError(
            f"key {entry.key_id} is a {entry.type_url.rsplit('.', 1)[-1]}, not an AES-GCM key",
            hint="use a key-encryption keyset made by 'modelseal keys create --kek'",
        )
    try:
        msg = wire.parse(entry.value, {1: wire.VARINT, 3: wire.LEN})
    except wire.WireError as exc:
        raise KeysetError(f"key {entry.key_id} is malformed ({exc})", hint=_RECREATE) from None
    key_value = wire.last_bytes(msg, 3)
    if wire.last_int(msg, 1) != 0 or len(key_value) not in (16, 32):
        raise KeysetError(f"AES-GCM key {entry.key_id} is unsupported", hint=_RECREATE)
    return AeadKey(entry.key_id, key_value)


_RECREATE = "recreate the keyset with 'modelseal keys create'"


# --- building keysets ------------------------------------------------------------------------


def new_streaming_keyset(*, segment_size: int = SEGMENT_1MB, derived_key_size: int = 32) -> Keyset:
    """A fresh one-key keyset; the defaults are Tink's ``AES256_GCM_HKDF_1MB`` template."""
    key = StreamingKey(_new_key_id(()), secrets.token_bytes(32), segment_size, derived_key_size)
    entry = KeysetKey(key.key_id, STREAMING_TYPE_URL, encode_streaming_key(key))
    decode_streaming_key(entry)  # the same checks a reader applies
    return Keyset(key.key_id, (entry,))


def new_aead_keyset() -> Keyset:
    """A fresh one-key AES-256-GCM keyset (a key-encryption key)."""
    key_id = _new_key_id(())
    return Keyset(
        key_id, (KeysetKey(key_id, AES_GCM_TYPE_URL, encode_aead_key(secrets.token_bytes(32))),)
    )


def add_aead_key(keyset: Keyset) -> Keyset:
    """``keyset`` plus a new AES-256-GCM key that becomes the primary (old keys stay usable)."""
    key_id = _new_key_id(keyset.key_ids())
    entry = KeysetKey(key_id, AES_GCM_TYPE_URL, encode_aead_key(secrets.token_bytes(32)))
    return Keyset(key_id, (*keyset.keys, entry))


def without_keys(keyset: Keyset, key_ids: Iterable[int]) -> Keyset:
    """``keyset`` with the given keys deleted (their material gone); the primary must remain."""
    drop = set(key_ids)
    if keyset.primary_key_id in drop:
        raise KeysetError("cannot delete the primary key", hint="rotate to a new key first")
    return Keyset(keyset.primary_key_id, tuple(k for k in keyset.keys if k.key_id not in drop))


# --- JSON format ----------------------------------------------------------------------------


def to_json(keyset: Keyset) -> str:
    """Tink's JSON keyset format (cleartext: this string holds the secret keys)."""
    doc = {
        "primaryKeyId": keyset.primary_key_id,
        "key": [
            {
                "keyData": {
                    "typeUrl": k.type_url,
                    "value": base64.b64encode(k.value).decode("ascii"),
                    "keyMaterialType": k.material_type,
                },
                "status": k.status,
                "keyId": k.key_id,
                "outputPrefixType": k.output_prefix,
            }
            for k in keyset.keys
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _check(keyset: Keyset, where: str) -> Keyset:
    ids = keyset.key_ids()
    if not ids:
        raise KeysetError(f"{where} holds no keys", hint=_RECREATE)
    if len(set(ids)) != len(ids):
        raise KeysetError(f"{where} holds two keys with the same id", hint=_RECREATE)
    for k in keyset.keys:
        if k.output_prefix != "RAW":
            raise KeysetError(
                f"key {k.key_id} in {where} has output prefix {k.output_prefix}, not RAW",
                hint="streaming AEAD and modelseal key-encryption keys use the RAW prefix",
            )
        if k.material_type != "SYMMETRIC":
            raise KeysetError(f"key {k.key_id} in {where} is not a symmetric key", hint=_RECREATE)
    primary = [k for k in keyset.keys if k.key_id == keyset.primary_key_id]
    if not primary or primary[0].status != "ENABLED":
        raise KeysetError(f"{where} has no enabled primary key", hint=_RECREATE)
    return keyset


def from_json(text: str | bytes, *, where: str = "keyset") -> Keyset:
    """Parse a cleartext Tink JSON keyset (numbers may be strings, as Tink's writer emits)."""
    try:
        doc = json.loads(text)
        keys = []
        for item in doc["key"]:
            data = item["keyData"]
            keys.append(
                KeysetKey(
                    key_id=_uint32(item["keyId"]),
                    type_url=_str(data["typeUrl"]),
                    value=base64.b64decode(_str(data["value"]), validate=True),
                    status=_enum(item["status"], _STATUS),
                    output_prefix=_enum(item["outputPrefixType"], _PREFIX),
                    material_type=_enum(data.get("keyMaterialType", "SYMMETRIC"), _MATERIAL),
                )
            )
        keyset = Keyset(_uint32(doc["primaryKeyId"]), tuple(keys))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        if "encryptedKeyset" in str(
            text if isinstance(text, str) else text.decode("utf-8", "replace")
        ):
            raise KeysetError(
                f"{where} is a Tink encrypted keyset, which needs Tink's master key",
                hint="export it as a cleartext keyset or a modelseal protected keyset",
            ) from None
        raise KeysetError(f"{where} is not a Tink JSON keyset ({detail})", hint=_RECREATE) from None
    return _check(keyset, where)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _uint32(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise ValueError("key ids are unsigned 32-bit integers")
    return value


def _enum(value: Any, names: dict[str, int]) -> str:
    if isinstance(value, str) and value in names:
        return value
    raise ValueError(f"unknown value {value!r}")


# --- binary format (the Keyset protobuf) -----------------------------------------------------


def to_binary(keyset: Keyset) -> bytes:
    """The serialized ``google.crypto.tink.Keyset`` protobuf (Tink's BinaryKeysetWriter)."""
    out = wire.field_varint(1, keyset.primary_key_id)
    for k in keyset.keys:
        key_data = (
            wire.field_bytes(1, k.type_url.encode("utf-8"))
            + wire.field_bytes(2, k.value)
            + wire.field_varint(3, _MATERIAL[k.material_type])
        )
        entry = (
            wire.field_bytes(1, key_data)
            + wire.field_varint(2, _STATUS[k.status])
            + wire.field_varint(3, k.key_id)
            + wire.field_varint(4, _PREFIX[k.output_prefix])
        )
        out += wire.field_bytes(2, entry)
    return out


def from_binary(data: bytes, *, where: str = "keyset") -> Keyset:
    """Parse a serialized ``Keyset`` protobuf."""
    status_names = {v: k for k, v in _STATUS.items()}
    prefix_names = {v: k for k, v in _PREFIX.items()}
    material_names = {v: k for k, v in _MATERIAL.items()}
    try:
        msg = wire.parse(data, {1: wire.VARINT, 2: wire.LEN})
        keys = []
        for raw in msg.get(2, []):
            assert isinstance(raw, bytes)
            entry = wire.parse(raw, {1: wire.LEN, 2: wire.VARINT, 3: wire.VARINT, 4: wire.VARINT})
            key_data = wire.parse(
                wire.last_bytes(entry, 1), {1: wire.LEN, 2: wire.LEN, 3: wire.VARINT}
            )
            keys.append(
                KeysetKey(
                    key_id=_uint32(wire.last_int(entry, 3)),
                    type_url=wire.last_bytes(key_data, 1).decode("utf-8"),
                    value=wire.last_bytes(key_data, 2),
                    status=status_names[wire.last_int(entry, 2)],
                    output_prefix=prefix_names[wire.last_int(entry, 4)],
                    material_type=material_names[wire.last_int(key_data, 3)],
                )
            )
        keyset = Keyset(_uint32(wire.last_int(msg, 1)), tuple(keys))
    except (wire.WireError, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise KeysetError(f"{where} is not a Tink binary keyset ({exc})", hint=_RECREATE) from None
    return _check(keyset, where)


# --- files ----------------------------------------------------------------------------------


def primary_streaming_key(keyset: Keyset) -> StreamingKey:
    """The key new ciphertexts are written with."""
    return decode_streaming_key(keyset.primary())


def decryption_keys(keyset: Keyset) -> tuple[StreamingKey, ...]:
    """Every enabled streaming key, primary first (Tink tries each RAW key in turn)."""
    enabled = sorted(keyset.enabled(), key=lambda k: k.key_id != keyset.primary_key_id)
    return tuple(decode_streaming_key(k) for k in enabled)


MAX_KEYSET_FILE_BYTES = 16 << 20


def read_keyset_file(
    path: str | os.PathLike[str], *, passphrase: str | bytes | None = None
) -> Keyset:
    """Read a keyset file: a cleartext Tink JSON keyset or a modelseal protected keyset.

    ``passphrase`` (str as UTF-8, or bytes) opens a protected one."""
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    target = Path(path)
    try:
        data = read_regular(target, MAX_KEYSET_FILE_BYTES)  # never waits on a FIFO
    except OSError as exc:
        raise KeysetError(
            f"cannot read keyset {str(target)!r}: {exc.strerror}", hint="check the path"
        ) from None
    if protected.is_protected(data):
        where = f"keyset {str(target)!r}"
        return from_binary(protected.open_protected(data, passphrase, where=where), where=where)
    return from_json(data, where=f"keyset {str(target)!r}")


def is_protected_file(path: str | os.PathLike[str]) -> bool:
    """Whether the keyset file at ``path`` is passphrase-protected."""
    try:
        return protected.is_protected(read_regular(path, MAX_KEYSET_FILE_BYTES))
    except OSError:
        return False


def write_keyset_file(
    path: str | os.PathLike[str],
    keyset: Keyset,
    *,
    passphrase: str | bytes | None,
    kdf: str = "scrypt",
    overwrite: bool = False,
) -> None:
    """Write ``keyset`` (mode 0600): passphrase-protected (str as UTF-8, or bytes), or cleartext
    Tink JSON if ``None``."""
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    from modelseal.fsutil import atomic_write

    if passphrase is None:
        data = to_json(keyset).encode("utf-8")
    else:
        data = protected.seal_protected(to_binary(keyset), passphrase, kdf=kdf)
    atomic_write(path, data, mode=0o600, overwrite=overwrite)
