"""Tampering that a walk of the Merkle tree alone does not see: a bad signature stored with a
record that is not the last, a record rewritten into a non-canonical form that parses to the same
values (duplicate keys), rows outside the tree (negative sequence numbers), and live tables that
disagree with what the log says happened."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update

from modelseal.audit.log import AuditLog
from modelseal.audit.note import NoteVerifier, load_or_create_signer
from modelseal.audit.record import AuditEvent
from modelseal.audit.verify import verify_log
from modelseal.registry.backend import LocalBackend, push
from modelseal.registry.replay import check_live_state
from modelseal.registry.trusted_keys import AddTrustedKey
from modelseal.registry.versions import DeleteVersion, SetAlias
from modelseal.store import db
from modelseal.store.schema import aliases, audit_records, trusted_keys, versions
from tests.policy.fixtures import admit
from tests.registry.fixtures import Env, SignedModel


def _event(i: int) -> AuditEvent:
    return AuditEvent(actor="ci", roles=("devops",), action="alias.move", resource=f"model/m{i}",
                      outcome="allowed", details={"alias": "staging", "to": i})  # fmt: skip


@pytest.fixture
def log(db_url: str, tmp_path: Path) -> Iterator[tuple[Engine, AuditLog, NoteVerifier]]:
    engine = db.create_engine(db_url)
    db.migrate(engine)
    signer = load_or_create_signer(tmp_path / "log-key.pem", "modelseal.test/audit")
    with db.writing(engine) as conn:  # one commit of five records: only the last is signed
        AuditLog(signer).append_many(conn, [_event(i) for i in range(5)])
    with db.writing(engine) as conn:
        AuditLog(signer).append(conn, _event(5))
    try:
        yield engine, AuditLog(signer), signer.verifier
    finally:
        engine.dispose()


def _kinds(engine: Engine, verifier: NoteVerifier) -> list[str]:
    with db.reading(engine) as conn:
        return [f.kind for f in verify_log(conn, verifier).findings]


def _edit(engine: Engine, seq: int, **values: object) -> None:
    with db.writing(engine) as conn:
        conn.execute(update(audit_records).where(audit_records.c.seq == seq).values(**values))


def test_untouched_log_verifies(log: tuple[Engine, AuditLog, NoteVerifier]) -> None:
    engine, _, verifier = log
    assert _kinds(engine, verifier) == []


def test_a_garbage_signature_on_an_inner_record_is_found(
    log: tuple[Engine, AuditLog, NoteVerifier],
) -> None:
    engine, _, verifier = log
    with db.reading(engine) as conn:
        signed = conn.execute(select(audit_records.c.signature).where(
            audit_records.c.seq == 4)).scalar_one()  # fmt: skip
    # Record 4's signature is genuine but for the head after record 4, not after record 2.
    _edit(engine, 2, signature=signed)
    assert _kinds(engine, verifier) == ["unsigned"]
    _edit(engine, 2, signature="— modelseal.test/audit AAAAgarbage\n")
    assert _kinds(engine, verifier) == ["unsigned"]


def test_duplicate_keys_that_parse_to_the_signed_values_are_found(
    log: tuple[Engine, AuditLog, NoteVerifier],
) -> None:
    engine, _, verifier = log
    # A reader keeping the first value sees "production"; json keeps the last ("staging"), so
    # the leaf still matches: only the stored form gives it away.
    _edit(engine, 3, details='{"alias":"production","alias":"staging","to":3}')
    with db.reading(engine) as conn:
        first = verify_log(conn, verifier).findings[0]
    assert (first.kind, first.seq) == ("modified", 3)
    assert "duplicate key 'alias'" in first.message


def test_a_non_canonical_rewrite_is_found(log: tuple[Engine, AuditLog, NoteVerifier]) -> None:
    engine, _, verifier = log
    _edit(engine, 1, details=json.dumps({"to": 1, "alias": "staging"}, indent=1))
    assert _kinds(engine, verifier) == ["modified"]


def test_rows_with_negative_sequence_numbers_are_found(
    log: tuple[Engine, AuditLog, NoteVerifier],
) -> None:
    engine, _, verifier = log
    with db.writing(engine) as conn:
        row = dict(conn.execute(select(audit_records).where(
            audit_records.c.seq == 0)).mappings().one())  # fmt: skip
        row.update(seq=-1, resource="model/hidden")
        conn.execute(insert(audit_records).values(**row))
    assert _kinds(engine, verifier) == ["inserted"]


@pytest.fixture
def pushed(registry: Env, signed_model: SignedModel) -> Env:
    backend = LocalBackend(registry.registry, registry.admin)
    for _ in range(2):
        push(backend, signed_model.path, name="fraud", signature=signed_model.signature,
             public_key=signed_model.public_key)  # fmt: skip
    admit(registry.registry, registry.admin, signed_model, "fraud", 2)
    backend.call(SetAlias(name="fraud", alias="production", version=2))
    backend.call(DeleteVersion(name="fraud", number=1, reason="superseded"))
    backend.call(AddTrustedKey(pem=signed_model.public_key.read_text(), name="ci"))
    return registry


def _state(env: Env) -> list[str]:
    with db.reading(env.engine()) as conn:
        return [f.message for f in check_live_state(conn)]


def test_live_state_matches_the_log(pushed: Env) -> None:
    assert _state(pushed) == []


def test_an_alias_moved_in_the_database_is_found(pushed: Env) -> None:
    with db.writing(pushed.engine()) as conn:
        conn.execute(update(aliases).values(version=1))
    found = _state(pushed)
    assert any("alias fraud:production:1 is in the database" in m for m in found), found
    assert any("alias fraud:production:2 is in the audit log" in m for m in found), found


def test_a_cleared_tombstone_is_found(pushed: Env) -> None:
    with db.writing(pushed.engine()) as conn:
        conn.execute(update(versions).where(versions.c.number == 1).values(deleted_at=None))
    assert any("tombstone fraud:1 is in the audit log" in m for m in _state(pushed))


def test_a_key_trusted_behind_the_apis_back_is_found(pushed: Env) -> None:
    with db.writing(pushed.engine()) as conn:
        conn.execute(insert(trusted_keys).values(id="0" * 16, name="mallory", pem="x",
                                                 added_at="2026-01-01T00:00:00.000000Z",
                                                 added_by="mallory"))  # fmt: skip
    assert any(f"trusted key {'0' * 16} is in the database" in m for m in _state(pushed))


def test_a_swapped_digest_is_found(pushed: Env) -> None:
    with db.writing(pushed.engine()) as conn:
        conn.execute(update(versions).where(versions.c.number == 2).values(root_digest="f" * 64))
    assert any(f"version fraud:2:{'f' * 64} is in the database" in m for m in _state(pushed))
