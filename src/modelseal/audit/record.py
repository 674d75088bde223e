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
    # isoformat is several times quicker than strftime and, for any year from 1000 on, gives
    # the same text as format_time.
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def format_time(moment: dt.datetime) -> str:
    """``moment`` as fixed-width ISO-8601 UTC with microseconds (compares as text)."""
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
        """The record an event becomes at position ``seq`` and ``time``."""
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
        """The record as JSON values (what export and the API send)."""
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
        """The record as a database row (roles and details as canonical JSON)."""
        row = self.to_dict()
        row["roles"] = _canonical(list(self.roles))
        row["details"] = _canonical(dict(self.details))
        return row

    def canonical(self) -> bytes:
        """The leaf bytes: compact JSON with sorted keys, UTF-8."""
        return encode_leaf(
            self.seq, self.time, self.actor, _canonical(list(self.roles)), self.action,
            self.resource, self.digest, self.outcome, self.reason, self.request_id, self.source,
            _canonical(dict(self.details)),
        )  # fmt: skip


# One encoder for every call: ``json.dumps`` with options builds a new one each time.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_STR = json.encoder.encode_basestring  # the C string encoder ensure_ascii=False uses


def _canonical(value: Any) -> str:
    """Compact JSON with sorted keys, not ASCII-escaped (the one encoding of the log)."""
    return _ENCODER.encode(value)


def encode_leaf(
    seq: int, time: str, actor: str, roles: str, action: str, resource: str, digest: str | None,
    outcome: str, reason: str, request_id: str, source: str, details: str,
) -> bytes:  # fmt: skip
    """The canonical leaf bytes of a record whose ``roles`` and ``details`` are already in their
    canonical JSON (as stored in their columns): byte for byte ``_canonical(record.to_dict())``,
    built without walking the record as a dictionary (this runs for every append)."""
    if not (
        type(seq) is int
        and type(time) is str
        and type(actor) is str
        and type(action) is str
        and type(resource) is str
        and (digest is None or type(digest) is str)
        and type(outcome) is str
        and type(reason) is str
        and type(request_id) is str
        and type(source) is str
    ):  # anything unusual takes the general encoder (same bytes, or the same error)
        return _canonical({
            "seq": seq, "time": time, "actor": actor, "roles": json.loads(roles),
            "action": action, "resource": resource, "digest": digest, "outcome": outcome,
            "reason": reason, "request_id": request_id, "source": source,
            "details": json.loads(details),
        }).encode("utf-8")  # fmt: skip
    s = _STR
    return (
        f'{{"action":{s(action)},"actor":{s(actor)},"details":{details},'
        f'"digest":{"null" if digest is None else s(digest)},"outcome":{s(outcome)},'
        f'"reason":{s(reason)},"request_id":{s(request_id)},"resource":{s(resource)},'
        f'"roles":{roles},"seq":{seq},"source":{s(source)},"time":{s(time)}}}'
    ).encode()


def encode_roles(roles: tuple[str, ...]) -> str:
    """The canonical JSON of ``roles`` (the ``roles`` column and leaf field)."""
    s = _STR
    if all(type(role) is str for role in roles):
        return "[" + ",".join([s(role) for role in roles]) + "]"
    return _canonical(list(roles))


def encode_details(details: Mapping[str, Any]) -> str:
    """The canonical JSON of ``details`` (the ``details`` column and leaf field). A flat mapping
    of strings to strings, integers, booleans or nulls (what the registry writes) is encoded
    here; anything else by the JSON encoder (the same bytes either way)."""
    if not details:
        return "{}"
    s = _STR
    parts = []
    for key in sorted(details) if all(type(k) is str for k in details) else ():
        value = details[key]
        kind = type(value)
        if kind is str:
            parts.append(s(key) + ":" + s(value))
        elif kind is int:
            parts.append(s(key) + ":" + int.__repr__(value))
        elif kind is bool:
            parts.append(s(key) + (":true" if value else ":false"))
        elif value is None:
            parts.append(s(key) + ":null")
        else:
            break
    else:
        if parts:
            return "{" + ",".join(parts) + "}"
    return _canonical(dict(details))
