"""Group commit: concurrent write transactions of one process share one database commit.

Every state change must commit together with its audit record, and the audit log is a single
sequence, so writers queue on it; committing each alone costs one fsync and one signed
checkpoint per change. Here the first writer to arrive leads a group: it opens the transaction,
and every writer that arrives before the group closes runs its block on the same connection
inside its own SAVEPOINT (a block that fails rolls back alone and raises to its caller). Audit
records a block asks for with :meth:`GroupCommitter.record` join the group only if the block
succeeds; the leader appends them all (one signed tree head) and commits once, and every member
returns only after that commit, so a change and its record are durable together or not at all.
The next leader's transaction starts when the previous commit is done, which is exactly when a
new group has had time to gather.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy import Connection, Engine

from modelseal.audit.log import AuditLog
from modelseal.audit.record import AuditEvent
from modelseal.registry import db


class _Group:
    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.ready = threading.Event()
        self.committed = threading.Event()
        self.members = 1
        self.finished = 0
        self.closed = False
        self.error: BaseException | None = None
        self.run_lock = threading.Lock()
        self.events: list[AuditEvent] = []


class GroupCommitter:
    def __init__(self, engine: Engine, audit: AuditLog, *, max_members: int = 64) -> None:
        self.engine = engine
        self.audit = audit
        self.max_members = max_members
        self._cond = threading.Condition()
        self._open: _Group | None = None
        self._local = threading.local()

    def record(self, conn: Connection, event: AuditEvent) -> None:
        """Add ``event`` to the audit log with the current block's changes (same commit)."""
        pending: list[AuditEvent] | None = getattr(self._local, "pending", None)
        if pending is None:
            raise RuntimeError("audit record outside a write transaction")
        pending.append(event)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (possibly shared); committed durably when the block returns."""
        if getattr(self._local, "pending", None) is not None:
            raise RuntimeError("nested write transaction")
        self._local.pending = []
        try:
            with self._cond:
                group = self._open
                leader = group is None or group.closed or group.members >= self.max_members
                if leader:
                    group = _Group()
                    self._open = group
                else:
                    assert group is not None
                    group.members += 1
            if leader:
                with self._lead(group) as conn:
                    yield conn
            else:
                with self._follow(group) as conn:
                    yield conn
        finally:
            self._local.pending = None

    @contextlib.contextmanager
    def _block(self, group: _Group, conn: Connection) -> Iterator[Connection]:
        """Run one member's block in its savepoint; keep its records only if it succeeds."""
        with group.run_lock:
            self._local.pending = []
            with conn.begin_nested():
                yield conn
            group.events.extend(self._local.pending)

    @contextlib.contextmanager
    def _lead(self, group: _Group) -> Iterator[Connection]:
        own_error: BaseException | None = None
        try:
            with db.writing(self.engine) as conn:
                group.conn = conn
                group.ready.set()
                try:
                    with self._block(group, conn):
                        yield conn
                except BaseException as exc:  # roll back our block only; the group goes on
                    own_error = exc
                with self._cond:
                    group.finished += 1
                    group.closed = True
                    if self._open is group:
                        self._open = None
                    self._cond.notify_all()
                    while group.finished < group.members:
                        self._cond.wait()
                if group.events:
                    self.audit.append_many(conn, group.events)
        except BaseException as exc:  # the commit itself failed: every member fails
            group.error = exc
            if own_error is None:
                own_error = exc
        finally:
            group.ready.set()
            group.committed.set()
        if own_error is not None:
            raise own_error

    @contextlib.contextmanager
    def _follow(self, group: _Group) -> Iterator[Connection]:
        group.ready.wait()
        failed = False
        try:
            if group.conn is None or group.error is not None:
                raise group.error or RuntimeError("group transaction did not start")
            with self._block(group, group.conn) as conn:
                yield conn
        except BaseException:
            failed = True
            raise
        finally:
            with self._cond:
                group.finished += 1
                self._cond.notify_all()
            if not failed:
                group.committed.wait()
        if group.error is not None:
            raise group.error
