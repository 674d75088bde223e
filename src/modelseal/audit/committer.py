"""Group commit: concurrent write transactions of one process share one database commit.

Every state change must commit together with its audit record, and the audit log is a single
sequence, so writers queue on it; committing each alone costs one fsync and one signed
checkpoint per change. Here one writer at a time holds the write connection (the *baton*):
it opens the group's transaction if none is open, runs its block inside its own SAVEPOINT (a
block that fails rolls back alone and raises to its caller) and keeps the audit records the
block asked for with :meth:`GroupCommitter.record`. Then, if other writers are queued, it hands
the baton to the next one and waits; if none is (or the group is full), it appends the group's
records (one signed tree head), commits once, wakes the members (each woken member wakes the
next) and hands the baton on.
Every member returns only after that commit, so a change and its record are durable together
or not at all. Writers that arrive while a commit is in progress queue, and form the next group.

A record that goes with no change (a denied attempt, say) needs no connection and no block:
:meth:`GroupCommitter.append` only queues it, and whoever commits next takes every queued
record into its group. Such writers never hold the baton unless nobody does (then one of
them commits, for all the records queued by then, and goes on for up to ``lead_rounds`` groups
while more queue), so under load a group of records costs one append and one commit, however
many writers it serves, plus one wake-up per writer.

Costs this shape avoids, measured on 2 vCPUs: groups racing each other for the database (the
SQLite busy handler sleeps; PostgreSQL queues on the head row), every member waking for every
event (each hand-off here wakes exactly one thread: the next one, or a member after the
commit), SQLAlchemy's ``begin_nested`` (about 0.1 ms on SQLite, more than the block it guards)
and, on PostgreSQL, two round trips of SAVEPOINT/RELEASE for blocks that run no statement (an
audit record alone, such as a denial): the savepoint is opened just before the block's first
statement.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, event

from modelseal.audit.log import AuditLog
from modelseal.audit.record import AuditEvent
from modelseal.store import db

_SAVEPOINT = "modelseal_member"
_PENDING = "modelseal_savepoint_pending"  # conn.info key: open the savepoint before the next
_OPEN = "modelseal_savepoint_open"  # statement / it is open


class _Writer:
    """One thread's hand-off point: a lock it blocks on until another thread releases it, and
    what the releasing thread tells it (an appender: lead the next group, or the commit's
    error)."""

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.events: Sequence[AuditEvent] = ()  # a queued appender's records
        self.lead = False  # an appender woken to commit the next group itself
        self.error: BaseException | None = None  # the group's commit failed
        self.next: _Writer | None = None  # the group member to wake after us

    def woken(self) -> None:
        """After our wait: wake the member after us (each woken member wakes the next; see
        :meth:`GroupCommitter._commit`)."""
        successor, self.next = self.next, None
        if successor is not None:
            successor.signal()

    def wait(self) -> None:
        self.wake.acquire()

    def signal(self) -> None:
        self.wake.release()


class _Group:
    def __init__(self, conn: Connection, transaction: RootTransaction) -> None:
        self.conn = conn
        self.transaction = transaction
        self.events: list[AuditEvent] = []
        self.waiting: list[_Writer] = []  # members to wake after the commit
        self.members = 0
        self.error: BaseException | None = None


class GroupCommitter:
    """Shares one durable commit among concurrent writers (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        audit: AuditLog,
        *,
        max_members: int = 64,
        max_appends: int = 1024,
        lead_rounds: int = 4,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.max_members = max_members
        self.max_appends = max_appends  # queued appenders one commit takes along
        self.lead_rounds = lead_rounds  # groups an appender commits before passing the baton
        self._mutex = threading.Lock()
        self._busy = False  # a writer holds the baton
        self._queue: collections.deque[_Writer] = collections.deque()  # blocks wanting it
        self._appends: collections.deque[_Writer] = collections.deque()  # records to commit
        self._group: _Group | None = None  # the open shared transaction (baton holder only)
        self._conn: Connection | None = None  # kept from one group to the next while queued
        self._local = threading.local()
        if not event.contains(engine, "before_cursor_execute", _open_pending_savepoint):
            event.listen(engine, "before_cursor_execute", _open_pending_savepoint)

    def record(self, conn: Connection, event: AuditEvent) -> None:
        """Add ``event`` to the audit log with the current block's changes (same commit)."""
        pending: list[AuditEvent] | None = getattr(self._local, "pending", None)
        if pending is None:
            raise RuntimeError("audit record outside a write transaction")
        pending.append(event)

    def append(self, events: Sequence[AuditEvent]) -> None:
        """Add ``events`` to the audit log on their own (no change goes with them); returns
        once they are durably committed, raises the commit's error if it failed."""
        if getattr(self._local, "pending", None) is not None:
            raise RuntimeError("append inside a write transaction (use record)")
        me = self._writer()
        me.events, me.lead, me.error = events, False, None
        if self._queue_or_take_baton(me, self._appends):
            me.wait()  # committed by another writer, or woken to lead the next group
            me.woken()
            if not me.lead:
                if me.error is not None:
                    raise me.error
                return
        group = self._group_for_baton()
        group.events.extend(events)
        rounds = self.lead_rounds
        while self._commit(group, keep=rounds > 1) and group.error is None:
            # Records queued while we committed: commit them too (we hold the interpreter,
            # the connection and the baton; waking another appender to do it costs more).
            rounds -= 1
            group = self._group_for_baton()
        if group.error is not None:
            raise group.error

    def _queue_or_take_baton(self, me: _Writer, queue: collections.deque[_Writer]) -> bool:
        """Queue ``me`` on ``queue`` if a writer holds the baton (True), else take it (False)."""
        with self._mutex:
            if self._busy:
                queue.append(me)
                return True
            self._busy = True
            return False

    def _writer(self) -> _Writer:
        me: _Writer | None = getattr(self._local, "writer", None)
        if me is None:
            me = self._local.writer = _Writer()
        return me

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (possibly shared); committed durably when the block returns."""
        if getattr(self._local, "pending", None) is not None:
            raise RuntimeError("nested write transaction")
        me = self._writer()
        me.error = None
        self._local.pending = []
        try:
            if self._queue_or_take_baton(me, self._queue):
                me.wait()  # the baton is ours when we wake
            group = self._group_for_baton()
            failed = True
            try:
                with self._member(group) as conn:
                    yield conn
                failed = False
            finally:
                self._finish(group, me, failed)
        finally:
            self._local.pending = None

    def _group_for_baton(self) -> _Group:
        """The open group transaction, opened by us if there is none (we hold the baton)."""
        if self._group is not None:
            return self._group
        try:
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(**{db.WRITE_OPTION: True})
            self._group = _Group(self._conn, self._conn.begin())
        except BaseException:
            self._drop_connection()
            self._pass_baton()
            raise
        return self._group

    @contextlib.contextmanager
    def _member(self, group: _Group) -> Iterator[Connection]:
        """Run one member's block in its savepoint; keep its records only if it succeeds."""
        conn = group.conn
        info = conn.info
        info[_PENDING] = True
        try:
            yield conn
        except BaseException:
            if info.pop(_OPEN, False):
                _driver_execute(conn, f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                _driver_execute(conn, f"RELEASE SAVEPOINT {_SAVEPOINT}")
            raise
        finally:
            info.pop(_PENDING, None)
        if info.pop(_OPEN, False):
            _driver_execute(conn, f"RELEASE SAVEPOINT {_SAVEPOINT}")
        group.events.extend(self._local.pending)

    def _finish(self, group: _Group, me: _Writer, failed: bool) -> None:
        """After our block: hand the baton on and wait for the commit, or commit ourselves."""
        if not failed:
            group.members += 1
        with self._mutex:
            commit = not self._queue or group.members >= self.max_members
            successor = None if commit else self._queue.popleft()
        if successor is not None:
            if not failed:
                group.waiting.append(me)
            successor.signal()
            if failed:
                return
            me.wait()  # woken after the commit
            me.woken()
            if me.error is not None:
                raise me.error
            return
        self._commit(group)
        if group.error is not None and not failed:
            raise group.error

    def _commit(self, group: _Group, *, keep: bool = False) -> bool:
        """Take the queued appenders' records into ``group``, append and commit once, wake
        every member with the outcome and hand the baton on (we hold it). With ``keep``, if
        only appenders are queued, keep the baton instead and return True."""
        with self._mutex:
            take = min(len(self._appends), self.max_appends)
            joined = [self._appends.popleft() for _ in range(take)]
        for writer in joined:
            group.events.extend(writer.events)
            writer.events = ()
            group.waiting.append(writer)
        self._group = None
        try:
            if group.events:
                self.audit.extend(group.conn, group.events)
            group.transaction.commit()
        except BaseException as exc:  # every member fails; the connection is discarded
            group.error = exc
            self._drop_connection()
        finally:
            # The members wake one another in a chain (each wakes the next as it resumes)
            # rather than all from here, where they would all queue at once for the
            # interpreter lock this thread needs for the next group: with 32-64 concurrent
            # appenders on 2 vCPUs, 30-40 % more appends a second (docs/benchmarks.md, Keep).
            waiting = group.waiting
            for member, successor in itertools.pairwise(waiting):
                member.error, member.next = group.error, successor
            if waiting:
                waiting[-1].error = group.error
                waiting[0].signal()
            kept = self._pass_baton(keep=keep and group.error is None)
        return kept

    def _pass_baton(self, *, keep: bool = False) -> bool:
        """Wake the next queued block (it reuses our connection), else the first queued
        appender to commit the next group; with neither, give the connection back. With
        ``keep``, keep the baton (return True) when only appenders are queued."""
        with self._mutex:
            if self._queue:
                successor: _Writer | None = self._queue.popleft()
            elif keep and self._appends:
                return True
            elif self._appends:
                successor = self._appends.popleft()
                successor.lead = True
            else:
                successor = None
                conn, self._conn = self._conn, None
                self._busy = False
        if successor is not None:
            successor.signal()
        elif conn is not None:
            conn.close()
        return False

    def _drop_connection(self) -> None:
        """Discard the connection after a failure: closing the driver connection ends whatever
        transaction is left on it (after a failed commit SQLAlchemy may consider it closed
        while the database does not)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()


def _open_pending_savepoint(
    conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    """Before a member block's first statement, open its savepoint (blocks that run none,
    such as a lone audit record, need none)."""
    info = conn.info
    if info.get(_PENDING):
        del info[_PENDING]
        cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
        info[_OPEN] = True


def _driver_execute(conn: Connection, statement: str) -> None:
    """Run ``statement`` on the connection's open transaction, beside SQLAlchemy."""
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:  # pragma: no cover - an open transaction always has one
        raise RuntimeError("write transaction without a database connection")
    cursor = dbapi.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()
