"""The append-only audit log in the registry database.

Each append runs inside the caller's transaction (so a state change and its record commit or
roll back together): it locks the head row, adds the record, the perfect Merkle nodes it
completes, and a signed checkpoint of the new tree head stored on the record row. Any state of the
database that a writer without the note key produces is caught by :mod:`modelseal.audit.verify`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from sqlalchemy import Connection, insert, select, tuple_, update

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
        head = conn.execute(
            select(audit_head.c.size, audit_head.c.peaks)
            .where(audit_head.c.id == 1)
            .with_for_update()
        ).one()
        compact = merkle.CompactRange.unpack(int(head.size), bytes(head.peaks))
        record = AuditRecord.from_event(compact.size, time or utc_now(), event)
        created = compact.append(merkle.leaf_hash(record.canonical()))
        root = compact.root()
        note = self.signer.sign(Checkpoint(self.origin, compact.size, root).text())
        row = record.to_row()
        row.update(root=root, signature=note.rsplit("\n\n", 1)[1])
        conn.execute(insert(audit_records).values(**row))
        conn.execute(
            insert(audit_nodes), [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in created]
        )
        conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(size=compact.size, peaks=compact.packed())
        )
        return record

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
    found: dict[tuple[int, int], bytes] = {}
    for chunk in _chunks(sorted(set(wanted)), 200):
        rows = conn.execute(
            select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash).where(
                tuple_(audit_nodes.c.level, audit_nodes.c.idx).in_(chunk)
            )
        )
        for level, idx, value in rows:
            found[(int(level), int(idx))] = bytes(value)

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


def _chunks(items: Sequence[tuple[int, int]], size: int) -> Iterator[Sequence[tuple[int, int]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
