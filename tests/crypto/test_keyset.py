"""Keyset files: Tink JSON parsing, passphrase protection (scrypt, argon2id), strictness."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.crypto import keyset as ks
from modelseal.crypto import protected, wire
from modelseal.errors import KeysetError, PassphraseError


def doc(keyset: ks.Keyset) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(ks.to_json(keyset))
    return parsed


def test_json_round_trip_and_string_ids() -> None:
    keyset = ks.new_streaming_keyset()
    assert ks.from_json(ks.to_json(keyset)) == keyset
    d = doc(keyset)
    d["primaryKeyId"] = str(d["primaryKeyId"])
    d["key"][0]["keyId"] = str(d["key"][0]["keyId"])
    assert ks.from_json(json.dumps(d)) == keyset


def test_secrets_not_in_repr() -> None:
    keyset = ks.new_streaming_keyset()
    key = ks.primary_streaming_key(keyset)
    assert key.key_value.hex() not in repr(key)
    assert base64.b64encode(keyset.keys[0].value).decode() not in repr(keyset)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("primaryKeyId"), "missing"),
        (lambda d: d.update(key=[]), "no keys"),
        (lambda d: d.update(primaryKeyId=12345), "no enabled primary"),
        (lambda d: d["key"][0].update(status="DISABLED"), "no enabled primary"),
        (lambda d: d["key"][0].update(outputPrefixType="TINK"), "not RAW"),
        (lambda d: d["key"][0].update(status="SLEEPY"), "unknown value"),
        (lambda d: d["key"][0].update(keyId=-1), "unsigned"),
        (lambda d: d["key"][0]["keyData"].update(value="***"), "not a Tink JSON keyset"),
        (lambda d: d["key"].append(dict(d["key"][0])), "same id"),
        (
            lambda d: d["key"][0]["keyData"].update(keyMaterialType="ASYMMETRIC_PRIVATE"),
            "symmetric",
        ),
    ],
)
def test_malformed_json_keysets(mutate: Callable[[dict[str, Any]], object], message: str) -> None:
    d = doc(ks.new_streaming_keyset())
    mutate(d)
    with pytest.raises(KeysetError, match=message):
        ks.from_json(json.dumps(d))


def test_not_json_and_encrypted_tink_keysets() -> None:
    with pytest.raises(KeysetError, match="not a Tink JSON keyset"):
        ks.from_json(b"\x00garbage")
    with pytest.raises(KeysetError, match="Tink encrypted keyset"):
        ks.from_json('{"encryptedKeyset": "AAAA", "keysetInfo": {}}')


def entry_with(params: bytes, key_value: bytes = b"k" * 32, version: int = 0) -> ks.KeysetKey:
    value = (
        wire.field_varint(1, version) + wire.field_bytes(2, params) + wire.field_bytes(3, key_value)
    )
    return ks.KeysetKey(1, ks.STREAMING_TYPE_URL, value)


@pytest.mark.parametrize(
    ("params", "key_value", "version", "message"),
    [
        (
            wire.field_varint(1, 1 << 20) + wire.field_varint(2, 24) + wire.field_varint(3, 3),
            b"k" * 32,
            0,
            "derived key size",
        ),
        (
            wire.field_varint(1, 1 << 20) + wire.field_varint(2, 32) + wire.field_varint(3, 2),
            b"k" * 32,
            0,
            "HKDF hash",
        ),
        (
            wire.field_varint(1, 50) + wire.field_varint(2, 32) + wire.field_varint(3, 3),
            b"k" * 32,
            0,
            "segment size",
        ),
        (
            wire.field_varint(1, 1 << 20) + wire.field_varint(2, 32) + wire.field_varint(3, 3),
            b"k" * 16,
            0,
            "shorter",
        ),
        (
            wire.field_varint(1, 1 << 20) + wire.field_varint(2, 32) + wire.field_varint(3, 3),
            b"k" * 32,
            1,
            "version",
        ),
        (b"\x0f\x01", b"k" * 32, 0, "malformed"),
    ],
)
def test_unsupported_streaming_parameters(
    params: bytes, key_value: bytes, version: int, message: str
) -> None:
    with pytest.raises(KeysetError, match=message):
        ks.decode_streaming_key(entry_with(params, key_value, version))


def test_wrong_key_type() -> None:
    kek = ks.new_aead_keyset()
    with pytest.raises(KeysetError, match="not a streaming AEAD key"):
        ks.primary_streaming_key(kek)
    with pytest.raises(KeysetError, match="not an AES-GCM key"):
        ks.decode_aead_key(ks.new_streaming_keyset().keys[0])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_binary_parser_never_crashes(data: bytes) -> None:
    # Only KeysetError may escape; anything that parses is a well-formed keyset.
    try:
        parsed = ks.from_binary(data)
    except KeysetError:
        return
    assert parsed.primary() in parsed.enabled()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_json_parser_never_crashes(text: str) -> None:
    # Only KeysetError may escape; anything that parses is a well-formed keyset.
    try:
        parsed = ks.from_json(text)
    except KeysetError:
        return
    assert parsed.primary() in parsed.enabled()


@pytest.mark.parametrize("kdf", ["scrypt", "argon2id"])
def test_protected_keyset_round_trip(tmp_path: Path, kdf: str) -> None:
    keyset = ks.new_streaming_keyset()
    path = tmp_path / "k.json"
    ks.write_keyset_file(path, keyset, passphrase=b"pw", kdf=kdf)
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert base64.b64encode(keyset.keys[0].value).decode() not in text
    assert json.loads(text)["kdf"]["name"] == kdf
    assert ks.read_keyset_file(path, passphrase=b"pw") == keyset
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        ks.read_keyset_file(path, passphrase=b"nope")
    with pytest.raises(PassphraseError, match="passphrase-protected"):
        ks.read_keyset_file(path)


def test_protected_keyset_parameters_are_authenticated(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    ks.write_keyset_file(path, ks.new_streaming_keyset(), passphrase=b"pw")
    d = json.loads(path.read_text())
    d["kdf"]["n"] = 2  # a downgrade attempt: the tag covers the KDF parameters
    path.write_text(json.dumps(d))
    with pytest.raises(PassphraseError):
        ks.read_keyset_file(path, passphrase=b"pw")
    d["kdf"]["n"] = 1 << 30  # an absurd cost is refused before any work
    path.write_text(json.dumps(d))
    with pytest.raises(KeysetError, match="out of range"):
        ks.read_keyset_file(path, passphrase=b"pw")
    d["kdf"] = {"name": "md5", "salt": d["kdf"]["salt"]}
    path.write_text(json.dumps(d))
    with pytest.raises(KeysetError, match="unknown kdf"):
        ks.read_keyset_file(path, passphrase=b"pw")


def test_keyset_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeysetError, match="cannot read"):
        ks.read_keyset_file(tmp_path / "missing.json")
    ks.write_keyset_file(tmp_path / "k.json", ks.new_streaming_keyset(), passphrase=None)
    with pytest.raises(Exception, match="already exists"):
        ks.write_keyset_file(tmp_path / "k.json", ks.new_streaming_keyset(), passphrase=None)
    with pytest.raises(PassphraseError):
        protected.seal_protected(ks.to_binary(ks.new_streaming_keyset()), b"")
    with pytest.raises(KeysetError, match="unknown KDF"):
        protected.seal_protected(ks.to_binary(ks.new_streaming_keyset()), b"pw", kdf="pbkdf1")
