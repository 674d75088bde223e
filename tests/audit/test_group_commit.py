"""Group commit: concurrent writers share commits; each block is atomic with its audit record,
a failing block rolls back alone, a failing commit fails every member; the log verifies."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import event, insert, select

from modelseal.audit.committer import GroupCommitter
from modelseal.audit.log import AuditLog
from modelseal.audit.note import load_or_create_signer
from modelseal.audit.record import AuditEvent
from modelseal.audit.verify import verify_log
from modelseal.store import db
from modelseal.store.schema import audit_records, principals

N = 40


def _event(i: int) -> AuditEvent:
    return AuditEvent(actor=f"w{i}", roles=(), action="user.create", resource=f"user/u{i}",
                      outcome="allowed")  # fmt: skip


def _committer(url: str, tmp_path: Path, **options: int) -> tuple[GroupCommitter, AuditLog]:
    engine = db.create_engine(url, pool_size=4)
    db.migrate(engine)
    log = AuditLog(load_or_create_signer(tmp_path / "k.pem", "gc.test/log"))
    return GroupCommitter(engine, log, **options), log


def test_concurrent_blocks_commit_together(db_url: str, tmp_path: Path) -> None:
    committer, log = _committer(db_url, tmp_path)
    engine = committer.engine
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(w: int) -> None:
        barrier.wait()
        for i in range(w, N, 8):
            try:
                with committer.transaction() as conn:
                    conn.execute(insert(principals).values(
                        name=f"u{i}", created_at="t", created_by="x"))  # fmt: skip
                    committer.record(conn, _event(i))
                    if i % 5 == 0:
                        raise ValueError(f"block {i} fails")
            except ValueError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(errors) == N // 5
        with db.reading(engine) as conn:
            names = set(conn.execute(select(principals.c.name)).scalars())
            records = list(log.records(conn))
            verify_log(conn, log.signer.verifier).raise_for_findings()
        kept = {f"u{i}" for i in range(N) if i % 5}
        assert names == kept  # failed blocks left nothing...
        assert {r.resource for r in records} == {f"user/{n}" for n in kept}  # ...nor records
        assert [r.seq for r in records] == list(range(len(kept)))
        assert len(commits) < len(kept)  # commits were shared
    finally:
        engine.dispose()


def test_failed_commit_fails_every_member(sqlite_url: str, tmp_path: Path) -> None:
    committer, log = _committer(sqlite_url, tmp_path)
    engine = committer.engine

    def refuse(conn: object) -> None:
        raise RuntimeError("disk full")

    event.listen(engine, "commit", refuse)
    with pytest.raises(RuntimeError, match="disk full"), committer.transaction() as conn:
        conn.execute(insert(principals).values(name="a", created_at="t", created_by="x"))
        committer.record(conn, _event(0))
    event.remove(engine, "commit", refuse)
    with db.reading(engine) as conn:
        assert conn.execute(select(principals.c.name)).first() is None
        assert log.size(conn) == 0
    with engine.connect() as plain, pytest.raises(RuntimeError, match="outside a write"):
        committer.record(plain, _event(1))
    with pytest.raises(RuntimeError, match="nested"), committer.transaction(), \
            committer.transaction():  # fmt: skip
        pass
    engine.dispose()


def test_blocks_without_statements_and_failures_before_or_after_them(
    db_url: str, tmp_path: Path
) -> None:
    """A record-only block opens no savepoint; a block that fails before its first statement
    rolls back nothing; one that fails after it rolls back its own statements only."""
    committer, log = _committer(db_url, tmp_path)
    engine = committer.engine
    try:
        with committer.transaction() as conn:
            committer.record(conn, _event(0))
        with pytest.raises(ValueError), committer.transaction() as conn:
            committer.record(conn, _event(1))
            raise ValueError("before any statement")
        with pytest.raises(ValueError), committer.transaction() as conn:
            conn.execute(insert(principals).values(name="gone", created_at="t", created_by="x"))
            committer.record(conn, _event(2))
            raise ValueError("after a statement")
        with committer.transaction() as conn:
            conn.execute(insert(principals).values(name="kept", created_at="t", created_by="x"))
            committer.record(conn, _event(3))
        with db.reading(engine) as conn:
            assert set(conn.execute(select(principals.c.name)).scalars()) == {"kept"}
            assert [r.actor for r in log.records(conn)] == ["w0", "w3"]
            verify_log(conn, log.signer.verifier).raise_for_findings()
    finally:
        engine.dispose()


@pytest.mark.parametrize("options", [{}, {"max_appends": 2, "lead_rounds": 1}, {"max_appends": 3}])
def test_concurrent_appends_and_blocks_share_commits(
    db_url: str, tmp_path: Path, options: dict[str, int]
) -> None:
    """Records appended alone (no block, no connection) join whichever group commits next;
    each is committed (visible to another connection) when its append returns; the log has
    every record once, gap-free, and verifies. Small ``max_appends`` leaves appenders queued
    after a commit, so they lead the next groups (``lead_rounds=1``: a queued one is woken to
    lead; otherwise the leader commits them too)."""
    committer, log = _committer(db_url, tmp_path, **options)
    engine = committer.engine
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    barrier = threading.Barrier(12)
    unseen: list[str] = []

    def appender(w: int) -> None:
        barrier.wait()
        for i in range(w, N * 2, 8):
            committer.append([_event(i)])
            with db.reading(engine) as conn:  # durable and visible once append returns
                found = conn.execute(
                    select(audit_records.c.seq).where(audit_records.c.resource == f"user/u{i}")
                ).first()
            if found is None:
                unseen.append(f"u{i}")

    def changer(w: int) -> None:
        barrier.wait()
        for i in range(N * 2 + w, N * 3, 4):
            with committer.transaction() as conn:
                conn.execute(insert(principals).values(name=f"u{i}", created_at="t",
                                                       created_by="x"))  # fmt: skip
                committer.record(conn, _event(i))

    threads = [threading.Thread(target=appender, args=(w,)) for w in range(8)]
    threads += [threading.Thread(target=changer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert unseen == []
        with db.reading(engine) as conn:
            records = list(log.records(conn))
            names = set(conn.execute(select(principals.c.name)).scalars())
            verify_log(conn, log.signer.verifier).raise_for_findings()
        assert sorted(r.resource for r in records) == sorted(f"user/u{i}" for i in range(N * 3))
        assert [r.seq for r in records] == list(range(N * 3))
        assert names == {f"u{i}" for i in range(N * 2, N * 3)}
        assert len(commits) < N * 3  # records shared commits
    finally:
        engine.dispose()


def test_failed_commit_fails_every_appender_and_the_next_group_commits(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Appenders that queue behind a block join its group; when that group's commit fails,
    the block and every appender get the error and nothing of theirs is stored; later appends
    commit normally."""
    committer, log = _committer(sqlite_url, tmp_path)
    engine = committer.engine
    inside, queued = threading.Event(), threading.Event()
    outcomes: dict[int, str] = {}

    def refuse(conn: object) -> None:
        raise RuntimeError("disk full")

    def appender(i: int) -> None:
        inside.wait()
        try:
            committer.append([_event(i)])
            outcomes[i] = "ok"
        except RuntimeError as exc:
            outcomes[i] = str(exc)

    threads = [threading.Thread(target=appender, args=(i,)) for i in range(1, 6)]
    for t in threads:
        t.start()
    event.listen(engine, "commit", refuse)
    with pytest.raises(RuntimeError, match="disk full"), committer.transaction() as conn:
        conn.execute(insert(principals).values(name="a", created_at="t", created_by="x"))
        committer.record(conn, _event(0))
        inside.set()
        while len(committer._appends) < 5:  # every appender queued behind this block
            queued.wait(0.001)
    for t in threads:
        t.join()
    event.remove(engine, "commit", refuse)
    assert outcomes == {i: "disk full" for i in range(1, 6)}
    with db.reading(engine) as conn:
        assert conn.execute(select(principals.c.name)).first() is None
        assert log.size(conn) == 0
    committer.append([_event(6), _event(7)])
    with db.reading(engine) as conn:
        assert [r.actor for r in log.records(conn)] == ["w6", "w7"]
        verify_log(conn, log.signer.verifier).raise_for_findings()
    with pytest.raises(RuntimeError, match="inside a write"), committer.transaction():
        committer.append([_event(8)])
    engine.dispose()
