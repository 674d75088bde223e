"""Group commit: concurrent write transactions of one process share one database commit.

Every state change must commit together with its audit record, and the audit log is a single
sequence, so writers queue on it; committing each alone costs one fsync per change. Here the
first writer to arrive leads a group: it opens the transaction, and every writer that arrives
before the group closes runs its block on the same connection inside its own SAVEPOINT (a block
that fails rolls back alone and raises to its caller). The leader commits once for the group and
every member returns only after that commit, so "committed" still means durable. The
leader's transaction starts when the previous group's commit is done, which is exactly when a
new group has had time to gather.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy import Connection, Engine

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


class GroupCommitter:
    def __init__(self, engine: Engine, *, max_members: int = 64) -> None:
        self.engine = engine
        self.max_members = max_members
        self._cond = threading.Condition()
        self._open: _Group | None = None
        self._local = threading.local()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (possibly shared); committed durably when the block returns."""
        if getattr(self._local, "active", False):
            raise RuntimeError("nested write transaction")
        self._local.active = True
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
            self._local.active = False

    @contextlib.contextmanager
    def _lead(self, group: _Group) -> Iterator[Connection]:
        own_error: BaseException | None = None
        try:
            with db.writing(self.engine) as conn:
                group.conn = conn
                group.ready.set()
                try:
                    with group.run_lock, conn.begin_nested():
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
            with group.run_lock, group.conn.begin_nested():
                yield group.conn
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
