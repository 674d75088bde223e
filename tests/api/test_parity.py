"""Every registry operation works the same in process and over HTTP.

One scenario runs every operation of the catalogue twice, on two fresh registries: once in
process (:class:`LocalBackend`) and once through a real server (:class:`modelseal.client.Client`),
as the same user with the same roles. The answers must be equal once the values that are meant
to differ (times, generated ids and tokens, request ids, the caller's address) are masked. A
new operation fails this test until the scenario exercises it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from modelseal.access import principals as access_ops
from modelseal.access.roles import ROLES, Grant, Principal
from modelseal.client import Client
from modelseal.crypto.providers.local import LocalProvider
from modelseal.operation import Download, Operation
from modelseal.registry import (
    attestations,
    audit_trail,
    catalogue,
    datakeys,
    gc,
    trusted_keys,
    uploads,
)
from modelseal.registry import versions as version_ops
from modelseal.registry.backend import Backend, LocalBackend, push
from modelseal.registry.keys import rotate_version_keys
from modelseal.registry.models import Lineage
from modelseal.registry.receive import UploadFile
from tests.policy import fixtures as gate_fixtures
from tests.registry.fixtures import (
    SignedModel,
    drop_pg_schema,
    make_signed_model,
    new_pg_schema,
    open_env,
)
from tests.server.conftest import start_server, stop_server

USER = "parity"
_TIME = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\Z")
# Generated per registry or per request: ids, tokens, wrapped keys, the caller's address, and
# Merkle proofs (leaves hold record times).
_VOLATILE = {"request_id", "source", "upload_id", "token", "id", "kek_id", "kekId", "wrapped",
             "proof"}  # fmt: skip
_GENERATED = [(re.compile(r"token/[0-9a-f]{16}"), "token/<id>"),
              (re.compile(r"local:\d+"), "local:<kek>")]  # fmt: skip


class Recorder:
    """Runs operations on one backend and keeps what each answered (masked)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.answers: list[tuple[str, Any]] = []
        self.ran: set[str] = set()

    def __call__(self, operation: Operation[Any]) -> Any:
        answer = self.backend.call(operation)
        if isinstance(answer, Download):
            content = b"".join(answer.chunks)
            shown: Any = {"size": answer.size, "content": content}
        elif isinstance(answer, Iterator):
            answer = list(answer)
            shown = _mask(answer)
        elif isinstance(answer, str):  # a signed checkpoint: origin and tree size agree
            shown = answer.splitlines()[:2]
        else:
            shown = _mask(answer)
        self.ran.add(type(operation).__name__)
        self.answers.append((type(operation).__name__, shown))
        return answer

    def send(self, operation: UploadFile, data: bytes) -> Any:
        answer = self.backend.send(operation, [data], len(data))
        self.ran.add(type(operation).__name__)
        self.answers.append((type(operation).__name__, _mask(answer)))
        return answer


def _mask(value: Any) -> Any:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, dict):
        return {k: "<volatile>" if k in _VOLATILE else _mask(v) for k, v in sorted(value.items())}
    if isinstance(value, str):
        if _TIME.match(value):
            return "<time>"
        for pattern, replacement in _GENERATED:
            value = pattern.sub(replacement, value)
    return value


def scenario(run: Recorder, model: SignedModel, kek: LocalProvider, gate: Evidence) -> None:
    """Every operation of the catalogue, in an order that gives each something to work on."""
    pem = model.public_key.read_text()
    added = run(trusted_keys.AddTrustedKey(pem=pem, name="ci signer"))
    run(trusted_keys.ListTrustedKeys())
    # A push, one operation at a time.
    started = run(
        uploads.BeginUpload(name="fraud", bundle=model.signature.read_text(), public_key=pem,
                            metadata={"team": "risk"}, lineage=Lineage(code_revision="abc"))
    )  # fmt: skip
    for path in started.files:
        data = (model.path / path).read_bytes() if path != "." else model.path.read_bytes()
        run.send(UploadFile(upload_id=started.upload_id, path=path), data)
    run(uploads.GetUploadState(upload_id=started.upload_id))
    run(uploads.PublishUpload(upload_id=started.upload_id))
    # The gate's signed decision, stored with the version, lets it into production.
    run(trusted_keys.AddTrustedKey(pem=gate.public_pem, name="release gate", purpose="gate"))
    run(attestations.AttachAttestation(name="fraud", number=1, bundle=gate.bundle))
    run(attestations.ListAttestations(name="fraud", number=1))
    run(version_ops.SetAlias(name="fraud", alias="production", version=1))
    # An abandoned push, and an encrypted one.
    dropped = run(
        uploads.BeginUpload(name="fraud", bundle=model.signature.read_text(), public_key=pem)
    )
    run(uploads.AbortUpload(upload_id=dropped.upload_id))
    push(run.backend, model.path, name="fraud", signature=model.signature,
         public_key=model.public_key, kek=kek)  # fmt: skip
    # Reads, aliases, downloads, a tombstone.
    run(version_ops.ListModels())
    run(version_ops.SetAlias(name="fraud", alias="staging", version=1))
    run(version_ops.ListVersions(name="fraud"))
    run(version_ops.ResolveVersion(name="fraud", alias="staging"))
    run(version_ops.SetAlias(name="fraud", alias="canary", version=2))
    run(version_ops.ListAliases(name="fraud"))
    run(version_ops.RemoveAlias(name="fraud", alias="canary"))
    run(version_ops.GetDownload(name="fraud", version=1))
    run(version_ops.DownloadFile(name="fraud", number=1, path="config.json"))
    run(version_ops.DeleteVersion(name="fraud", number=1, reason="superseded"))
    # A version with a finding, quarantined (the registries' policy here), then released.
    held = _malicious(model)
    push(run.backend, held.path, name="fraud", signature=held.signature,
         public_key=held.public_key)  # fmt: skip
    run(version_ops.GetScanReport(name="fraud", number=3))
    run(version_ops.ReleaseVersion(name="fraud", number=3, reason="reviewed"))
    run(gc.CollectGarbage(grace_seconds=0))
    # Wrapped data keys: listed, then rotated under a new KEK of the same keyset.
    run(datakeys.ListVersionKeys(provider="local"))
    rotate_version_keys(_Recording(run), provider=kek, commit=False)
    # Access administration.
    run(access_ops.CreateUser(name="bob"))
    run(access_ops.GrantRole(name="bob", role="ml-engineer", scope="fraud-*"))
    run(access_ops.RevokeRole(name="bob", role="ml-engineer", scope="fraud-*"))
    token = run(access_ops.CreateToken(name="bob", expires_in_seconds=3600, description="ci"))
    run(access_ops.RevokeToken(token_id=token.id))
    run(access_ops.DisableUser(name="bob"))
    run(access_ops.ListUsers())
    run(trusted_keys.RemoveTrustedKey(key_id=added.id))
    # The audit trail of all of the above.
    run(audit_trail.GetCheckpoint())
    records = run(audit_trail.ListAuditRecords(start=0, export=True))
    run(audit_trail.ProveInclusion(index=len(records) - 1))
    run(audit_trail.ProveConsistency(old=1))


def _malicious(model: SignedModel) -> SignedModel:
    """A copy of ``model`` with a pickle that would run a command (built here, never loaded)."""
    import shutil

    import modelseal

    root = model.path.parent / "held"
    if not root.exists():
        shutil.copytree(model.path, root)
        (root / "weights" / "payload.pkl").write_bytes(b"cos\nsystem\n(S'id'\ntR.")
        modelseal.sign(root, private_key=model.private_key, signature=root.parent / "held.sig")
    return SignedModel(root, root.parent / "held.sig", model.public_key, model.private_key)


class _Recording:
    """A backend that records through ``run`` (for workflows such as a key rotation)."""

    def __init__(self, run: Recorder) -> None:
        self.run = run

    def call(self, operation: Operation[Any]) -> Any:
        return self.run(operation)

    def send(self, operation: UploadFile, chunks: Any, size: int | None = None) -> Any:
        raise AssertionError("not used")

    def close(self) -> None:
        raise AssertionError("not used")


def _everything() -> tuple[Grant, ...]:
    return tuple(Grant(role) for role in sorted(ROLES))  # as authentication lists them


@dataclass(frozen=True)
class Evidence:
    """A passing gate decision for the scenario's model, and the gate's public key."""

    bundle: str
    public_pem: str


Sides = tuple[Recorder, Recorder, SignedModel, tuple[LocalProvider, LocalProvider], Evidence]


@pytest.fixture
def both(db_url: str, tmp_path: Path, key_pair: tuple[Path, Path]) -> Iterator[Sides]:
    """Two fresh registries on ``db_url``'s kind: one used in process, one behind a server,
    each with the same user holding every role."""
    model = make_signed_model(tmp_path / "m", key_pair)
    gate_private, gate_public = gate_fixtures.gate_key(tmp_path / "gate")
    decision = gate_fixtures.decide(model.path, model.signature, model.public_key)
    assert decision.passed, decision.failures
    evidence = Evidence(gate_fixtures.bundle(decision, gate_private), gate_public.read_text())
    keks = (LocalProvider.create(tmp_path / "kek-local.json", passphrase=None),
            LocalProvider.create(tmp_path / "kek-remote.json", passphrase=None))  # fmt: skip
    schema, other_url = _other_database(db_url, tmp_path)
    local_env = open_env(tmp_path / "local", other_url)
    remote_env = open_env(tmp_path / "remote", db_url)
    tokens = [_set_up_user(env.registry, env.admin) for env in (local_env, remote_env)]
    for env in (local_env, remote_env):
        env.registry.push_scan = "quarantine"
    running = start_server(remote_env)
    client = Client(running.url, token=tokens[1])
    actor = Principal(USER, _everything())
    try:
        yield (
            Recorder(LocalBackend(local_env.registry, actor)),
            Recorder(client),
            model,
            keks,
            evidence,
        )
    finally:
        client.close()
        stop_server(running)
        remote_env.registry.close()
        local_env.registry.close()
        if schema is not None:
            drop_pg_schema(schema)


def _set_up_user(registry: Any, admin: Principal) -> str:
    registry.run(admin, access_ops.CreateUser(name=USER))
    for role in ROLES:
        registry.run(admin, access_ops.GrantRole(name=USER, role=role))
    return str(registry.run(admin, access_ops.CreateToken(name=USER)).token)


def _other_database(url: str, tmp_path: Path) -> tuple[str | None, str]:
    """A second, empty database of the same kind as ``url`` (and its PostgreSQL schema)."""
    if url.startswith("sqlite"):
        return None, f"sqlite:///{tmp_path / 'local.db'}"
    return new_pg_schema()


def test_every_operation_answers_the_same_in_process_and_over_http(both: Sides) -> None:
    local, remote, model, keks, evidence = both
    scenario(local, model, keks[0], evidence)
    scenario(remote, model, keks[1], evidence)
    every = {op.__name__ for op in catalogue.operations()}
    assert local.ran == every, f"the scenario misses {sorted(every - local.ran)}"
    assert remote.ran == every
    assert [name for name, _ in local.answers] == [name for name, _ in remote.answers]
    for (name, mine), (_, theirs) in zip(local.answers, remote.answers, strict=True):
        assert mine == theirs, f"{name} answered differently over HTTP"
