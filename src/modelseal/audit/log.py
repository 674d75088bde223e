"""The append-only audit log in the registry database.

Each append runs inside the caller's transaction (so a state change and its record commit or
roll back together): it locks the head row, adds the record, the perfect Merkle nodes it
completes, and a signed checkpoint of the new tree head stored on the record row. Any state of the
database that a writer without the note key produces is caught by :mod:`modelseal.audit.verify`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, select

from modelseal.audit import merkle
from modelseal.audit.note import Checkpoint, NoteSigner
from modelseal.audit.record import (
    AuditEvent,
    AuditRecord,
    encode_details,
    encode_leaf,
    encode_roles,
    utc_now,
)
from modelseal.errors import ProofError
from modelseal.store.schema import audit_head, audit_records


def stored_records(
    conn: Connection, start: int = 0, end: int | None = None
) -> Iterator[AuditRecord]:
    """The records stored in ``conn``'s database from ``start`` to ``end`` (exclusive)."""
    query = select(audit_records).where(audit_records.c.seq >= start)
    if end is not None:
        query = query.where(audit_records.c.seq < end)
    result = conn.execute(query.order_by(audit_records.c.seq).execution_options(yield_per=1000))
    for row in result.mappings():
        yield AuditRecord.from_row(row)


class AuditLog:
    """Appends to and proves from the log; ``signer`` signs every new tree head."""

    def __init__(self, signer: NoteSigner) -> None:
        self.signer = signer

    @property
    def origin(self) -> str:
        """The log's name, the first line of its checkpoints."""
        return self.signer.name

    def append(
        self, conn: Connection, event: AuditEvent, *, time: str | None = None
    ) -> AuditRecord:
        """Append ``events`` as records in ``conn``'s transaction and sign the new tree head."""
        return self.append_many(conn, [event], time=time)[0]

    def append_many(
        self, conn: Connection, events: Sequence[AuditEvent], *, time: str | None = None
    ) -> list[AuditRecord]:
        """Append ``events`` in order inside the caller's transaction. The tree head after the
        last one is signed; every record keeps the head after it (verification locates the
        first record that differs from the heads written with it)."""
        rows = self._append(conn, events, time)
        return [
            AuditRecord(
                seq=row[0], time=row[1], actor=event.actor, roles=tuple(sorted(event.roles)),
                action=event.action, resource=event.resource, digest=event.digest,
                outcome=event.outcome, reason=event.reason, request_id=event.request_id,
                source=event.source, details=dict(event.details),
            )
            for row, event in zip(rows, events, strict=True)
        ]  # fmt: skip

    def extend(
        self, conn: Connection, events: Sequence[AuditEvent], *, time: str | None = None
    ) -> None:
        """:meth:`append_many` without building the records it returns."""
        self._append(conn, events, time)

    def _append(
        self, conn: Connection, events: Sequence[AuditEvent], time: str | None
    ) -> list[list[Any]]:
        if not events:
            return []
        sql = _driver_sql(conn.dialect.name)
        # The DBAPI cursor of the connection's open transaction: the same transaction, without
        # the per-statement bookkeeping (this path runs for every state change).
        dbapi = conn.connection.dbapi_connection
        if dbapi is None:  # pragma: no cover - an open transaction always has one
            raise RuntimeError("audit append outside a transaction")
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql.head)
            head = cursor.fetchone()
            if head is None:
                raise RuntimeError("the audit head row is missing; run 'modelseal audit verify'")
            compact = merkle.CompactRange.unpack(int(head[0]), bytes(head[1]))
            rows, nodes = _integrate(compact.size, compact.peaks, time or utc_now(), events)
            size, root = compact.size + len(events), rows[-1][-2]
            rows[-1][-1] = self.signer.signature_line(Checkpoint(self.origin, size, root).text())
            peaks = b"".join(compact.peaks)
            if sql.dialect == "postgresql" and len(rows) == 1:
                # One record (a change committed alone): its row, nodes and the head in one
                # statement, one round trip instead of three.
                cursor.execute(
                    _pg_single(len(nodes)), [*rows[0], *(v for n in nodes for v in n), size, peaks]
                )
            else:
                sql.insert(cursor, rows, nodes)
                cursor.execute(sql.update, (size, peaks))
        finally:
            cursor.close()
        return rows

    def size(self, conn: Connection) -> int:
        """How many records the log holds."""
        return int(conn.execute(select(audit_head.c.size).where(audit_head.c.id == 1)).scalar_one())

    def head(self, conn: Connection) -> Checkpoint:
        """The current tree head (size and root), unsigned."""
        row = conn.execute(
            select(audit_head.c.size, audit_head.c.peaks).where(audit_head.c.id == 1)
        ).one()
        compact = merkle.CompactRange.unpack(int(row.size), bytes(row.peaks))
        return Checkpoint(self.origin, compact.size, compact.root())

    def checkpoint(self, conn: Connection) -> str:
        """A freshly signed note of the current tree head."""
        return self.signer.sign(self.head(conn).text())

    def records(
        self, conn: Connection, start: int = 0, end: int | None = None
    ) -> Iterator[AuditRecord]:
        """Records ``start`` to ``end`` (exclusive; the end of the log by default), in order."""
        return stored_records(conn, start, end)

    def record(self, conn: Connection, seq: int) -> AuditRecord:
        """Record number ``seq``, or :class:`ProofError` if there is none."""
        row = (
            conn.execute(select(audit_records).where(audit_records.c.seq == seq)).mappings().first()
        )
        if row is None:
            raise ProofError(f"no audit record #{seq}", hint="check the record number")
        return AuditRecord.from_row(row)

    def inclusion_proof(self, conn: Connection, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 6962 audit path of record ``index`` in the tree of ``size`` records."""
        size = self._check_size(conn, size)
        if not 0 <= index < size:
            raise ProofError(
                f"record #{index} is not in a tree of {size} records", hint="check the numbers"
            )
        return _with_nodes(conn, lambda nodes: merkle.inclusion_proof(nodes, index, size))

    def consistency_proof(self, conn: Connection, old: int, new: int | None = None) -> list[bytes]:
        """The RFC 6962 proof that the tree of ``old`` records is a prefix of ``new``."""
        new = self._check_size(conn, new)
        if not 0 <= old <= new:
            raise ProofError(
                f"no consistency proof from size {old} to {new}",
                hint="the old size must be smaller",
            )
        return _with_nodes(conn, lambda nodes: merkle.consistency_proof(nodes, old, new))

    def _check_size(self, conn: Connection, size: int | None) -> int:
        current = self.size(conn)
        if size is None:
            return current
        if not 0 <= size <= current:
            raise ProofError(
                f"the log has {current} records, not {size}", hint="ask for a size it has"
            )
        return size


def _with_nodes(conn: Connection, build: Callable[[merkle.NodeSource], list[bytes]]) -> list[bytes]:
    """Run a proof builder twice: once to learn which nodes it reads (the shape of a proof does
    not depend on hash values), then over those nodes fetched in one query."""
    wanted: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return bytes(32)

    build(record)
    if not wanted:
        return []
    # One statement of point lookups on the primary key. The keys are integers this function
    # computed, inlined as literals: no SQL expression building per proof (that dominated).
    keys = sorted(set(wanted))
    where = " OR ".join(f"(level = {int(lv)} AND idx = {int(ix)})" for lv, ix in keys)
    rows = conn.exec_driver_sql(f"SELECT level, idx, hash FROM audit_nodes WHERE {where}")  # noqa: S608
    found = {(int(lv), int(ix)): bytes(value) for lv, ix, value in rows}

    def fetch(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise ProofError(
                f"audit log node ({level}, {index}) is missing",
                hint="the log's node index was damaged; run 'modelseal audit verify'",
            ) from None

    proof: list[bytes] = build(fetch)
    return proof


_RECORD_COLUMNS = (
    "seq", "time", "actor", "roles", "action", "resource", "digest", "outcome", "reason",
    "request_id", "source", "details",
)  # fmt: skip


def _integrate(
    size: int, peaks: list[bytes], when: str, events: Sequence[AuditEvent]
) -> tuple[list[list[Any]], list[tuple[int, int, bytes]]]:
    """Extend the compact range ``peaks`` of a tree of ``size`` leaves (in place) by ``events``;
    return their rows (the root after each; signature empty) and the perfect nodes they
    complete. The same RFC 6962 hashing as :class:`merkle.CompactRange`, inlined: this loop
    is the per-record cost of every audited change."""
    sha256 = hashlib.sha256
    rows: list[list[Any]] = []
    nodes: list[tuple[int, int, bytes]] = []
    seq = size
    for event in events:
        roles_json = encode_roles(tuple(sorted(event.roles)))
        details_json = encode_details(event.details)
        leaf = sha256(
            b"\x00" + encode_leaf(
                seq, when, event.actor, roles_json, event.action, event.resource, event.digest,
                event.outcome, event.reason, event.request_id, event.source, details_json,
            )
        ).digest()  # fmt: skip
        nodes.append((0, seq, leaf))
        node, level, index = leaf, 0, seq
        while index & 1:
            node = sha256(b"\x01" + peaks.pop() + node).digest()
            level, index = level + 1, index >> 1
            nodes.append((level, index, node))
        peaks.append(node)
        root = node
        for peak in reversed(peaks[:-1]):
            root = sha256(b"\x01" + peak + root).digest()
        rows.append([
            seq, when, event.actor, roles_json, event.action, event.resource, event.digest,
            event.outcome, event.reason, event.request_id, event.source, details_json, root, "",
        ])  # fmt: skip
        seq += 1
    return rows, nodes


_COLUMNS = (*_RECORD_COLUMNS, "root", "signature")
_NODE_COLUMNS = ("level", "idx", "hash")


@dataclasses.dataclass(frozen=True)
class _DriverSql:
    dialect: str
    head: str
    record: str
    nodes: str
    update: str

    def insert(
        self, cursor: Any, rows: list[list[Any]], nodes: list[tuple[int, int, bytes]]
    ) -> None:
        if self.dialect == "postgresql":
            _pg_insert(cursor, "audit_records", _COLUMNS, rows)
            _pg_insert(cursor, "audit_nodes", _NODE_COLUMNS, nodes)
        else:  # SQLite: executemany runs in C, the statement prepared once
            cursor.executemany(self.record, rows)
            cursor.executemany(self.nodes, nodes)


_PG_COPY_FROM = 5  # rows; fewer go as one INSERT (a COPY costs an extra exchange)


def _pg_insert(
    cursor: Any, table: str, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` with one statement: psycopg's executemany pays a round of the driver's
    Python per row, more than the row costs the server; COPY streams them."""
    if len(rows) < _PG_COPY_FROM:
        cursor.execute(_pg_values(table, columns, len(rows)), [v for row in rows for v in row])
        return
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


@functools.cache
def _pg_values(table: str, columns: tuple[str, ...], count: int) -> str:
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * count)  # noqa: S608


@functools.cache
def _pg_single(nodes: int) -> str:
    """One record with its ``nodes`` and the head update as a single PostgreSQL statement (a
    large VALUES list plans slower than COPY: batches use :func:`_pg_insert`)."""
    record = _pg_values("audit_records", _COLUMNS, 1)
    node = _pg_values("audit_nodes", _NODE_COLUMNS, nodes)
    update = "UPDATE audit_head SET size = %s, peaks = %s WHERE id = 1"
    return f"WITH r AS ({record}), n AS ({node}) {update}"


@functools.cache
def _driver_sql(dialect: str) -> _DriverSql:
    """The append path's statements in the driver's own parameter style (only constants are
    interpolated; every value is a bound parameter)."""
    mark = "?" if dialect == "sqlite" else "%s"
    lock = " FOR UPDATE" if dialect == "postgresql" else ""
    marks = ", ".join([mark] * len(_COLUMNS))
    return _DriverSql(
        dialect=dialect,
        head=f"SELECT size, peaks FROM audit_head WHERE id = 1{lock}",  # noqa: S608
        record=f"INSERT INTO audit_records ({', '.join(_COLUMNS)}) VALUES ({marks})",  # noqa: S608
        nodes=f"INSERT INTO audit_nodes (level, idx, hash) VALUES ({mark}, {mark}, {mark})",  # noqa: S608
        update=f"UPDATE audit_head SET size = {mark}, peaks = {mark} WHERE id = 1",  # noqa: S608
    )
