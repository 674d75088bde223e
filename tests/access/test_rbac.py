"""The RBAC matrix at the service: every role x every action, allowed or denied as the issue's
role table says, each denial (and each allowed state change) leaving its audit record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelseal.access import principals as ops
from modelseal.access import tokens
from modelseal.access.roles import ROLES, Grant, Principal
from modelseal.audit.record import AuditRecord
from modelseal.errors import PermissionDeniedError
from modelseal.registry import attestations, audit_trail, gc, trusted_keys, uploads, versions
from modelseal.registry.backend import LocalBackend, push
from modelseal.store import db
from modelseal.store.schema import tokens as tokens_table
from tests.policy import fixtures as gate_fixtures
from tests.policy.fixtures import admit
from tests.registry.fixtures import Env, SignedModel

# The role table, written out independently of the implementation.
EXPECTED: dict[str, set[str]] = {
    "data-scientist": {"read", "versions", "push", "attest"},
    "ml-engineer": {"read", "versions", "download", "alias-staging", "alias-other", "attest"},
    "devops": {"read", "versions", "download", "alias-production", "attest"},
    "security-engineer": {"read", "versions", "delete", "audit-read", "trust-add"},
    "compliance-officer": {"read", "versions", "audit-read", "audit-export"},
    "admin": {"user-create", "role-grant", "token-create", "token-revoke", "gc"},
    # Only asks served models for predictions: no registry action (see tests/serving).
    "inference-client": set(),
}
# Who may ask a served model for predictions (model.infer, checked by modelseal serve).
INFER = {"data-scientist", "ml-engineer", "devops", "inference-client"}
STATE_CHANGES = {
    "alias-staging", "alias-production", "alias-other", "delete", "user-create", "role-grant",
    "token-create", "token-revoke", "gc", "trust-add", "attest",
}  # fmt: skip
# Reads that are audited when allowed (a download hands out the model's bytes).
AUDITED_READS = {"download"}


def fresh_public_pem() -> str:
    from modelseal.signing.keys import generate_key, public_pem

    return public_pem(generate_key("ed25519")).decode("ascii")


def actions(env: Env, sm: SignedModel) -> dict[str, Callable[[Principal], Any]]:
    reg = env.registry
    counter = iter(range(1000))

    private, _ = gate_fixtures.gate_key(sm.path.parent / "gate-key")
    evidence = gate_fixtures.bundle(
        gate_fixtures.decide(sm.path, sm.signature, sm.public_key), private
    )

    def token_for_victim() -> str:
        return str(reg.run(env.admin, ops.CreateToken(name="victim")).id)

    return {
        "read": lambda p: reg.run(p, versions.ResolveVersion(name="m", version=1)),
        "versions": lambda p: reg.run(p, versions.ListVersions(name="m")),
        "download": lambda p: b"".join(
            reg.run(p, versions.DownloadFile(name="m", number=1, path="config.json")).chunks
        ),
        "push": lambda p: reg.run(p, uploads.BeginUpload(
            name="m", bundle=sm.signature.read_text(), public_key=sm.public_key.read_text()
        )),
        "alias-staging": lambda p: reg.run(p, versions.SetAlias(name="m", alias="staging",
                                                               version=1)),
        "alias-production": lambda p: reg.run(p, versions.SetAlias(name="m", alias="production",
                                                                  version=1)),
        "alias-other": lambda p: reg.run(p, versions.SetAlias(name="m", alias="canary",
                                                             version=1)),
        "attest": lambda p: reg.run(p, attestations.AttachAttestation(name="m", number=1,
                                                                      bundle=evidence)),
        "delete": lambda p: reg.run(p, versions.DeleteVersion(name="m", number=2,
                                                               reason="revoked")),
        "user-create": lambda p: reg.run(p, ops.CreateUser(name=f"newuser{next(counter)}")),
        "role-grant": lambda p: reg.run(p, ops.GrantRole(name="victim", role="devops",
                                                         scope=f"s{next(counter)}")),
        "token-create": lambda p: reg.run(p, ops.CreateToken(name="victim")),
        "token-revoke": lambda p: reg.run(p, ops.RevokeToken(token_id=token_for_victim())),
        "gc": lambda p: reg.run(p, gc.CollectGarbage(grace_seconds=3600)),
        "trust-add": lambda p: reg.run(p, trusted_keys.AddTrustedKey(pem=fresh_public_pem(),
                                                                     name="team key")),
        "audit-read": lambda p: reg.run(p, audit_trail.GetCheckpoint()),
        "audit-export": lambda p: list(reg.run(p, audit_trail.ListAuditRecords(export=True))),
    }  # fmt: skip


def last_record(env: Env) -> AuditRecord | None:
    with db.reading(env.engine()) as conn:
        size = env.registry.audit.size(conn)
        return env.registry.audit.record(conn, size - 1) if size else None


def seed(env: Env, sm: SignedModel) -> None:
    b = LocalBackend(env.registry, env.admin)
    for _ in range(2):
        push(b, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    admit(env.registry, env.admin, sm, "m", 1, 2)
    env.registry.run(env.admin, ops.CreateUser(name="victim"))


@pytest.mark.parametrize("role", sorted(ROLES))
def test_rbac_matrix(role: str, registry: Env, signed_model: SignedModel) -> None:
    assert set(EXPECTED) == set(ROLES)
    seed(registry, signed_model)
    who = Principal(f"{role}-user", (Grant(role),), request_id=f"req-{role}", source="10.0.0.9")
    table = actions(registry, signed_model)
    for action, call in table.items():
        before = last_record(registry)
        allowed = action in EXPECTED[role]
        if allowed:
            call(who)
        else:
            with pytest.raises(PermissionDeniedError) as info:
                call(who)
            assert info.value.exit_code == 1
        after = last_record(registry)
        if not allowed or action in STATE_CHANGES | AUDITED_READS:
            assert after is not None and after != before, (role, action)
            assert after.actor == who.name and after.roles == (role,)
            assert after.outcome == ("allowed" if allowed else "denied"), (role, action)
            assert after.request_id == f"req-{role}" and after.source == "10.0.0.9"
            if not allowed:
                assert "missing" in after.reason
        else:
            assert after == before, (role, action)  # reads that are allowed are not logged
    with db.reading(registry.engine()) as conn:
        from modelseal.audit.verify import verify_log

        verify_log(conn, registry.registry.audit.signer.verifier).raise_for_findings()


def test_no_role_means_no_access(registry: Env, signed_model: SignedModel) -> None:
    seed(registry, signed_model)
    nobody = Principal("nobody")
    for action, call in actions(registry, signed_model).items():
        with pytest.raises(PermissionDeniedError):
            call(nobody)
        record = last_record(registry)
        assert record is not None and record.outcome == "denied", action
    assert registry.registry.run(nobody, versions.ListModels()) == []


def test_scoped_grants(registry: Env, signed_model: SignedModel) -> None:
    seed(registry, signed_model)
    sm = signed_model
    ds = Principal("dana", (Grant("data-scientist", "team-a-*"),))
    reg = registry.registry
    from modelseal.registry.receive import UploadFile

    up = reg.run(ds, uploads.BeginUpload(name="team-a-fraud", bundle=sm.signature.read_text(),
                                         public_key=sm.public_key.read_text()))  # fmt: skip
    for path in up.files:
        reg.receive(ds, UploadFile(upload_id=up.upload_id, path=path),
                    [(sm.path / path).read_bytes()])  # fmt: skip
    assert reg.run(ds, uploads.PublishUpload(upload_id=up.upload_id)).version == 1
    with pytest.raises(PermissionDeniedError, match="on model 'team-b-fraud'"):
        reg.run(ds, uploads.BeginUpload(name="team-b-fraud", bundle=""))
    assert [m.name for m in reg.run(ds, versions.ListModels())] == ["team-a-fraud"]
    with pytest.raises(PermissionDeniedError):
        reg.run(ds, versions.ListVersions(name="m"))
    # A scoped grant does not confer global permissions.
    co = Principal("carl", (Grant("compliance-officer", "team-a-*"),))
    with pytest.raises(PermissionDeniedError):
        reg.run(co, audit_trail.GetCheckpoint())
    assert reg.run(co, versions.ListVersions(name="team-a-fraud"))[0].version == 1


def test_tokens(registry: Env, tmp_path: Path) -> None:
    import datetime as dt

    reg, admin = registry.registry, registry.admin
    reg.run(admin, ops.CreateUser(name="alice"))
    reg.run(admin, ops.GrantRole(name="alice", role="ml-engineer"))
    new = reg.run(admin, ops.CreateToken(name="alice", description="ci"))
    who = reg.authenticate(new.token, request_id="r1", source="127.0.0.1")
    assert who.name == "alice" and who.grants == (Grant("ml-engineer"),)
    from modelseal.errors import AuthenticationError

    def fails(value: str, reason: str) -> None:
        with pytest.raises(AuthenticationError, match=reason) as info:
            reg.authenticate(value, request_id="r2", source="10.1.1.1")
        assert info.value.exit_code == 1
        record = last_record(registry)
        assert record is not None and record.action == "authenticate"
        assert record.outcome == "denied" and record.reason == reason
        assert value not in repr(record.to_dict())  # the token never reaches the log

    fails("garbage", "malformed token")
    fails(tokens.NewToken(new.id, "x" * 43).value, "unknown token")
    fails(tokens.generate().value, "unknown token")
    reg.run(admin, ops.RevokeToken(token_id=new.id))
    fails(new.token, "token revoked")
    short = reg.run(admin, ops.CreateToken(name="alice", expires_in_seconds=1))
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with db.writing(registry.engine()) as conn:  # its second has passed
        conn.execute(tokens_table.update().where(tokens_table.c.id == short.id)
                     .values(expires_at=past))  # fmt: skip
    fails(short.token, "token expired")
    other = reg.run(admin, ops.CreateToken(name="alice"))
    reg.run(admin, ops.DisableUser(name="alice"))
    fails(other.token, "user disabled")
    from modelseal.errors import InputError

    with pytest.raises(InputError, match="expires_in_seconds"):
        ops.CreateToken(name="alice", expires_in_seconds=-1)
    from modelseal.errors import ConflictError, NotFoundError

    with pytest.raises(ConflictError):
        reg.run(admin, ops.CreateUser(name="alice"))
    with pytest.raises(NotFoundError):
        reg.run(admin, ops.CreateToken(name="nobody"))
    with pytest.raises(ConflictError):
        reg.run(admin, ops.GrantRole(name="alice", role="ml-engineer"))
    with pytest.raises(InputError, match="invalid scope"):
        reg.run(admin, ops.GrantRole(name="alice", role="devops", scope="has space"))


def test_users_revoke_their_own_tokens_only(registry: Env) -> None:
    reg, admin = registry.registry, registry.admin
    for user in ("alice", "bob"):
        reg.run(admin, ops.CreateUser(name=user))
        reg.run(admin, ops.GrantRole(name=user, role="ml-engineer"))
    mine = reg.run(admin, ops.CreateToken(name="alice"))
    theirs = reg.run(admin, ops.CreateToken(name="bob"))
    alice = reg.authenticate(mine.token)
    with pytest.raises(PermissionDeniedError):
        reg.run(alice, ops.RevokeToken(token_id=theirs.id))
    reg.run(alice, ops.RevokeToken(token_id=mine.id))
    record = last_record(registry)
    assert record is not None and record.action == "token.revoke"
    assert record.outcome == "allowed" and record.reason == "own token"
    from modelseal.errors import AuthenticationError

    with pytest.raises(AuthenticationError, match="revoked"):
        reg.authenticate(mine.token)
    assert reg.authenticate(theirs.token).name == "bob"


def test_token_format() -> None:
    new = tokens.generate()
    assert tokens.parse(new.value) == (new.id, new.secret)
    assert tokens.matches(new.secret, new.secret_hash)
    assert not tokens.matches(new.secret, tokens.hash_secret("other"))
    assert not tokens.matches(new.secret, None)
    assert tokens.parse("msk_zz_short") is None
    assert len({tokens.generate().value for _ in range(50)}) == 50


@pytest.mark.parametrize("role", sorted(ROLES))
def test_who_may_run_served_models(role: str) -> None:
    from modelseal.access import roles

    scoped = Principal("p", (Grant(role, "fraud-*"),))
    assert roles.decide(scoped, roles.INFER, "fraud-v2").allowed == (role in INFER)
    assert not roles.decide(scoped, roles.INFER, "other").allowed
