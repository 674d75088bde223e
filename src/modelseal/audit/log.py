"""The append-only audit log in the registry database.

Each append runs inside the caller's transaction (so a state change and its record commit or
roll back together): it locks the head row, adds the record, the perfect Merkle nodes it
completes, and a signed checkpoint of the new tree head stored on the record row. Any state of the
database that a writer without the note key produces is caught by :mod:`modelseal.audit.verify`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Select, Update, bindparam, insert, select, update

from modelseal.audit import merkle
from modelseal.audit.note import Checkpoint, NoteSigner
from modelseal.audit.record import AuditEvent, AuditRecord, utc_now
from modelseal.errors import InputError
from modelseal.registry.schema import audit_head, audit_nodes, audit_records


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
        head_query, head_update = _statements()
        head = conn.execute(head_query).one()
        compact = merkle.CompactRange.unpack(int(head.size), bytes(head.peaks))
        when = time or utc_now()
        records: list[AuditRecord] = []
        rows: list[dict[str, Any]] = []
        nodes: list[dict[str, Any]] = []
        for event in events:
            record = AuditRecord.from_event(compact.size, when, event)
            created = compact.append(merkle.leaf_hash(record.canonical()))
            row = record.to_row()
            row.update(root=compact.root(), signature="")
            records.append(record)
            rows.append(row)
            nodes.extend({"level": lv, "idx": ix, "hash": h} for lv, ix, h in created)
        note = self.signer.sign(Checkpoint(self.origin, compact.size, compact.root()).text())
        rows[-1]["signature"] = note.rsplit("\n\n", 1)[1]
        conn.execute(insert(audit_records), rows)
        conn.execute(insert(audit_nodes), nodes)
        conn.execute(head_update, {"new_size": compact.size, "new_peaks": compact.packed()})
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


@functools.cache
def _statements() -> tuple[Select[Any], Update]:
    """The append path's statements, built once (building them per call cost more than SQLite)."""
    head_query = (
        select(audit_head.c.size, audit_head.c.peaks).where(audit_head.c.id == 1).with_for_update()
    )
    head_update = (
        update(audit_head)
        .where(audit_head.c.id == 1)
        .values(size=bindparam("new_size"), peaks=bindparam("new_peaks"))
    )
    return head_query, head_update
