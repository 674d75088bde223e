"""The registry service on SQLite and on the real PostgreSQL: push, pull (verified), aliases,
tombstones, dedup, every rejection path, GC, and the audit trail that records all of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import modelseal
from modelseal.audit.verify import verify_log
from modelseal.errors import (
    ConflictError,
    DigestMismatchError,
    InputError,
    MalformedSignatureError,
    NotFoundError,
    OutputError,
    SignatureMismatchError,
    UsageError,
)
from modelseal.registry.backend import LocalBackend, pull, push
from modelseal.registry.gc import CollectGarbage
from modelseal.registry.models import Lineage, VersionRef
from modelseal.registry.receive import UploadFile
from modelseal.registry.uploads import AbortUpload, BeginUpload, PublishUpload
from modelseal.registry.versions import (
    DeleteVersion,
    ListModels,
    ListVersions,
    ResolveVersion,
    SetAlias,
)
from modelseal.signing.keys import generate_key, write_key_pair
from modelseal.store import db
from tests.policy.fixtures import admit
from tests.registry.fixtures import Env, SignedModel, make_signed_model


def backend(env: Env) -> LocalBackend:
    return LocalBackend(env.registry, env.admin)


def resolve(b: LocalBackend, text: str) -> int:
    ref = VersionRef.parse(text)
    return b.call(ResolveVersion(name=ref.model, version=ref.number, alias=ref.alias)).version


def numbers(b: LocalBackend, name: str) -> list[int]:
    return [v.version for v in b.call(ListVersions(name=name, include_deleted=True))]


def audit_actions(env: Env) -> list[tuple[str, str, str]]:
    with db.reading(env.engine()) as conn:
        return [(r.action, r.outcome, r.resource) for r in env.registry.audit.records(conn)]


def assert_log_verifies(env: Env) -> None:
    with db.reading(env.engine()) as conn:
        verify_log(conn, env.registry.audit.signer.verifier).raise_for_findings()


def blob_count(env: Env) -> int:
    return sum(1 for _ in env.registry.blobs.digests())


def test_push_pull_round_trip(registry: Env, signed_model: SignedModel, tmp_path: Path) -> None:
    b = backend(registry)
    info = push(
        b, signed_model.path, name="fraud", signature=signed_model.signature,
        public_key=signed_model.public_key, metadata={"team": "risk"},
        lineage=Lineage(training_data_digest="sha256:" + "0" * 64, code_revision="abc123"),
    )  # fmt: skip
    assert info.version == 1 and info.model == "fraud"
    expected = modelseal.verify(
        signed_model.path, signature=signed_model.signature, public_key=signed_model.public_key
    )
    assert info.root_digest.sha256 == expected.root_digest
    assert info.metadata == {"team": "risk"}
    assert info.lineage.code_revision == "abc123"
    assert {f.path for f in info.files} == {
        "config.json", "tokenizer.txt", "weights/model-00001.bin", "weights/model-00002.bin",
        "weights/empty.bin",
    }  # fmt: skip
    assert "ecdsa" in info.signer.lower() or "key" in info.signer
    dest = tmp_path / "out"
    got = pull(b, VersionRef.parse("fraud:1"), dest)
    assert got.version == 1
    for f in info.files:
        assert (dest / f.path).read_bytes() == (signed_model.path / f.path).read_bytes()
    # Latest, and pinning the right key, work too; a destination that exists is refused.
    pull(b, VersionRef.parse("fraud"), tmp_path / "out2", public_key=signed_model.public_key)
    with pytest.raises(OutputError):
        pull(b, VersionRef.parse("fraud"), dest)
    assert [m.name for m in b.call(ListModels())] == ["fraud"]
    assert ("version.publish", "allowed", "model/fraud/versions/1") in audit_actions(registry)
    assert ("model.create", "allowed", "model/fraud") in audit_actions(registry)
    assert_log_verifies(registry)


def test_versions_are_numbered_and_blobs_deduplicated(
    registry: Env, signed_model: SignedModel
) -> None:
    b = backend(registry)
    kw: dict[str, Any] = {"signature": signed_model.signature,
                          "public_key": signed_model.public_key}  # fmt: skip
    push(b, signed_model.path, name="m", **kw)
    before = blob_count(registry)
    push(b, signed_model.path, name="m", **kw)
    assert blob_count(registry) == before  # identical content stored once
    (signed_model.path / "config.json").write_text('{"hidden": 32}\n')
    signed_model.resign()
    v3 = push(b, signed_model.path, name="m", lineage=Lineage(parent_version=2), **kw)
    assert v3.version == 3 and v3.lineage.parent_version == 2
    assert blob_count(registry) == before + 1
    assert numbers(b, "m") == [1, 2, 3]
    with pytest.raises(NotFoundError, match="parent version 9"):
        push(b, signed_model.path, name="m", lineage=Lineage(parent_version=9), **kw)
    assert numbers(b, "m") == [1, 2, 3]


def test_aliases_move_and_roll_back(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    b = backend(registry)
    kw: dict[str, Any] = {"signature": signed_model.signature,
                          "public_key": signed_model.public_key}  # fmt: skip
    push(b, signed_model.path, name="m", **kw)
    push(b, signed_model.path, name="m", **kw)
    admit(registry.registry, registry.admin, signed_model, "m", 1, 2)
    b.call(SetAlias(name="m", alias="production", version=1))
    b.call(SetAlias(name="m", alias="production", version=2))
    assert resolve(b, "m@production") == 2
    b.call(SetAlias(name="m", alias="production", version=1))  # rollback
    assert resolve(b, "m@production") == 1
    assert b.call(ListModels())[0].aliases == {"production": 1}
    pull(b, VersionRef.parse("m@production"), tmp_path / "prod")
    with db.reading(registry.engine()) as conn:
        moves = [
            r.details for r in registry.registry.audit.records(conn) if r.action == "alias.move"
        ]
    assert moves == [
        {"alias": "production", "from": None, "to": 1},
        {"alias": "production", "from": 1, "to": 2},
        {"alias": "production", "from": 2, "to": 1},
    ]
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        resolve(b, "m@staging")
    with pytest.raises(NotFoundError, match="no version 7"):
        b.call(SetAlias(name="m", alias="staging", version=7))
    with pytest.raises(InputError, match="invalid alias"):
        b.call(SetAlias(name="m", alias="Not An Alias", version=1))
    with pytest.raises(InputError, match="invalid alias"):
        b.call(SetAlias(name="m", alias="latest", version=1))


def test_tombstone(registry: Env, signed_model: SignedModel, tmp_path: Path) -> None:
    b = backend(registry)
    kw: dict[str, Any] = {"signature": signed_model.signature,
                          "public_key": signed_model.public_key}  # fmt: skip
    push(b, signed_model.path, name="m", **kw)
    push(b, signed_model.path, name="m", **kw)
    b.call(SetAlias(name="m", alias="staging", version=2))
    gone = b.call(DeleteVersion(name="m", number=2, reason="found a backdoor"))
    assert gone.deleted and gone.delete_reason == "found a backdoor" and gone.aliases == []
    with pytest.raises(ConflictError, match="was deleted"):
        pull(b, VersionRef.parse("m:2"), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert resolve(b, "m") == 1  # latest live version
    with pytest.raises(ConflictError, match="already deleted"):
        b.call(DeleteVersion(name="m", number=2, reason="again"))
    with pytest.raises(ConflictError, match="was deleted"):
        b.call(SetAlias(name="m", alias="staging", version=2))
    every = b.call(ListVersions(name="m", include_deleted=True))
    assert [v.deleted for v in every] == [False, True]
    push(b, signed_model.path, name="m", **kw)
    assert numbers(b, "m") == [1, 2, 3]  # numbers never reused
    assert_log_verifies(registry)


def test_unknown_things(registry: Env, tmp_path: Path) -> None:
    b = backend(registry)
    with pytest.raises(NotFoundError, match="unknown model 'nope'"):
        resolve(b, "nope")
    with pytest.raises(NotFoundError):
        b.call(ListVersions(name="nope"))
    with pytest.raises(NotFoundError):
        pull(b, VersionRef.parse("nope:3"), tmp_path / "d")
    with pytest.raises(InputError, match="invalid model name"):
        VersionRef.parse("../etc")
    with pytest.raises(InputError, match="invalid version"):
        VersionRef.parse("m:0")


def test_modified_file_is_rejected_and_audited(registry: Env, signed_model: SignedModel) -> None:
    b = backend(registry)
    with open(signed_model.path / "weights" / "model-00002.bin", "r+b") as f:
        f.seek(100)
        byte = f.read(1)[0]
        f.seek(100)
        f.write(bytes([byte ^ 0x01]))  # always a change (a constant could equal what was there)
    with pytest.raises(DigestMismatchError, match="does not match its signed digest") as info:
        push(b, signed_model.path, name="m", signature=signed_model.signature,
             public_key=signed_model.public_key)  # fmt: skip
    assert info.value.exit_code == 1
    with pytest.raises(NotFoundError):
        b.call(ListVersions(name="m"))
    assert ("version.publish", "denied", "model/m") in audit_actions(registry)
    with db.reading(registry.engine()) as conn:
        assert not conn.execute(text("SELECT count(*) FROM uploads")).scalar()
    assert_log_verifies(registry)


def test_wrong_key_malformed_signature_and_missing_key(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    b = backend(registry)
    other = tmp_path / "other"
    write_key_pair(generate_key("ed25519"), other.with_suffix(".pem"), other.with_suffix(".pub"),
                   passphrase=None)  # fmt: skip
    with pytest.raises(SignatureMismatchError):
        push(b, signed_model.path, name="m", signature=signed_model.signature,
             public_key=other.with_suffix(".pub"))  # fmt: skip
    assert ("version.publish", "denied", "model/m") in audit_actions(registry)
    bad = tmp_path / "bad.sig"
    bad.write_text("{not json")
    with pytest.raises(MalformedSignatureError):
        push(b, signed_model.path, name="m", signature=bad, public_key=signed_model.public_key)
    with pytest.raises(UsageError, match="needs the signer's public key"):
        push(b, signed_model.path, name="m", signature=signed_model.signature)
    with pytest.raises(InputError, match="not a PEM public key"):
        push(b, signed_model.path, name="m", signature=signed_model.signature,
             public_key=signed_model.signature)  # fmt: skip
    with pytest.raises(InputError, match="does not exist"):
        push(b, tmp_path / "missing", name="m", signature=signed_model.signature)
    with pytest.raises(InputError, match="cannot read signature"):
        push(b, signed_model.path, name="m", signature=tmp_path / "missing.sig")


def test_upload_protocol_errors(registry: Env, signed_model: SignedModel) -> None:
    reg, admin = registry.registry, registry.admin
    upload = reg.run(admin, BeginUpload(
        name="m", bundle=signed_model.signature.read_text(),
        public_key=signed_model.public_key.read_text(),
    ))  # fmt: skip
    with pytest.raises(InputError, match="not a file of the signed model"):
        reg.receive(admin, UploadFile(upload_id=upload.upload_id, path="../../etc/passwd"),
                    [b"x"])  # fmt: skip
    with pytest.raises(ConflictError, match="upload incomplete"):
        reg.run(admin, PublishUpload(upload_id=upload.upload_id))
    with pytest.raises(NotFoundError, match="unknown upload"):
        reg.receive(admin, UploadFile(upload_id="nope", path="config.json"), [b"x"])
    from modelseal.access.roles import Principal

    stranger = Principal("someone-else", superuser=True)
    with pytest.raises(NotFoundError, match="unknown upload"):
        reg.run(stranger, PublishUpload(upload_id=upload.upload_id))
    with pytest.raises(InputError, match="metadata is too large"):
        reg.run(admin, BeginUpload(name="m", bundle="{}", metadata={"x": "y" * 70000}))
    reg.run(admin, AbortUpload(upload_id=upload.upload_id))
    with pytest.raises(NotFoundError):
        reg.run(admin, PublishUpload(upload_id=upload.upload_id))


def test_sharded_and_single_file_models(
    registry: Env, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    b = backend(registry)
    sharded = make_signed_model(tmp_path / "s", key_pair, shard_size=4096)
    info = push(b, sharded.path, name="sharded", signature=sharded.signature,
                public_key=sharded.public_key)  # fmt: skip
    assert "weights/empty.bin" in {f.path for f in info.files}
    pull(b, VersionRef.parse("sharded"), tmp_path / "s-out")
    assert (tmp_path / "s-out" / "weights" / "empty.bin").read_bytes() == b""
    single = tmp_path / "one.bin"
    single.write_bytes(b"weights" * 1000)
    modelseal.sign(single, private_key=key_pair[0], signature=tmp_path / "one.sig")
    info = push(b, single, name="single", signature=tmp_path / "one.sig", public_key=key_pair[1])
    assert [f.path for f in info.files] == ["."]
    pull(b, VersionRef.parse("single"), tmp_path / "one-out.bin")
    assert (tmp_path / "one-out.bin").read_bytes() == single.read_bytes()


def test_corrupted_blob_fails_the_pull(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    b = backend(registry)
    info = push(b, signed_model.path, name="m", signature=signed_model.signature,
                public_key=signed_model.public_key)  # fmt: skip
    blob = next(f.sha256 for f in info.files if f.path == "config.json")
    Path(registry.registry.blobs.path(blob)).write_bytes(b'{"evil": true}\n')
    with pytest.raises(Exception, match="does not match"):
        pull(b, VersionRef.parse("m"), tmp_path / "d")
    assert not (tmp_path / "d").exists()
    assert not list(tmp_path.glob(".d.partial-*"))


def test_gc_collects_orphans_only(registry: Env, signed_model: SignedModel) -> None:
    b = backend(registry)
    push(b, signed_model.path, name="m", signature=signed_model.signature,
         public_key=signed_model.public_key)  # fmt: skip
    live = blob_count(registry)
    orphan = registry.registry.blobs.put([b"orphaned by a crash"])
    b.call(BeginUpload(
        name="m", bundle=signed_model.signature.read_text(),
        public_key=signed_model.public_key.read_text(),
    ))  # fmt: skip
    report = b.call(CollectGarbage(grace_seconds=3600))  # all younger than the grace period
    assert report.blobs_deleted == 0 and registry.registry.blobs.exists(orphan.digest)
    report = b.call(CollectGarbage(grace_seconds=0))
    assert report.blobs_deleted == 1 and report.uploads_expired == 1
    assert not registry.registry.blobs.exists(orphan.digest)
    assert blob_count(registry) == live
    assert ("registry.gc", "allowed", "registry") in audit_actions(registry)
    assert_log_verifies(registry)


def test_list_json_shapes(registry: Env, signed_model: SignedModel) -> None:
    b = backend(registry)
    info = push(b, signed_model.path, name="m", signature=signed_model.signature,
                public_key=signed_model.public_key)  # fmt: skip
    data = b.call(ResolveVersion(name="m", version=1)).model_dump(mode="json")
    json.dumps(data)
    assert data["root_digest"]["sha256"] == info.root_digest.sha256 and data["bundle"]
    assert b.call(ListModels())[0].model_dump(mode="json")["latest_version"] == 1


def test_longer_than_signed_is_cut_off(
    registry: Env, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    sharded = make_signed_model(tmp_path / "s", key_pair, shard_size=4096)
    with open(sharded.path / "weights" / "model-00002.bin", "ab") as f:
        f.write(b"\0" * 100_000)
    with pytest.raises(DigestMismatchError, match="longer than its signed size"):
        push(backend(registry), sharded.path, name="m", signature=sharded.signature,
             public_key=sharded.public_key)  # fmt: skip
    assert not list(registry.registry.blobs.temporaries())
    assert ("version.publish", "denied", "model/m") in audit_actions(registry)
