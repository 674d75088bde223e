"""Every key type signs an OMS bundle that verifies with its public key and no other."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

import modelseal
from modelseal.errors import PassphraseError, SignatureMismatchError
from modelseal.signing.keys import ALGORITHMS, generate_key, load_private_key, write_key_pair


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_round_trips(algorithm: str, model_dir: Path, tmp_path: Path) -> None:
    key = generate_key(algorithm)
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    write_key_pair(key, priv, pub, passphrase=b"pass phrase")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in priv.read_bytes()
    sig = tmp_path / "m.sig"
    result = modelseal.sign(model_dir, private_key=priv, passphrase=b"pass phrase", signature=sig)
    assert result.signer.startswith(algorithm)
    bundle = json.loads(sig.read_text())
    assert bundle["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    verified = modelseal.verify(model_dir, signature=sig, public_key=pub)
    assert verified.root_digest == result.root_digest
    other = tmp_path / "other.pub"
    write_key_pair(generate_key(algorithm), tmp_path / "o.pem", other, passphrase=None)
    with pytest.raises(SignatureMismatchError):
        modelseal.verify(model_dir, signature=sig, public_key=other)


def test_passphrase_required_and_checked(tmp_path: Path) -> None:
    write_key_pair(generate_key("ed25519"), tmp_path / "k", tmp_path / "k.pub", passphrase=b"right")
    with pytest.raises(PassphraseError, match="passphrase-protected"):
        load_private_key(tmp_path / "k")
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        load_private_key(tmp_path / "k", b"wrong")
    assert load_private_key(tmp_path / "k", b"right") is not None


def test_key_objects_and_signers_are_accepted(model_dir: Path) -> None:
    from modelseal.signing.api import LocalKeySigner

    key = generate_key("ecdsa-p521")
    first = modelseal.sign(model_dir, private_key=key)
    second = modelseal.sign(model_dir, private_key=LocalKeySigner(key))
    for result in (first, second):
        modelseal.verify(model_dir, signature=result.bundle, public_key=key.public_key())


def test_wrong_passphrase_that_decrypts_to_garbage_is_still_a_wrong_passphrase(
    tmp_path: Path,
) -> None:
    """About one wrong passphrase in 256 passes the padding check; the key parser then fails.
    Search for such a passphrase for one key file and check the error names the passphrase."""
    from cryptography.hazmat.primitives import serialization

    write_key_pair(generate_key("ed25519"), tmp_path / "k", tmp_path / "k.pub", passphrase=b"right")
    data = (tmp_path / "k").read_bytes()
    for i in range(20_000):
        guess = b"wrong-%d" % i
        try:
            serialization.load_pem_private_key(data, password=guess)
        except ValueError as exc:
            if "password" not in str(exc).lower() and "decrypt" not in str(exc).lower():
                break
    else:  # pragma: no cover - (255/256)**20000: never in practice
        pytest.fail("no passphrase decrypted to well-padded garbage")
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        load_private_key(tmp_path / "k", guess)
