"""Audit records and their canonical leaf encoding."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Literal

Outcome = Literal["allowed", "denied"]
FIELDS = (
    "seq", "time", "actor", "roles", "action", "resource", "digest", "outcome", "reason",
    "request_id", "source", "details",
)  # fmt: skip


def utc_now() -> str:
    """Now, as the fixed-width ISO-8601 UTC string every record and row uses."""
    return format_time(dt.datetime.now(dt.UTC))


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class AuditEvent:
    """What happened, as the caller describes it (the log adds the sequence number and time)."""

    actor: str
    roles: tuple[str, ...]
    action: str
    resource: str
    outcome: Outcome
    reason: str = ""
    digest: str | None = None
    request_id: str = ""
    source: str = ""
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    """One entry of the log: the leaf of the Merkle tree at index ``seq``."""

    seq: int
    time: str
    actor: str
    roles: tuple[str, ...]
    action: str
    resource: str
    digest: str | None
    outcome: str
    reason: str
    request_id: str
    source: str
    details: Mapping[str, Any]

    @classmethod
    def from_event(cls, seq: int, time: str, event: AuditEvent) -> AuditRecord:
        return cls(
            seq=seq,
            time=time,
            actor=event.actor,
            roles=tuple(sorted(event.roles)),
            action=event.action,
            resource=event.resource,
            digest=event.digest,
            outcome=event.outcome,
            reason=event.reason,
            request_id=event.request_id,
            source=event.source,
            details=dict(event.details),
        )

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> AuditRecord:
        """Rebuild a record from its database columns, exactly as stored."""
        return cls(
            seq=int(row["seq"]),
            time=row["time"],
            actor=row["actor"],
            roles=tuple(json.loads(row["roles"])),
            action=row["action"],
            resource=row["resource"],
            digest=row["digest"],
            outcome=row["outcome"],
            reason=row["reason"],
            request_id=row["request_id"],
            source=row["source"],
            details=json.loads(row["details"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "roles": list(self.roles),
            "action": self.action,
            "resource": self.resource,
            "digest": self.digest,
            "outcome": self.outcome,
            "reason": self.reason,
            "request_id": self.request_id,
            "source": self.source,
            "details": dict(self.details),
        }

    def to_row(self) -> dict[str, Any]:
        row = self.to_dict()
        row["roles"] = _canonical(list(self.roles))
        row["details"] = _canonical(dict(self.details))
        return row

    def canonical(self) -> bytes:
        """The leaf bytes: compact JSON with sorted keys, UTF-8."""
        return _canonical(self.to_dict()).encode("utf-8")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
