"""The registry's live state, checked against what its audit log says happened.

The log proves its own integrity; this proves the tables agree with it. Replaying the allowed
records in order gives the versions there must be (with their digests and tombstones), where
every alias must point, which signer keys are trusted, who the users are, which are disabled,
their role grants and which tokens were revoked. A row edited, added or removed directly in the
database (an alias moved, a tombstone cleared, a key trusted without the API) is a finding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import Connection, select

from modelseal.audit.log import stored_records
from modelseal.audit.record import AuditRecord
from modelseal.audit.verify import Finding
from modelseal.store.schema import (
    aliases,
    grants,
    models,
    principals,
    tokens,
    trusted_keys,
    versions,
)


@dataclasses.dataclass
class LoggedState:
    """What the allowed audit records say the registry holds."""

    versions: dict[tuple[str, int], str] = dataclasses.field(default_factory=dict)
    deleted: set[tuple[str, int]] = dataclasses.field(default_factory=set)
    quarantined: set[tuple[str, int]] = dataclasses.field(default_factory=set)
    aliases: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    trusted: set[str] = dataclasses.field(default_factory=set)
    users: set[str] = dataclasses.field(default_factory=set)
    disabled: set[str] = dataclasses.field(default_factory=set)
    grants: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    tokens: set[str] = dataclasses.field(default_factory=set)
    revoked: set[str] = dataclasses.field(default_factory=set)

    def apply(self, record: AuditRecord) -> None:
        """Replay one record (denied attempts change nothing)."""
        if record.outcome != "allowed":
            return
        parts = record.resource.split("/")
        details = record.details
        match record.action:
            case "version.publish":
                key = (parts[1], int(parts[3]))
                self.versions[key] = (record.digest or "").removeprefix("sha256:")
                if details.get("quarantined"):
                    self.quarantined.add(key)
            case "version.release":
                self.quarantined.discard((parts[1], int(parts[3])))
            case "version.delete":
                key = (parts[1], int(parts[3]))
                self.deleted.add(key)
                for name in details.get("aliases_removed", []):
                    self.aliases.pop((parts[1], str(name)), None)
            case "alias.move":
                self.aliases[(parts[1], parts[3])] = int(details["to"])
            case "alias.remove":
                self.aliases.pop((parts[1], parts[3]), None)
            case "trust.add":
                self.trusted.add(parts[2])
            case "trust.remove":
                self.trusted.discard(parts[2])
            case "user.create":
                self.users.add(parts[1])
            case "user.disable":
                self.disabled.add(parts[1])
            case "role.grant":
                self.grants.add((parts[1], parts[3], str(details.get("scope", "*"))))
            case "role.revoke":
                self.grants.discard((parts[1], parts[3], str(details.get("scope", "*"))))
            case "token.create":
                self.tokens.add(parts[1])
            case "token.revoke":
                self.revoked.add(parts[1])


def replay(records: Iterable[AuditRecord]) -> LoggedState:
    """The state the records describe."""
    state = LoggedState()
    for record in records:
        state.apply(record)
    return state


def check_live_state(conn: Connection) -> list[Finding]:
    """Every difference between the tables and the state the audit log describes."""
    return _compare(conn, replay(stored_records(conn)))


def _compare(conn: Connection, logged: LoggedState) -> list[Finding]:
    findings: list[Finding] = []

    def differ(what: str, live: set[object], want: set[object]) -> None:
        for item in sorted(live - want, key=str):
            findings.append(Finding("state", f"{what} {_show(item)} is in the database but the "
                                             "audit log never recorded it"))  # fmt: skip
        for item in sorted(want - live, key=str):
            findings.append(Finding("state", f"{what} {_show(item)} is in the audit log but "
                                             "missing from the database"))  # fmt: skip

    rows = conn.execute(
        select(
            models.c.name,
            versions.c.number,
            versions.c.root_digest,
            versions.c.deleted_at,
            versions.c.quarantined_at,
        ).join(models, models.c.id == versions.c.model_id)
    ).all()
    differ("version", {(n, int(v), d) for n, v, d, _, _ in rows},
           {(n, v, d) for (n, v), d in logged.versions.items()})  # fmt: skip
    differ("tombstone", {(n, int(v)) for n, v, _, gone, _ in rows if gone is not None},
           set(logged.deleted))  # fmt: skip
    differ("quarantine", {(n, int(v)) for n, v, _, _, held in rows if held is not None},
           set(logged.quarantined))  # fmt: skip
    live_aliases = conn.execute(
        select(models.c.name, aliases.c.name, aliases.c.version).join(
            models, models.c.id == aliases.c.model_id
        )
    ).all()
    differ("alias", {(m, a, int(v)) for m, a, v in live_aliases},
           {(m, a, v) for (m, a), v in logged.aliases.items()})  # fmt: skip
    differ("trusted key", set(conn.execute(select(trusted_keys.c.id)).scalars()),
           set(logged.trusted))  # fmt: skip
    users = conn.execute(select(principals.c.id, principals.c.name,
                                principals.c.disabled_at)).all()  # fmt: skip
    differ("user", {name for _, name, _ in users}, set(logged.users))
    differ("disabled user", {name for _, name, gone in users if gone is not None},
           set(logged.disabled))  # fmt: skip
    names = {pid: name for pid, name, _ in users}
    live_grants = conn.execute(select(grants.c.principal_id, grants.c.role, grants.c.scope)).all()
    differ("role grant", {(names.get(p, f"#{p}"), r, s) for p, r, s in live_grants},
           set(logged.grants))  # fmt: skip
    live_tokens = conn.execute(select(tokens.c.id, tokens.c.revoked_at)).all()
    differ("token", {t for t, _ in live_tokens}, set(logged.tokens))
    differ("token revocation", {t for t, gone in live_tokens if gone is not None},
           set(logged.revoked))  # fmt: skip
    return findings


def _show(item: object) -> str:
    if isinstance(item, tuple):
        return ":".join(str(part) for part in item)
    return str(item)
