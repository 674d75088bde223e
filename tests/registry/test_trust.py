"""Signer trust at push time: pinned signer keys, certificate bundles chained to the registry's
trust anchors, and certificate-signed pulls verified against a given anchor."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import modelseal
from modelseal.errors import SignatureMismatchError, UsageError
from modelseal.registry.backend import LocalBackend, pull, push
from modelseal.registry.models import VersionRef
from modelseal.registry.trusted_keys import AddTrustedKey, RemoveTrustedKey
from modelseal.signing.keys import generate_key, write_key_pair
from tests.interop._pki import build_pki
from tests.registry.fixtures import SignedModel, open_env


def _local(home: Path, url: str) -> LocalBackend:
    env = open_env(home, url)
    return LocalBackend(env.registry, env.admin)


def test_pinned_signer_keys(tmp_path: Path, signed_model: SignedModel, sqlite_url: str) -> None:
    home = tmp_path / "home"
    keys = home / "trust" / "keys"
    keys.mkdir(parents=True)
    other = tmp_path / "other"
    write_key_pair(generate_key("ed25519"), other.with_suffix(".pem"), other.with_suffix(".pub"),
                   passphrase=None)  # fmt: skip
    shutil.copy(other.with_suffix(".pub"), keys / "team.pub")
    b = _local(home, sqlite_url)
    sm = signed_model
    with pytest.raises(SignatureMismatchError, match="not trusted by this registry"):
        push(b, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    shutil.copy(sm.public_key, keys / "ours.pub")
    assert push(b, sm.path, name="m", signature=sm.signature, public_key=sm.public_key).version == 1
    b.close()


def test_certificate_signed_versions(tmp_path: Path, signed_model: SignedModel,
                                     sqlite_url: str) -> None:  # fmt: skip
    pki = build_pki(tmp_path / "pki")
    sm = signed_model
    sig = tmp_path / "cert.sig"
    modelseal.sign(sm.path, private_key=pki.leaf.key_path, signature=sig,
                   certificate=pki.leaf.cert_path,
                   certificate_chain=[pki.intermediate.cert_path])  # fmt: skip
    home = tmp_path / "home"
    b = _local(home, sqlite_url)
    with pytest.raises(UsageError, match="no certificate trust anchors"):
        push(b, sm.path, name="m", signature=sig)
    b.close()
    anchors = home / "trust" / "anchors"
    anchors.mkdir(parents=True)
    shutil.copy(pki.root.cert_path, anchors / "root.pem")
    b = _local(home, sqlite_url)
    info = push(b, sm.path, name="m", signature=sig)
    assert info.signer.startswith("certificate ") and info.public_key is None
    with pytest.raises(Exception, match="certificate-signed"):
        pull(b, VersionRef.parse("m"), tmp_path / "out")
    pull(b, VersionRef.parse("m"), tmp_path / "out", trust_anchors=[pki.root.cert_path])
    assert (tmp_path / "out" / "config.json").exists()
    b.close()


def test_trusted_keys_managed_in_the_registry(
    tmp_path: Path, signed_model: SignedModel, sqlite_url: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from modelseal.cli.main import main
    from modelseal.errors import ConflictError, InputError, NotFoundError

    home = tmp_path / "home"
    monkeypatch.setenv("MODELSEAL_HOME", str(home))
    monkeypatch.setenv("MODELSEAL_DB_URL", sqlite_url)
    sm = signed_model
    other = tmp_path / "other"
    write_key_pair(generate_key("ed25519"), other.with_suffix(".pem"), other.with_suffix(".pub"),
                   passphrase=None)  # fmt: skip
    assert main(["registry", "trust", "add", str(other.with_suffix(".pub")), "--name", "ops"]) == 0
    added = re.fullmatch(r"trusted signer key ([0-9a-f]+) \(ops\)\n", capsys.readouterr().out)
    assert added is not None
    key_id = added.group(1)
    assert main(["registry", "trust", "list"]) == 0
    assert "ops" in capsys.readouterr().out
    b = _local(home, sqlite_url)
    with pytest.raises(SignatureMismatchError, match="not trusted"):
        push(b, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    b.call(AddTrustedKey(pem=sm.public_key.read_text(), name="ours"))
    assert push(b, sm.path, name="m", signature=sm.signature, public_key=sm.public_key).version == 1
    with pytest.raises(ConflictError, match="already trusted"):
        b.call(AddTrustedKey(pem=sm.public_key.read_text(), name="again"))
    with pytest.raises(InputError, match="not a PEM public key"):
        b.call(AddTrustedKey(pem="nope", name="x"))
    with pytest.raises(InputError, match="invalid name"):
        b.call(AddTrustedKey(pem=other.with_suffix(".pub").read_text(), name=""))
    with pytest.raises(NotFoundError, match="no trusted key"):
        b.call(RemoveTrustedKey(key_id="0000"))
    b.close()
    assert main(["registry", "trust", "remove", key_id]) == 0
    assert main(["registry", "trust", "add", str(tmp_path / "missing.pub"), "--name", "x"]) == 2
    assert "cannot read public key" in capsys.readouterr().err
