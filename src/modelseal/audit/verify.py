"""Verify the whole audit log from its records alone, against signed checkpoints.

One pass over the records recomputes every leaf and tree head. It finds:

* a record **modified** (its content no longer hashes to its stored leaf, or the tree heads from
  it on differ from the signed ones),
* a record **deleted** (a gap in the sequence numbers) or **inserted** / **reordered** (records
  renumbered: the tree heads differ from the signed ones from that record on),
* an **unsigned** tail (records appended without the log key), or a signature stored with any
  record that is not the log key's signature of the tree head after it,
* a record not stored in its canonical form (its JSON rewritten, duplicate keys), and rows with
  negative sequence numbers (outside the tree, invisible to a walk from 0),
* the log **truncated** or **rolled back** (shorter than, or not an extension of, a checkpoint
  kept outside the database: a witness file or ``--checkpoint FILE``),
* a damaged Merkle node index or head row (proofs would be wrong).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, func, select

from modelseal.audit import merkle
from modelseal.audit.note import Checkpoint, NoteVerifier
from modelseal.audit.record import AuditRecord, encode_details, encode_roles
from modelseal.errors import AuditTamperedError, NoteError, Reason
from modelseal.store.schema import audit_head, audit_nodes, audit_records


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem found in the log."""

    kind: str
    message: str
    seq: int | None = None

    def reason(self) -> Reason:
        """The finding as a verification reason."""
        return Reason(self.kind, self.message, path=None if self.seq is None else f"#{self.seq}")


@dataclasses.dataclass(frozen=True)
class LogReport:
    """What verifying the log found."""

    size: int
    root: bytes
    findings: tuple[Finding, ...]
    checkpoints_checked: int
    note: str | None = None  # the latest signed checkpoint, when the log verified

    @property
    def ok(self) -> bool:
        """Whether nothing was found."""
        return not self.findings

    def raise_for_findings(self) -> None:
        """Raise :class:`AuditTamperedError` listing the findings, if any."""
        if self.findings:
            first = self.findings[0]
            more = f" (+{len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
            raise AuditTamperedError(
                f"audit log does not verify: {first.message}{more}",
                reasons=[f.reason() for f in self.findings],
                hint="the audit database was altered outside modelseal; investigate before use",
            )


def verify_log(
    conn: Connection, verifier: NoteVerifier, *, checkpoints: tuple[str, ...] = ()
) -> LogReport:
    """Check every record, the node index, the head row and each signed checkpoint note."""
    findings: list[Finding] = []
    wanted: dict[int, Checkpoint] = {}
    for note_text in checkpoints:
        try:
            cp = Checkpoint.parse(verifier.verify(note_text))
        except NoteError as exc:
            findings.append(Finding("bad-checkpoint", f"checkpoint rejected: {exc.message}"))
            continue
        if cp.origin != verifier.name:
            findings.append(
                Finding("bad-checkpoint", f"checkpoint is for log {cp.origin!r}, not this one")
            )
            continue
        wanted[cp.size] = cp

    compact = merkle.CompactRange()
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    levels: dict[int, Any] = {}
    diverged = False
    last_signature = ""
    expected = 0
    below = conn.execute(
        select(func.count()).select_from(audit_records).where(audit_records.c.seq < 0)
    ).scalar_one()
    if below:
        findings.append(
            Finding("inserted", f"{below} record(s) with a negative sequence number", None)
        )
    for row, stored_leaf in _records_with_leaves(conn):
        seq = int(row["seq"])
        if seq > expected:
            span = f"#{expected}" if seq == expected + 1 else f"#{expected}..#{seq - 1}"
            findings.append(Finding("deleted", f"record {span} is missing", expected))
        try:
            record = _parsed(row)
        except (ValueError, TypeError) as exc:
            findings.append(Finding("modified", f"record #{seq} is unreadable: {exc}", seq))
            diverged = True
            continue
        if (encode_roles(record.roles), encode_details(record.details)) != (
            row["roles"],
            row["details"],
        ):
            findings.append(
                Finding(
                    "modified",
                    f"record #{seq} is not stored in its canonical form (its roles or details "
                    "were rewritten)",
                    seq,
                )
            )
        leaf = merkle.leaf_hash(record.canonical())
        if stored_leaf is not None and stored_leaf != leaf:
            findings.append(Finding("modified", f"record #{seq} does not match its leaf hash", seq))
        for level, index, value in compact.append(leaf):
            levels.setdefault(level, hashlib.sha256()).update(index.to_bytes(8, "big") + value)
        root = compact.root()
        if compact.size in wanted:
            roots[compact.size] = root
        signature = row["signature"]
        if signature and not diverged and not _signed(verifier, compact.size, root, signature):
            # Each commit signs the head after its last record: every signature must verify.
            findings.append(
                Finding(
                    "unsigned",
                    f"the signature stored with record #{seq} is not the log key's signature "
                    "of the tree head after it",
                    seq,
                )
            )
        if not diverged and bytes(row["root"]) != root:
            diverged = True
            findings.append(
                Finding(
                    "modified",
                    f"tree head after record #{seq} differs from the one signed when it was "
                    "written (a record modified, inserted or reordered)",
                    seq,
                )
            )
        last_signature = row["signature"]
        expected = seq + 1
    size, root = compact.size, compact.root()

    if size:
        note = Checkpoint(verifier.name, size, root).text() + "\n" + last_signature
        try:
            verifier.verify(note)
        except NoteError:
            if not diverged:
                findings.append(
                    Finding(
                        "unsigned",
                        f"the tree head of {size} records is not signed by the log key "
                        "(records appended or altered without it)",
                        size - 1,
                    )
                )
    findings.extend(_check_head(conn, compact))
    if not findings:
        findings.extend(_check_nodes(conn, levels))

    for cp_size, cp in sorted(wanted.items()):
        if cp_size > size:
            findings.append(
                Finding(
                    "truncated",
                    f"log has {size} records but a signed checkpoint saw {cp_size} "
                    "(truncated or rolled back)",
                )
            )
        elif roots.get(cp_size) != cp.root:
            findings.append(
                Finding(
                    "rolled-back",
                    f"the first {cp_size} records differ from the signed checkpoint of that "
                    "size (history rewritten or rolled back to another branch)",
                )
            )
        elif not findings:
            proof = consistency(conn, cp_size, size)
            if not merkle.verify_consistency(cp_size, size, proof, cp.root, root):
                findings.append(
                    Finding("index", f"consistency proof from {cp_size} to {size} fails")
                )
    latest = None
    if size and not findings:
        latest = Checkpoint(verifier.name, size, root).text() + "\n" + last_signature
    return LogReport(size, root, tuple(findings), len(wanted), latest)


def _parsed(row: Mapping[Any, Any]) -> AuditRecord:
    """The record a row holds; duplicate keys in its JSON are an error (a second value for a key
    could show one thing to one reader and another to the next)."""
    for column in ("roles", "details"):
        json.loads(row[column], object_pairs_hook=_unique)
    return AuditRecord.from_row(row)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"duplicate key {duplicated[0]!r}")
    return dict(pairs)


def _signed(verifier: NoteVerifier, size: int, root: bytes, signature: str) -> bool:
    note = Checkpoint(verifier.name, size, root).text() + "\n" + signature
    try:
        verifier.verify(note)
    except NoteError:
        return False
    return True


def consistency(conn: Connection, old: int, new: int) -> list[bytes]:
    """The consistency proof between two sizes of the stored tree."""
    from modelseal.audit.log import _with_nodes

    return _with_nodes(conn, lambda nodes: merkle.consistency_proof(nodes, old, new))


def _records_with_leaves(
    conn: Connection, batch: int = 5000
) -> Iterator[tuple[Mapping[Any, Any], bytes | None]]:
    """Records in order, each with its stored leaf hash (``None`` if missing), in batches."""
    after = -1
    while True:
        rows = list(
            conn.execute(
                select(audit_records)
                .where(audit_records.c.seq > after)
                .order_by(audit_records.c.seq)
                .limit(batch)
            ).mappings()
        )
        if not rows:
            return
        low, high = int(rows[0]["seq"]), int(rows[-1]["seq"])
        leaves = {
            int(idx): bytes(value)
            for idx, value in conn.execute(
                select(audit_nodes.c.idx, audit_nodes.c.hash).where(
                    audit_nodes.c.level == 0, audit_nodes.c.idx.between(low, high)
                )
            )
        }
        for row in rows:
            yield row, leaves.get(int(row["seq"]))
        after = high


def _check_head(conn: Connection, compact: merkle.CompactRange) -> list[Finding]:
    head = conn.execute(
        select(audit_head.c.size, audit_head.c.peaks).where(audit_head.c.id == 1)
    ).first()
    if head is None:
        return [Finding("index", "the audit head row is missing")]
    if int(head.size) > compact.size:
        return [
            Finding(
                "truncated",
                f"the log head says {int(head.size)} records but only {compact.size} are present",
            )
        ]
    if int(head.size) < compact.size:
        return [
            Finding(
                "inserted",
                f"{compact.size - int(head.size)} record(s) beyond the log head "
                f"({int(head.size)} records)",
                int(head.size),
            )
        ]
    if bytes(head.peaks) != compact.packed():
        return [Finding("index", "the audit head row's tree state is wrong")]
    return []


def _check_nodes(conn: Connection, levels: dict[int, Any]) -> list[Finding]:
    """Compare every stored Merkle node with the ones recomputed from the records."""
    findings: list[Finding] = []
    stored: dict[int, Any] = {}
    result = conn.execute(
        select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash)
        .order_by(audit_nodes.c.level, audit_nodes.c.idx)
        .execution_options(yield_per=5000)
    )
    for level, idx, value in result:
        stored.setdefault(int(level), hashlib.sha256()).update(
            int(idx).to_bytes(8, "big") + bytes(value)
        )
    for level in sorted(set(stored) | set(levels)):
        mine, theirs = levels.get(level), stored.get(level)
        if mine is None or theirs is None or mine.digest() != theirs.digest():
            findings.append(Finding("index", f"the Merkle node index is wrong at level {level}"))
    return findings
