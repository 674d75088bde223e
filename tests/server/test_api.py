"""The HTTP API and its client against a real server: the whole flow, and every client error a
4xx with a JSON body (never a 500)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from modelseal.access.principals import RevokeToken
from modelseal.cli.main import main
from modelseal.client import Client as RemoteBackend
from modelseal.errors import (
    AuthenticationError,
    ConflictError,
    DigestMismatchError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    SignatureMismatchError,
)
from modelseal.registry.audit_trail import (
    GetCheckpoint,
    ListAuditRecords,
    ProveConsistency,
    ProveInclusion,
)
from modelseal.registry.backend import pull, push
from modelseal.registry.models import Lineage, VersionRef
from modelseal.registry.uploads import BeginUpload
from modelseal.registry.versions import ListModels, ListVersions, ResolveVersion, SetAlias
from tests.policy.fixtures import admit
from tests.registry.fixtures import SignedModel
from tests.server.conftest import Running


def test_flow_over_http(server: Running, signed_model: SignedModel, tmp_path: Path) -> None:
    sm = signed_model
    ds = RemoteBackend(server.url, token=server.token_for("dana", "data-scientist"))
    ml = RemoteBackend(server.url, token=server.token_for("mel", "ml-engineer"))
    ops = RemoteBackend(server.url, token=server.token_for("otto", "devops"))
    info = push(ds, sm.path, name="fraud", signature=sm.signature, public_key=sm.public_key,
                metadata={"team": "risk"})  # fmt: skip
    assert info.version == 1 and info.created_by == "dana"
    push(ds, sm.path, name="fraud", signature=sm.signature, public_key=sm.public_key)
    admit(server.env.registry, server.env.admin, sm, "fraud", 1)  # the gate's decision for v1
    assert ml.call(SetAlias(name="fraud", alias="staging", version=2)).version == 2
    assert ops.call(SetAlias(name="fraud", alias="production", version=1)).version == 1
    got = pull(ops, VersionRef.parse("fraud@production"), tmp_path / "prod")
    assert got.version == 1 and (tmp_path / "prod" / "config.json").exists()
    assert [m.aliases for m in ml.call(ListModels())] == [{"production": 1, "staging": 2}]
    assert [v.version for v in ml.call(ListVersions(name="fraud"))] == [1, 2]
    assert ml.call(ResolveVersion(name="fraud")).version == 2
    with pytest.raises(PermissionDeniedError, match=r"alias\.production"):
        ml.call(SetAlias(name="fraud", alias="production", version=2))
    with pytest.raises(PermissionDeniedError):
        pull(ds, VersionRef.parse("fraud"), tmp_path / "nope")
    with pytest.raises(NotFoundError, match="unknown model"):
        ml.call(ResolveVersion(name="other"))
    with pytest.raises(NotFoundError, match="no alias"):
        ml.call(ResolveVersion(name="fraud", alias="canary"))
    # The audit trail recorded who did what, and verifies.
    co = RemoteBackend(server.url, token=server.token_for("cora", "compliance-officer"))
    records = [r.model_dump() for r in co.call(ListAuditRecords(export=True))]
    moves = [
        (r["actor"], r["action"], r["outcome"]) for r in records if r["action"] == "alias.move"
    ]
    assert moves == [
        ("mel", "alias.move", "allowed"),
        ("otto", "alias.move", "allowed"),
        ("mel", "alias.move", "denied"),
    ]
    remote = [r for r in records if not r["actor"].startswith("local:")]
    assert remote and all(r["request_id"] and r["source"] == "127.0.0.1" for r in remote)
    note = co.call(GetCheckpoint())
    proof = co.call(ProveInclusion(index=0)).model_dump()
    from modelseal.audit import merkle
    from modelseal.audit.note import Checkpoint
    from modelseal.audit.record import AuditRecord

    cp = Checkpoint.parse(server.env.registry.audit.signer.verifier.verify(note))
    leaf = merkle.leaf_hash(
        AuditRecord(**{**proof["record"], "roles": tuple(proof["record"]["roles"])}).canonical()
    )
    assert merkle.verify_inclusion(
        0, cp.size, leaf, [bytes.fromhex(p) for p in proof["proof"]], cp.root
    )
    consistency = co.call(ProveConsistency(old=1))
    assert consistency.new_size == cp.size


def test_upload_rejections_over_http(
    server: Running, signed_model: SignedModel, tmp_path: Path
) -> None:
    sm = signed_model
    ds = RemoteBackend(server.url, token=server.token_for("dana", "data-scientist"))
    (sm.path / "tokenizer.txt").write_text("tampered\n")
    with pytest.raises(DigestMismatchError, match=r"tokenizer\.txt"):
        push(ds, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    from modelseal.signing.keys import generate_key, write_key_pair

    write_key_pair(generate_key("ed25519"), tmp_path / "k.pem", tmp_path / "k.pub", passphrase=None)
    (sm.path / "tokenizer.txt").write_text("a b c d e f\n")
    with pytest.raises(SignatureMismatchError):
        push(ds, sm.path, name="m", signature=sm.signature, public_key=tmp_path / "k.pub")
    (tmp_path / "k.pub").write_bytes(b"not a key")
    with pytest.raises(Exception, match="not a PEM public key"):
        push(ds, sm.path, name="m", signature=sm.signature, public_key=tmp_path / "k.pub")
    with pytest.raises(NotFoundError):
        ds.call(ListVersions(name="m"))  # nothing half-published


def test_authentication_errors(server: Running) -> None:
    good = server.token_for("alice", "ml-engineer")
    with pytest.raises(AuthenticationError, match="unknown token"):
        last = "a" if good[-1] != "a" else "b"  # always another token, never the same by chance
        RemoteBackend(server.url, token=good[:-1] + last).call(ListModels())
    with pytest.raises(AuthenticationError, match="malformed token"):
        RemoteBackend(server.url, token="hello").call(ListModels())
    with pytest.raises(AuthenticationError, match="no API token"):
        RemoteBackend(server.url, token=None)
    r = httpx.get(f"{server.url}/v1/models")
    assert r.status_code == 401 and r.json()["error"]["message"] == "authentication required"
    assert r.headers["www-authenticate"] == "Bearer"
    token_id = good.split("_")[1]
    server.env.registry.run(server.env.admin, RevokeToken(token_id=token_id))
    with pytest.raises(AuthenticationError, match="token revoked"):
        RemoteBackend(server.url, token=good).call(ListModels())
    with pytest.raises(ServerError, match="cannot reach"):
        RemoteBackend("http://127.0.0.1:9", token=good).call(ListModels())


BAD_REQUESTS = [
    ("GET", "/v1/models/no-such/versions", None, 404),
    ("GET", "/v1/models/bad%20name/versions", None, 400),
    ("GET", "/v1/models/m/resolve?version=0", None, 400),
    ("GET", "/v1/models/m/resolve?version=abc", None, 400),
    ("GET", "/v1/models/m/resolve?alias=NOT_OK", None, 400),
    ("GET", "/v1/models/m/download?version=99", None, 404),
    ("GET", "/v1/models/m/versions/1/files/..%2F..%2Fetc%2Fpasswd", None, 404),
    ("GET", "/v1/models/m/versions/1/files/nope.bin", None, 404),
    ("PUT", "/v1/models/m/aliases/staging", {"version": 42}, 404),
    ("PUT", "/v1/models/m/aliases/staging", {"version": "x"}, 400),
    ("PUT", "/v1/models/m/aliases/staging", None, 400),
    ("POST", "/v1/models/m/versions/1/delete", {}, 400),
    ("POST", "/v1/models/m/uploads", {"bundle": "{}"}, 400),
    ("POST", "/v1/models/m/uploads", {"bundle": "not json"}, 400),
    ("PUT", "/v1/uploads/nope/files/config.json", b"x", 404),
    ("POST", "/v1/uploads/nope/publish", None, 404),
    ("DELETE", "/v1/uploads/nope", None, 404),
    ("POST", "/v1/users", {"name": "../x"}, 400),
    ("POST", "/v1/users/nobody/roles", {"role": "admin"}, 404),
    ("POST", "/v1/users/root/roles", {"role": "wizard"}, 400),
    ("POST", "/v1/users/nobody/tokens", {}, 404),
    ("POST", "/v1/users/root/tokens", {"expires_in_seconds": -5}, 400),
    ("POST", "/v1/tokens/nope/revoke", None, 404),
    ("GET", "/v1/audit/proofs/inclusion?index=999", None, 400),
    ("GET", "/v1/audit/proofs/consistency?old=5&new=2", None, 400),
    ("GET", "/v1/audit/records?start=-1", None, 400),
    ("GET", "/v1/nothing-here", None, 404),
]


def test_every_client_error_is_a_json_4xx(server: Running, signed_model: SignedModel) -> None:
    token = server.token_for("root", "admin", "ml-engineer", "security-engineer",
                             "data-scientist", "compliance-officer")  # fmt: skip
    push(RemoteBackend(server.url, token=token), signed_model.path, name="m",
         signature=signed_model.signature, public_key=signed_model.public_key)  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        for method, path, body, status in BAD_REQUESTS:
            if isinstance(body, bytes):
                r = http.request(method, path, content=body)
            else:
                r = http.request(method, path, json=body)
            assert r.status_code == status, (method, path, r.status_code, r.text)
            error = r.json()["error"]
            assert error["message"] and "type" in error, (path, r.text)
        r = http.delete("/v1/models")
        assert r.status_code == 405 and r.json()["error"]["message"] == "method not allowed"
        # A conflict: deleting twice.
        r = http.post("/v1/models/m/versions/1/delete", json={"reason": "x"})
        assert r.status_code == 200
        r = http.post("/v1/models/m/versions/1/delete", json={"reason": "x"})
        assert r.status_code == 409 and r.json()["error"]["type"] == "ConflictError"
    with pytest.raises(ConflictError):
        pull(RemoteBackend(server.url, token=token), VersionRef.parse("m:1"), "/nonexistent/x")


def test_openapi_is_published(sqlite_server: Running) -> None:
    r = httpx.get(f"{sqlite_server.url}/openapi.json")
    paths = r.json()["paths"]
    assert "/v1/models/{name}/uploads" in paths and "/v1/audit/checkpoint" in paths
    assert httpx.get(f"{sqlite_server.url}/v1/health").json() == {"status": "ok"}


def test_cli_with_server(
    sqlite_server: Running, signed_model: SignedModel, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    sm = signed_model
    token_file = tmp_path / "token"
    token_file.write_text(sqlite_server.token_for("ana", "data-scientist", "ml-engineer") + "\n")
    monkeypatch.setenv("MODELSEAL_HOME", str(tmp_path / "client-home"))
    common = ["--server", sqlite_server.url, "--token-file", str(token_file)]
    assert main(["push", str(sm.path), "--name", "m", "--signature", str(sm.signature),
                 "--public-key", str(sm.public_key), *common]) == 0  # fmt: skip
    assert main(["alias", "set", "m", "staging", "1", *common]) == 0
    assert main(["pull", "m@staging", str(tmp_path / "out"), *common]) == 0
    assert main(["models", "list", "--json", *common]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("[") :])[0]["aliases"] == {"staging": 1}
    assert main(["alias", "set", "m", "production", "1", *common]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "permission alias.production missing" in err[0]
    assert main(["user", "create", "x", *common]) == 1
    assert main(["pull", "nope", str(tmp_path / "o2"), *common]) == 2
    monkeypatch.setenv("MODELSEAL_TOKEN", "msk_bad")
    assert main(["models", "list", "--server", sqlite_server.url]) == 1
    assert "authentication failed" in capsys.readouterr().err


def test_client_disconnect_mid_upload_leaves_nothing(
    sqlite_server: Running, signed_model: SignedModel
) -> None:
    import socket
    import time
    from urllib.parse import urlparse

    sm = signed_model
    token = sqlite_server.token_for("dana", "data-scientist")
    client = RemoteBackend(sqlite_server.url, token=token)
    upload = client.call(BeginUpload(
        name="m", bundle=sm.signature.read_text(), public_key=sm.public_key.read_text(),
        metadata={}, lineage=Lineage(),
    ))  # fmt: skip
    url = urlparse(sqlite_server.url)
    with socket.create_connection((url.hostname, url.port)) as raw:
        raw.sendall(
            f"PUT /v1/uploads/{upload.upload_id}/files/weights/model-00001.bin HTTP/1.1\r\n"
            f"Host: {url.hostname}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Length: 10000000\r\n\r\n".encode()
            + b"x" * 3_000_000
        )
    store = sqlite_server.env.registry.blobs
    deadline = time.monotonic() + 20
    while list(store.temporaries()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(store.temporaries())  # the partial blob was removed at once
    assert client.call(ListModels()) == []  # the server is fine, nothing was published
    client.close()
