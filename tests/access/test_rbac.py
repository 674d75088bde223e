"""The RBAC matrix at the service: every role x every action, allowed or denied as the issue's
role table says, each denial (and each allowed state change) leaving its audit record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelseal.access import tokens
from modelseal.access.roles import ROLES, Grant, Principal
from modelseal.audit.record import AuditRecord
from modelseal.store import db
from modelseal.registry.backend import LocalBackend, push
from modelseal.registry.errors import PermissionDeniedError
from modelseal.registry.models import VersionRef
from tests.registry.fixtures import Env, SignedModel

# The role table, written out independently of the implementation.
EXPECTED: dict[str, set[str]] = {
    "data-scientist": {"read", "versions", "push"},
    "ml-engineer": {"read", "versions", "download", "alias-staging", "alias-other"},
    "devops": {"read", "versions", "download", "alias-production"},
    "security-engineer": {"read", "versions", "delete", "audit-read", "trust-add"},
    "compliance-officer": {"read", "versions", "audit-read", "audit-export"},
    "admin": {"user-create", "role-grant", "token-create", "token-revoke", "gc"},
}
STATE_CHANGES = {
    "alias-staging", "alias-production", "alias-other", "delete", "user-create", "role-grant",
    "token-create", "token-revoke", "gc", "trust-add",
}  # fmt: skip


def fresh_public_pem() -> bytes:
    from modelseal.signing.keys import generate_key, public_pem

    return public_pem(generate_key("ed25519"))


def actions(env: Env, sm: SignedModel) -> dict[str, Callable[[Principal], Any]]:
    reg = env.registry
    counter = iter(range(1000))
    return {
        "read": lambda p: reg.get_version(p, VersionRef("m", 1)),
        "versions": lambda p: reg.list_versions(p, "m"),
        "download": lambda p: list(
            reg.read_file(reg.download(p, VersionRef("m", 1)), "config.json")
        ),
        "push": lambda p: reg.begin_upload(
            p, "m", bundle=sm.signature.read_bytes(), public_key=sm.public_key.read_bytes()
        ),
        "alias-staging": lambda p: reg.set_alias(p, "m", "staging", 1),
        "alias-production": lambda p: reg.set_alias(p, "m", "production", 1),
        "alias-other": lambda p: reg.set_alias(p, "m", "canary", 1),
        "delete": lambda p: reg.delete_version(p, "m", 2, reason="revoked"),
        "user-create": lambda p: reg.create_user(p, f"newuser{next(counter)}"),
        "role-grant": lambda p: reg.grant_role(p, "victim", "devops", f"s{next(counter)}"),
        "token-create": lambda p: reg.create_token(p, "victim"),
        "token-revoke": lambda p: reg.revoke_token(p, reg.create_token(env.admin, "victim").id),
        "gc": lambda p: reg.gc(p, grace_seconds=3600),
        "trust-add": lambda p: reg.add_trusted_key(p, fresh_public_pem(), name="team key"),
        "audit-read": lambda p: reg.audit_checkpoint(p),
        "audit-export": lambda p: list(reg.audit_records(p, export=True)),
    }


def last_record(env: Env) -> AuditRecord | None:
    with db.reading(env.engine()) as conn:
        size = env.registry.audit.size(conn)
        return env.registry.audit.record(conn, size - 1) if size else None


def seed(env: Env, sm: SignedModel) -> None:
    b = LocalBackend.__new__(LocalBackend)
    b.registry, b.actor = env.registry, env.admin
    for _ in range(2):
        push(b, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    env.registry.create_user(env.admin, "victim")


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
        if not allowed or action in STATE_CHANGES:
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
    assert registry.registry.list_models(nobody) == []


def test_scoped_grants(registry: Env, signed_model: SignedModel) -> None:
    seed(registry, signed_model)
    sm = signed_model
    ds = Principal("dana", (Grant("data-scientist", "team-a-*"),))
    reg = registry.registry
    up = reg.begin_upload(ds, "team-a-fraud", bundle=sm.signature.read_bytes(),
                          public_key=sm.public_key.read_bytes())  # fmt: skip
    for path in up.files:
        reg.receive_file(ds, up.id, path, [(sm.path / path).read_bytes()])
    assert reg.publish(ds, up.id).number == 1
    with pytest.raises(PermissionDeniedError, match="on model 'team-b-fraud'"):
        reg.begin_upload(ds, "team-b-fraud", bundle=b"", public_key=None)
    assert [m.name for m in reg.list_models(ds)] == ["team-a-fraud"]
    with pytest.raises(PermissionDeniedError):
        reg.list_versions(ds, "m")
    # A scoped grant does not confer global permissions.
    co = Principal("carl", (Grant("compliance-officer", "team-a-*"),))
    with pytest.raises(PermissionDeniedError):
        reg.audit_checkpoint(co)
    assert reg.list_versions(co, "team-a-fraud")[0].number == 1


def test_tokens(registry: Env, tmp_path: Path) -> None:
    import datetime as dt

    reg, admin = registry.registry, registry.admin
    reg.create_user(admin, "alice")
    reg.grant_role(admin, "alice", "ml-engineer")
    new = reg.create_token(admin, "alice", description="ci")
    who = reg.authenticate(new.value, request_id="r1", source="127.0.0.1")
    assert who.name == "alice" and who.grants == (Grant("ml-engineer"),)
    from modelseal.registry.errors import AuthenticationError

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
    reg.revoke_token(admin, new.id)
    fails(new.value, "token revoked")
    short = reg.create_token(admin, "alice", expires_in=dt.timedelta(microseconds=1))
    fails(short.value, "token expired")
    other = reg.create_token(admin, "alice")
    reg.disable_user(admin, "alice")
    fails(other.value, "user disabled")
    from modelseal.errors import InputError

    with pytest.raises(InputError, match="must be positive"):
        reg.create_token(admin, "alice", expires_in=dt.timedelta(seconds=-1))
    from modelseal.registry.errors import ConflictError, NotFoundError

    with pytest.raises(ConflictError):
        reg.create_user(admin, "alice")
    with pytest.raises(NotFoundError):
        reg.create_token(admin, "nobody")
    with pytest.raises(ConflictError):
        reg.grant_role(admin, "alice", "ml-engineer")
    with pytest.raises(InputError, match="invalid scope"):
        reg.grant_role(admin, "alice", "devops", "has space")


def test_users_revoke_their_own_tokens_only(registry: Env) -> None:
    reg, admin = registry.registry, registry.admin
    for user in ("alice", "bob"):
        reg.create_user(admin, user)
        reg.grant_role(admin, user, "ml-engineer")
    mine = reg.create_token(admin, "alice")
    theirs = reg.create_token(admin, "bob")
    alice = reg.authenticate(mine.value)
    with pytest.raises(PermissionDeniedError):
        reg.revoke_token(alice, theirs.id)
    reg.revoke_token(alice, mine.id)
    record = last_record(registry)
    assert record is not None and record.action == "token.revoke"
    assert record.outcome == "allowed" and record.reason == "own token"
    from modelseal.registry.errors import AuthenticationError

    with pytest.raises(AuthenticationError, match="revoked"):
        reg.authenticate(mine.value)
    assert reg.authenticate(theirs.value).name == "bob"


def test_token_format() -> None:
    new = tokens.generate()
    assert tokens.parse(new.value) == (new.id, new.secret)
    assert tokens.matches(new.secret, new.secret_hash)
    assert not tokens.matches(new.secret, tokens.hash_secret("other"))
    assert not tokens.matches(new.secret, None)
    assert tokens.parse("msk_zz_short") is None
    assert len({tokens.generate().value for _ in range(50)}) == 50
