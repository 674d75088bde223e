"""C2SP signed notes: the golang.org/x/mod sumdb/note known answer, checkpoints, key files."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelseal.audit import note
from modelseal.errors import KeyFileError, NoteError

# The reference vector of golang.org/x/mod/sumdb/note (note_test.go / package docs).
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
    "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def _go_signer() -> note.NoteSigner:
    return note.NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED))


def test_known_answer_sign_and_verify() -> None:
    signer = _go_signer()
    assert signer.verifier.encode() == GO_VKEY
    assert signer.sign(GO_TEXT) == GO_NOTE
    assert note.NoteVerifier.decode(GO_VKEY).verify(GO_NOTE) == GO_TEXT


def test_verifier_key_whose_base64_holds_a_plus() -> None:
    # From transparency-dev/formats note tests: the key material contains '+'.
    verifier = note.NoteVerifier.decode(
        "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    )
    assert verifier.name == "TEST"
    assert verifier.encode() == "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"


def test_tampered_note_is_rejected() -> None:
    verifier = note.NoteVerifier.decode(GO_VKEY)
    with pytest.raises(NoteError, match="does not verify"):
        verifier.verify(GO_NOTE.replace("cryptography", "cryptograph"))
    other = note.generate_signer("PeterNeumann")
    with pytest.raises(NoteError, match="not signed by"):
        verifier.verify(other.sign(GO_TEXT))
    for bad in [
        "",
        GO_TEXT,
        GO_TEXT + "\nnot a signature\n",
        GO_TEXT + "\n\u2014 a b c\n",
        GO_TEXT + "\n\u2014 PeterNeumann !!!\n",
        GO_TEXT + "\n\u2014 PeterNeumann AAA=\n",
    ]:
        with pytest.raises(NoteError):
            verifier.verify(bad)


@pytest.mark.parametrize(
    "vkey",
    [
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        "PeterNeumann+c74f20a3",
        "a+zz+AAAA",
        "PeterNeumann+c74f20a3+AhpjZQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys(vkey: str) -> None:
    with pytest.raises(NoteError):
        note.NoteVerifier.decode(vkey)


def test_checkpoint_round_trip() -> None:
    cp = note.Checkpoint("example.com/log", 12, bytes(range(32)))
    assert cp.text() == f"example.com/log\n12\n{base64.b64encode(bytes(range(32))).decode()}\n"
    assert note.Checkpoint.parse(cp.text()) == cp
    for bad in [
        "x\n-1\nAA==\n",
        "x\n01\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "x\n1\nAAAA\n",
        "\n1\nAA==\n",
        "x\n1\n",
    ]:
        with pytest.raises(NoteError):
            note.Checkpoint.parse(bad)


def test_key_file_is_private_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "log-key.pem"
    signer = note.load_or_create_signer(path, "modelseal.test/log")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert path.with_suffix(".vkey").read_text().strip() == signer.verifier.encode()
    again = note.load_or_create_signer(path, "ignored")
    assert again.name == "modelseal.test/log"
    assert again.verifier.encode() == signer.verifier.encode()
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        note.load_signer(path)
    with pytest.raises(KeyFileError, match="cannot read"):
        note.load_signer(tmp_path / "missing.pem")
    bogus = tmp_path / "bogus.pem"
    bogus.write_bytes(b"hello\n")
    os.chmod(bogus, 0o600)
    with pytest.raises(KeyFileError, match="not a modelseal note key"):
        note.load_signer(bogus)
    with pytest.raises(KeyFileError, match="invalid note key name"):
        note.generate_signer("has space")
