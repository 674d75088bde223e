"""Reading the audit trail: signed checkpoints, records, and inclusion and consistency proofs
(auditors; the records are appended by :mod:`modelseal.audit.committer`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from modelseal.access import roles
from modelseal.audit.record import AuditRecord
from modelseal.errors import InputError
from modelseal.operation import Operation, Route
from modelseal.registry.core import RegistrySession

# Audit positions are stored as 64-bit integers.
MAX_POSITION = 2**63 - 1


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AuditRecordView(_View):
    """One audit record, as its leaf in the log commits to it."""

    seq: int
    time: str
    actor: str
    roles: list[str]
    action: str
    resource: str
    digest: str | None
    outcome: str
    reason: str
    request_id: str
    source: str
    details: dict[str, Any]

    @classmethod
    def of(cls, record: AuditRecord) -> AuditRecordView:
        """The view of a stored record."""
        return cls.model_validate(record.to_dict())


class InclusionProof(_View):
    """An RFC 6962 inclusion proof of record ``index`` in the tree of ``size`` records."""

    index: int
    size: int
    record: AuditRecordView
    proof: list[str] = Field(description="Hex hashes, leaf to root.")


class ConsistencyProof(_View):
    """An RFC 6962 consistency proof between two tree sizes."""

    old_size: int
    new_size: int
    proof: list[str] = Field(description="Hex hashes.")


class GetCheckpoint(Operation[str]):
    """A freshly signed checkpoint (C2SP signed note) of the log's current head."""

    route: ClassVar[Route] = Route(
        "GET", "/v1/audit/checkpoint", tag="audit", errors=(403,), answer="text"
    )

    def run(self, session: RegistrySession) -> str:
        """The signed note's text."""
        session.require(roles.AUDIT_READ, "audit.read", "audit")
        with session.reading() as conn:
            return session.registry.audit.checkpoint(conn)


class ListAuditRecords(Operation[Iterator[AuditRecordView]]):
    """Records from ``start`` (to ``end``, exclusive), as JSON lines, from one read snapshot;
    ``export`` needs the export permission."""

    route: ClassVar[Route] = Route(
        "GET", "/v1/audit/records", tag="audit", errors=(403,), answer="ndjson"
    )
    start: int = Field(0, ge=0, le=MAX_POSITION)
    end: int | None = Field(None, ge=0, le=MAX_POSITION)
    export: bool = False

    def run(self, session: RegistrySession) -> Iterator[AuditRecordView]:
        """Check the permission and the range now; the records stream afterwards."""
        if self.export:
            session.require(roles.AUDIT_EXPORT, "audit.export", "audit")
        else:
            session.require(roles.AUDIT_READ, "audit.read", "audit")
        with session.reading() as conn:
            size = session.registry.audit.size(conn)
        end = size if self.end is None else self.end
        if self.start > size or end > size or self.start > end:
            raise InputError(
                f"no records {self.start} to {end}: the log holds {size}",
                hint="ask for a range within the log",
            )
        return self._records(session, end)

    def _records(self, session: RegistrySession, end: int) -> Iterator[AuditRecordView]:
        with session.reading() as conn:
            for record in session.registry.audit.records(conn, self.start, end):
                yield AuditRecordView.of(record)


class ProveInclusion(Operation[InclusionProof]):
    """Prove that record ``index`` is in the tree of ``size`` records (default: now)."""

    route: ClassVar[Route] = Route("GET", "/v1/audit/proofs/inclusion", tag="audit", errors=(403,))
    index: int = Field(ge=0, le=MAX_POSITION)
    size: int | None = Field(None, ge=1, le=MAX_POSITION)

    def run(self, session: RegistrySession) -> InclusionProof:
        """The record and its audit path."""
        session.require(roles.AUDIT_READ, "audit.read", "audit")
        log = session.registry.audit
        with session.reading() as conn:
            size = self.size if self.size is not None else log.size(conn)
            proof = log.inclusion_proof(conn, self.index, size)
            record = log.record(conn, self.index)
        return InclusionProof(index=self.index, size=size, record=AuditRecordView.of(record),
                              proof=[p.hex() for p in proof])  # fmt: skip


class ProveConsistency(Operation[ConsistencyProof]):
    """Prove that the tree of ``old`` records is a prefix of the tree of ``new`` (default: now)."""

    route: ClassVar[Route] = Route(
        "GET", "/v1/audit/proofs/consistency", tag="audit", errors=(403,)
    )
    old: int = Field(ge=0, le=MAX_POSITION)
    new: int | None = Field(None, ge=0, le=MAX_POSITION)

    def run(self, session: RegistrySession) -> ConsistencyProof:
        """The consistency proof."""
        session.require(roles.AUDIT_READ, "audit.read", "audit")
        log = session.registry.audit
        with session.reading() as conn:
            new = self.new if self.new is not None else log.size(conn)
            proof = log.consistency_proof(conn, self.old, new)
        return ConsistencyProof(old_size=self.old, new_size=new, proof=[p.hex() for p in proof])
