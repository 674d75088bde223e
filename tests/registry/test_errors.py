"""The remaining user-reachable error paths of the registry: configuration, URLs, lineage, key
hints, vanished blobs, unsafe paths, non-registry servers, an empty audit database."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from modelseal.access.principals import CreateToken
from modelseal.cli.main import main
from modelseal.client import Client
from modelseal.errors import (
    ConflictError,
    DatabaseError,
    InputError,
    OutputError,
    ServerError,
    SignatureMismatchError,
)
from modelseal.registry.backend import LocalBackend, push
from modelseal.registry.config import RegistryConfig
from modelseal.registry.models import Lineage, VersionRef
from modelseal.registry.receive import UploadFile
from modelseal.registry.transfer import model_file, safe_destination
from modelseal.registry.uploads import BeginUpload, PublishUpload
from modelseal.registry.versions import ListModels, ResolveVersion
from modelseal.store import db
from tests.registry.fixtures import Env, SignedModel


def test_config_file_errors_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MODELSEAL_DB_URL", "MODELSEAL_BLOB_URL", "MODELSEAL_SERVER"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text('[registry]\ndb_url = "sqlite:///from-file.db"\n')
    assert RegistryConfig.resolve(home=home).db_url == "sqlite:///from-file.db"
    monkeypatch.setenv("MODELSEAL_DB_URL", "sqlite:///from-env.db")
    assert RegistryConfig.resolve(home=home).db_url == "sqlite:///from-env.db"
    assert (
        RegistryConfig.resolve(home=home, db_url="sqlite:///flag.db").db_url == "sqlite:///flag.db"
    )
    (home / "config.toml").write_text("not = [toml")
    with pytest.raises(InputError, match="not valid TOML"):
        RegistryConfig.resolve(home=home)
    (home / "config.toml").write_text('registry = "x"\n')
    with pytest.raises(InputError, match=r"\[registry\] must be a table"):
        RegistryConfig.resolve(home=home)
    (home / "config.toml").unlink()
    (home / "config.toml").mkdir()
    with pytest.raises(InputError, match="cannot read"):
        RegistryConfig.resolve(home=home)


def test_database_url_errors() -> None:
    with pytest.raises(DatabaseError, match="invalid database URL"):
        db.create_engine("postgresql+psycopg://user@host:notaport/db")
    assert db.normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": "red"}, "unknown lineage field"),
        ({"parent_version": "3"}, "parent_version must be a version number"),
        ({"parent_version": True}, "parent_version must be a version number"),
        ({"code_revision": "x" * 201}, "code_revision must be a short string"),
        ({"training_data_digest": 5}, "training_data_digest must be a short string"),
    ],
)
def test_lineage_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Lineage.from_dict(data)


def _local(env: Env) -> LocalBackend:
    return LocalBackend(env.registry, env.admin)


def test_key_hint_mismatch(registry: Env, signed_model: SignedModel, tmp_path: Path) -> None:
    bundle = json.loads(signed_model.signature.read_text())
    bundle["verificationMaterial"]["publicKey"]["hint"] = "ab" * 32
    edited = tmp_path / "edited.sig"
    edited.write_text(json.dumps(bundle))
    with pytest.raises(SignatureMismatchError, match="hint does not match"):
        push(_local(registry), signed_model.path, name="m", signature=edited,
             public_key=signed_model.public_key)  # fmt: skip


def test_blob_vanishing_before_publish(registry: Env, signed_model: SignedModel) -> None:
    reg, admin, sm = registry.registry, registry.admin, signed_model
    upload = reg.run(admin, BeginUpload(name="m", bundle=sm.signature.read_text(),
                                        public_key=sm.public_key.read_text()))  # fmt: skip
    entries = [reg.receive(admin, UploadFile(upload_id=upload.upload_id, path=p),
                           [(sm.path / p).read_bytes()])
               for p in upload.files]  # fmt: skip
    reg.blobs.delete(entries[0].sha256)
    with pytest.raises(ConflictError, match="disappeared before publishing"):
        reg.run(admin, PublishUpload(upload_id=upload.upload_id))


def test_blob_store_write_failure(registry: Env, signed_model: SignedModel) -> None:
    if os.geteuid() == 0:
        incoming = Path(registry.registry.blobs.root) / "incoming"
        incoming.rename(incoming.with_name("gone"))
        incoming.write_text("a file where the directory was")
    else:  # pragma: no cover - root ignores permissions
        os.chmod(Path(registry.registry.blobs.root) / "incoming", 0o500)
    from modelseal.errors import BlobStoreError

    with pytest.raises(BlobStoreError, match="cannot write to the blob store"):
        registry.registry.blobs.put([b"data"])


def test_unsafe_paths(tmp_path: Path) -> None:
    for bad in ["../x", "/etc/passwd", "a/../../b", "a//b", "a\\b", "", "a/./b"]:
        with pytest.raises(InputError, match="unsafe file path"):
            safe_destination(tmp_path, bad)
    assert safe_destination(tmp_path, "a/b") == tmp_path / "a" / "b"
    model = tmp_path / "model"
    model.mkdir()
    (model / "link").symlink_to(tmp_path)
    with pytest.raises(InputError, match="outside the model directory"):
        model_file(model, "link/secret")


def test_pull_destination_parent_missing(registry: Env, signed_model: SignedModel,
                                         tmp_path: Path) -> None:  # fmt: skip
    from modelseal.registry.backend import pull

    b = _local(registry)
    push(b, signed_model.path, name="m", signature=signed_model.signature,
         public_key=signed_model.public_key)  # fmt: skip
    with pytest.raises(OutputError, match="does not exist"):
        pull(b, VersionRef.parse("m"), tmp_path / "no" / "such" / "dir")


def _fake_server(handler: httpx.MockTransport) -> Client:
    client = Client("http://registry.invalid", token="msk_x")
    client.http.close()
    client.http = httpx.Client(base_url="http://registry.invalid", transport=handler)
    return client


def test_not_a_registry_server() -> None:
    html = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>bad gateway"))
    with pytest.raises(ServerError, match="without an error body"):
        _fake_server(html).call(ListModels())
    garbage = httpx.MockTransport(lambda request: httpx.Response(200, json={"model": 1}))
    with pytest.raises(ServerError, match="answered ResolveVersion with an unexpected document"):
        _fake_server(garbage).call(ResolveVersion(name="m"))
    token = httpx.MockTransport(
        lambda request: httpx.Response(200, json={"id": "x", "token": "??"})
    )
    with pytest.raises(ServerError, match="unexpected document"):
        _fake_server(token).call(CreateToken(name="u"))
    status = httpx.MockTransport(
        lambda request: httpx.Response(409, json={"error": {"type": "ConflictError",
                                                            "message": "busy", "hint": "later"}})
    )  # fmt: skip
    with pytest.raises(ConflictError, match="busy"):
        _fake_server(status).call(PublishUpload(upload_id="id"))


def test_audit_verify_without_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelseal.audit.note import load_or_create_signer

    home = tmp_path / "home"
    load_or_create_signer(home / "audit" / "log-key.pem", "x.test/log")
    monkeypatch.setenv("MODELSEAL_HOME", str(home))
    monkeypatch.delenv("MODELSEAL_DB_URL", raising=False)
    assert main(["audit", "verify"]) == 2
    assert "no registry database" in capsys.readouterr().err


def test_a_database_path_that_leads_nowhere_is_an_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "deeper" / "registry.db"
    code = main(["models", "list", "--home", str(tmp_path / "home"),
                 "--db-url", f"sqlite:///{target}"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot be made" in err[0], err
    assert not (tmp_path / "missing").exists()
    # The registry's own folder (one level) is still made on first use.
    assert main(["models", "list", "--home", str(tmp_path / "home"),
                 "--db-url", f"sqlite:///{tmp_path / 'fresh' / 'registry.db'}"]) == 0  # fmt: skip
