"""The audit log in a real database (SQLite and PostgreSQL): appends, proofs, checkpoints, and
every kind of tampering done directly in the database, each caught by verify_log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, update

from modelseal.audit import merkle
from modelseal.audit.log import AuditLog
from modelseal.audit.note import Checkpoint, NoteVerifier, load_or_create_signer
from modelseal.audit.record import AuditEvent, AuditRecord
from modelseal.audit.verify import verify_log
from modelseal.errors import AuditTamperedError, ProofError
from modelseal.store import db
from modelseal.store.schema import audit_head, audit_nodes, audit_records


@dataclass
class Log:
    engine: Engine
    log: AuditLog
    verifier: NoteVerifier

    def append(self, n: int, *, start: int = 0) -> None:
        for i in range(start, start + n):
            with db.writing(self.engine) as conn:
                self.log.append(conn, _event(i))

    def verify(self, *checkpoints: str) -> tuple[str, ...]:
        with db.reading(self.engine) as conn:
            report = verify_log(conn, self.verifier, checkpoints=checkpoints)
        return tuple(f.kind for f in report.findings)

    def checkpoint(self) -> str:
        with db.reading(self.engine) as conn:
            return self.log.checkpoint(conn)

    def sql(self, statement: object) -> None:
        with db.writing(self.engine) as conn:
            conn.execute(statement)  # type: ignore[call-overload]


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        actor=f"user{i % 3}",
        roles=("ml-engineer",),
        action="alias.move",
        resource=f"model/m{i}",
        outcome="allowed" if i % 4 else "denied",
        reason="" if i % 4 else "permission missing",
        digest="ab" * 32,
        request_id=f"req-{i}",
        source="127.0.0.1",
        details={"alias": "staging", "version": i, "note": "ünïcode"},
    )


@pytest.fixture
def alog(db_url: str, tmp_path: Path) -> Iterator[Log]:
    engine = db.create_engine(db_url)
    db.migrate(engine)
    signer = load_or_create_signer(tmp_path / "keys" / "log-key.pem", "modelseal.test/audit")
    try:
        yield Log(engine, AuditLog(signer), signer.verifier)
    finally:
        engine.dispose()


def test_append_proofs_and_checkpoint(alog: Log) -> None:
    alog.append(13)
    with db.reading(alog.engine) as conn:
        records = list(alog.log.records(conn))
        assert [r.seq for r in records] == list(range(13))
        assert records[5].details["note"] == "ünïcode"
        leaves = [merkle.leaf_hash(r.canonical()) for r in records]
        memory = merkle.MemoryNodes(leaves)
        head = alog.log.head(conn)
        assert head.size == 13 and head.root == memory.root()
        for size in (1, 5, 8, 13):
            for index in range(size):
                proof = alog.log.inclusion_proof(conn, index, size)
                assert proof == merkle.inclusion_proof(memory, index, size)
                root = merkle.root_of(leaves[:size])
                assert merkle.verify_inclusion(index, size, leaves[index], proof, root)
            for old in range(size + 1):
                proof = alog.log.consistency_proof(conn, old, size)
                assert merkle.verify_consistency(
                    old, size, proof, merkle.root_of(leaves[:old]), merkle.root_of(leaves[:size])
                )
        assert alog.log.record(conn, 3) == records[3]
        with pytest.raises(ProofError):
            alog.log.inclusion_proof(conn, 13, 13)
        with pytest.raises(ProofError):
            alog.log.inclusion_proof(conn, 0, 14)
        with pytest.raises(ProofError):
            alog.log.consistency_proof(conn, 5, 4)
        with pytest.raises(ProofError):
            alog.log.record(conn, 99)
        note = alog.log.checkpoint(conn)
    cp = Checkpoint.parse(alog.verifier.verify(note))
    assert (cp.origin, cp.size, cp.root) == ("modelseal.test/audit", 13, memory.root())
    assert alog.verify(note) == ()


def test_a_failed_transaction_leaves_no_record(alog: Log) -> None:
    alog.append(2)
    with pytest.raises(RuntimeError), db.writing(alog.engine) as conn:
        alog.log.append(conn, _event(2))
        raise RuntimeError("the state change failed")
    with db.reading(alog.engine) as conn:
        assert alog.log.size(conn) == 2
    alog.append(1, start=2)
    assert alog.verify() == ()


def test_clean_log_and_empty_log_verify(alog: Log) -> None:
    assert alog.verify() == ()
    alog.append(7)
    assert alog.verify() == ()
    with db.reading(alog.engine) as conn:
        report = verify_log(conn, alog.verifier)
    report.raise_for_findings()
    assert report.size == 7


Tamper = Callable[[Log], None]


def _modify(alog: Log) -> None:
    alog.sql(update(audit_records).where(audit_records.c.seq == 4).values(actor="mallory"))


def _modify_with_leaf(alog: Log) -> None:
    # Rewrite the record and its stored leaf hash consistently: the signed heads still differ.
    with db.writing(alog.engine) as conn:
        row = conn.execute(select(audit_records).where(audit_records.c.seq == 4)).mappings().one()
        record = AuditRecord.from_row(row)
        forged = AuditRecord(**{**record.__dict__, "outcome": "allowed", "reason": ""})
        conn.execute(
            update(audit_records)
            .where(audit_records.c.seq == 4)
            .values(outcome="allowed", reason="")
        )
        conn.execute(
            update(audit_nodes)
            .where(audit_nodes.c.level == 0, audit_nodes.c.idx == 4)
            .values(hash=merkle.leaf_hash(forged.canonical()))
        )


def _delete(alog: Log) -> None:
    alog.sql(delete(audit_records).where(audit_records.c.seq == 3))


def _insert_middle(alog: Log) -> None:
    # Shift records 5.. up by one and put a forged record at 5.
    with db.writing(alog.engine) as conn:
        rows = (
            conn.execute(
                select(audit_records)
                .where(audit_records.c.seq >= 5)
                .order_by(audit_records.c.seq.desc())
            )
            .mappings()
            .all()
        )
        for row in rows:
            conn.execute(
                update(audit_records)
                .where(audit_records.c.seq == row["seq"])
                .values(seq=row["seq"] + 1)
            )
        forged = dict(rows[-1])
        forged.update(seq=5, actor="mallory", action="version.delete")
        conn.execute(audit_records.insert().values(**forged))


def _insert_end(alog: Log) -> None:
    with db.writing(alog.engine) as conn:
        last = conn.execute(select(audit_records).where(audit_records.c.seq == 9)).mappings().one()
        forged = dict(last)
        forged.update(seq=10, actor="mallory")
        conn.execute(audit_records.insert().values(**forged))


def _insert_end_with_index(alog: Log) -> None:
    # A forger who knows the format appends a record, its node and head - but has no key.
    with db.writing(alog.engine) as conn:
        head = conn.execute(select(audit_head)).mappings().one()
        compact = merkle.CompactRange.unpack(int(head["size"]), bytes(head["peaks"]))
        last = conn.execute(select(audit_records).where(audit_records.c.seq == 9)).mappings().one()
        record = AuditRecord.from_row({**last, "seq": 10, "actor": "mallory"})
        created = compact.append(merkle.leaf_hash(record.canonical()))
        row = record.to_row()
        row.update(root=compact.root(), signature=last["signature"])
        conn.execute(audit_records.insert().values(**row))
        for level, idx, value in created:
            conn.execute(audit_nodes.insert().values(level=level, idx=idx, hash=value))
        conn.execute(update(audit_head).values(size=compact.size, peaks=compact.packed()))


def _reorder(alog: Log) -> None:
    with db.writing(alog.engine) as conn:
        conn.execute(update(audit_records).where(audit_records.c.seq == 2).values(seq=-1))
        conn.execute(update(audit_records).where(audit_records.c.seq == 6).values(seq=2))
        conn.execute(update(audit_records).where(audit_records.c.seq == -1).values(seq=6))


def _truncate(alog: Log) -> None:
    alog.sql(delete(audit_records).where(audit_records.c.seq >= 7))


def _node(alog: Log) -> None:
    alog.sql(
        update(audit_nodes)
        .where(audit_nodes.c.level == 1, audit_nodes.c.idx == 1)
        .values(hash=bytes(32))
    )


TAMPERS: dict[str, tuple[Tamper, str]] = {
    "modified": (_modify, "modified"),
    "modified-with-leaf": (_modify_with_leaf, "modified"),
    "deleted": (_delete, "deleted"),
    "inserted-middle": (_insert_middle, "modified"),
    "inserted-end": (_insert_end, "inserted"),
    "inserted-end-with-index": (_insert_end_with_index, "unsigned"),
    "reordered": (_reorder, "modified"),
    "truncated": (_truncate, "truncated"),
    "node-index": (_node, "index"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_tampering_is_detected(alog: Log, kind: str) -> None:
    alog.append(10)
    assert alog.verify() == ()
    tamper, expected = TAMPERS[kind]
    tamper(alog)
    found = alog.verify()
    assert expected in found, found
    with db.reading(alog.engine) as conn, pytest.raises(AuditTamperedError) as info:
        verify_log(conn, alog.verifier).raise_for_findings()
    assert info.value.exit_code == 1 and info.value.reasons


def test_truncation_of_everything_is_caught_by_a_kept_checkpoint(alog: Log) -> None:
    alog.append(10)
    kept = alog.checkpoint()
    # The forger removes the tail consistently (records, nodes, head): only the checkpoint
    # kept outside the database shows it.
    alog.sql(delete(audit_records).where(audit_records.c.seq >= 6))
    with db.writing(alog.engine) as conn:
        survivors = [merkle.leaf_hash(r.canonical()) for r in alog.log.records(conn)]
        compact = merkle.CompactRange()
        keep: set[tuple[int, int]] = set()
        for leaf in survivors:
            keep.update((lv, ix) for lv, ix, _ in compact.append(leaf))
        for lv, ix in conn.execute(select(audit_nodes.c.level, audit_nodes.c.idx)).all():
            if (lv, ix) not in keep:
                conn.execute(
                    delete(audit_nodes).where(audit_nodes.c.level == lv, audit_nodes.c.idx == ix)
                )
        conn.execute(update(audit_head).values(size=compact.size, peaks=compact.packed()))
    assert alog.verify() == ()  # internally consistent...
    assert "truncated" in alog.verify(kept)  # ...but shorter than what was once signed


def test_rollback_to_another_branch_is_caught(alog: Log, tmp_path: Path) -> None:
    alog.append(6)
    kept = alog.checkpoint()
    # Roll back: wipe the log and write a different history of the same length with the key
    # (an insider with the key but not the published checkpoint).
    for table in (audit_records, audit_nodes):
        alog.sql(delete(table))
    alog.sql(update(audit_head).values(size=0, peaks=b""))
    alog.append(6, start=100)
    assert alog.verify() == ()
    assert "rolled-back" in alog.verify(kept)


def test_checkpoints_are_checked(alog: Log) -> None:
    alog.append(5)
    good = alog.checkpoint()
    alog.append(3, start=5)
    assert alog.verify(good) == ()  # an older checkpoint: consistency proof holds
    forged = good.replace("\n5\n", "\n4\n")
    assert alog.verify(forged) == ("bad-checkpoint",)
    foreign = "another.log\n5\n" + good.split("\n", 2)[2]
    assert alog.verify(foreign) == ("bad-checkpoint",)


def test_batched_appends_verify_and_sign_the_last_head(alog: Log) -> None:
    with db.writing(alog.engine) as conn:
        records = alog.log.append_many(conn, [_event(i) for i in range(5)])
        assert [r.seq for r in records] == list(range(5))
        assert alog.log.append_many(conn, []) == []
    alog.append(2, start=5)
    assert alog.verify() == ()
    with db.reading(alog.engine) as conn:
        head = alog.log.head(conn)
        leaves = [merkle.leaf_hash(r.canonical()) for r in alog.log.records(conn)]
    assert head.root == merkle.root_of(leaves)
    # Cutting inside the batch leaves an unsigned head: caught.
    alog.sql(delete(audit_records).where(audit_records.c.seq >= 3))
    assert "unsigned" in alog.verify()
