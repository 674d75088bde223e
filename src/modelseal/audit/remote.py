"""Verify an audit log from what a registry server serves: its signed checkpoint and its records.

The records are hashed into the RFC 6962 tree; the tree of the checkpoint's size must have the
checkpoint's root (a record modified, deleted, inserted or reordered breaks it), and every older
checkpoint kept by the verifier (a witness) must be a prefix (else the log was truncated or rolled
back). The server's own consistency proof from each older checkpoint is checked too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from modelseal.audit import merkle
from modelseal.audit.note import Checkpoint, NoteVerifier
from modelseal.audit.record import AuditRecord
from modelseal.audit.verify import Finding, LogReport
from modelseal.errors import NoteError


def verify_served_log(
    note: str,
    records: Iterable[Mapping[str, Any]],
    verifier: NoteVerifier,
    *,
    checkpoints: tuple[str, ...] = (),
    consistency: Callable[[int, int], list[bytes]] | None = None,
) -> LogReport:
    """Verify a log a server serves: recompute its tree from the records, check the signed
    checkpoint, and its consistency with ``checkpoints`` kept elsewhere."""
    findings: list[Finding] = []
    try:
        head = Checkpoint.parse(verifier.verify(note))
    except NoteError as exc:
        return LogReport(
            0, b"", (Finding("bad-checkpoint", f"server checkpoint: {exc.message}"),), 0
        )
    kept: dict[int, Checkpoint] = {}
    for text in checkpoints:
        try:
            cp = Checkpoint.parse(verifier.verify(text))
        except NoteError as exc:
            findings.append(Finding("bad-checkpoint", f"checkpoint rejected: {exc.message}"))
            continue
        kept[cp.size] = cp
    compact = merkle.CompactRange()
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    for expected, raw in enumerate(records):
        if compact.size >= head.size:
            break
        try:
            record = AuditRecord(**{**raw, "roles": tuple(raw["roles"])})
        except (TypeError, KeyError) as exc:
            findings.append(Finding("modified", f"record #{expected} is malformed: {exc}"))
            break
        if record.seq != expected:
            findings.append(
                Finding("deleted", f"record #{expected} is missing (got #{record.seq})", expected)
            )
            break
        compact.append(merkle.leaf_hash(record.canonical()))
        if compact.size in kept:
            roots[compact.size] = compact.root()
    if not findings:
        if compact.size < head.size:
            findings.append(
                Finding("truncated", f"served {compact.size} records for a head of {head.size}")
            )
        elif compact.root() != head.root:
            findings.append(
                Finding(
                    "modified",
                    f"the served records do not hash to the signed head of {head.size} records",
                )
            )
    for size, cp in sorted(kept.items()):
        if size > head.size:
            findings.append(
                Finding(
                    "truncated",
                    f"server head has {head.size} records; a kept checkpoint "
                    f"saw {size} (truncated or rolled back)",
                )
            )
        elif size in roots and roots[size] != cp.root:
            findings.append(
                Finding("rolled-back", f"the first {size} records differ from a kept checkpoint")
            )
        elif consistency is not None and not findings:
            proof = consistency(size, head.size)
            if not merkle.verify_consistency(size, head.size, proof, cp.root, head.root):
                findings.append(
                    Finding("rolled-back", f"no valid consistency proof from {size} records")
                )
    note_out = note if not findings else None
    return LogReport(head.size, head.root, tuple(findings), len(kept), note_out)
