"""The append-only audit log in the registry database.

Each append runs inside the caller's transaction (so a state change and its record commit or
roll back together): it locks the head row, adds the record, the perfect Merkle nodes it
completes, and a signed checkpoint of the new tree head stored on the record row. Any state of the
database that a writer without the note key produces is caught by :mod:`modelseal.audit.verify`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, select

from modelseal.audit import merkle
from modelseal.audit.note import Checkpoint, NoteSigner
from modelseal.audit.record import AuditEvent, AuditRecord, utc_now
from modelseal.errors import InputError
from modelseal.registry.schema import audit_head, audit_records


class ProofError(InputError):
    """A proof was asked for sizes or indices the log does not have."""


class AuditLog:
    """Appends to and proves from the log; ``signer`` signs every new tree head."""

    def __init__(self, signer: NoteSigner) -> None:
        self.signer = signer

    @property
    def origin(self) -> str:
        return self.signer.name

    def append(
        self, conn: Connection, event: AuditEvent, *, time: str | None = None
    ) -> AuditRecord:
        return self.append_many(conn, [event], time=time)[0]

    def append_many(
        self, conn: Connection, events: Sequence[AuditEvent], *, time: str | None = None
    ) -> list[AuditRecord]:
        """Append ``events`` in order inside the caller's transaction. The tree head after the
        last one is signed; every record keeps the head after it (verification locates the
        first record that differs from the heads written with it)."""
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
            when = time or utc_now()
            records: list[AuditRecord] = []
            rows: list[tuple[Any, ...]] = []
            nodes: list[tuple[int, int, bytes]] = []
            for event in events:
                record = AuditRecord.from_event(compact.size, when, event)
                created = compact.append(merkle.leaf_hash(record.canonical()))
                row = record.to_row()
                records.append(record)
                rows.append((*(row[c] for c in _RECORD_COLUMNS), compact.root(), ""))
                nodes.extend(created)
            note = self.signer.sign(Checkpoint(self.origin, compact.size, compact.root()).text())
            rows[-1] = (*rows[-1][:-1], note.rsplit("\n\n", 1)[1])
            cursor.executemany(sql.record, rows)
            cursor.executemany(sql.nodes, nodes)
            cursor.execute(sql.update, (compact.size, compact.packed()))
        finally:
            cursor.close()
        return records

    def size(self, conn: Connection) -> int:
        return int(conn.execute(select(audit_head.c.size).where(audit_head.c.id == 1)).scalar_one())

    def head(self, conn: Connection) -> Checkpoint:
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
        query = select(audit_records).where(audit_records.c.seq >= start)
        if end is not None:
            query = query.where(audit_records.c.seq < end)
        result = conn.execute(query.order_by(audit_records.c.seq).execution_options(yield_per=1000))
        for row in result.mappings():
            yield AuditRecord.from_row(row)

    def record(self, conn: Connection, seq: int) -> AuditRecord:
        row = (
            conn.execute(select(audit_records).where(audit_records.c.seq == seq)).mappings().first()
        )
        if row is None:
            raise ProofError(f"no audit record #{seq}", hint="check the record number")
        return AuditRecord.from_row(row)

    def inclusion_proof(self, conn: Connection, index: int, size: int | None = None) -> list[bytes]:
        size = self._check_size(conn, size)
        if not 0 <= index < size:
            raise ProofError(
                f"record #{index} is not in a tree of {size} records", hint="check the numbers"
            )
        return _with_nodes(conn, lambda nodes: merkle.inclusion_proof(nodes, index, size))

    def consistency_proof(self, conn: Connection, old: int, new: int | None = None) -> list[bytes]:
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


@dataclasses.dataclass(frozen=True)
class _DriverSql:
    head: str
    record: str
    nodes: str
    update: str


@functools.cache
def _driver_sql(dialect: str) -> _DriverSql:
    """The append path's statements in the driver's own parameter style (only constants are
    interpolated; every value is a bound parameter)."""
    mark = "?" if dialect == "sqlite" else "%s"
    lock = " FOR UPDATE" if dialect == "postgresql" else ""
    columns = [*_RECORD_COLUMNS, "root", "signature"]
    marks = ", ".join([mark] * len(columns))
    return _DriverSql(
        head=f"SELECT size, peaks FROM audit_head WHERE id = 1{lock}",  # noqa: S608
        record=f"INSERT INTO audit_records ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
        nodes=f"INSERT INTO audit_nodes (level, idx, hash) VALUES ({mark}, {mark}, {mark})",  # noqa: S608
        update=f"UPDATE audit_head SET size = {mark}, peaks = {mark} WHERE id = 1",  # noqa: S608
    )
