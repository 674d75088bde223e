"""One caller's session with the store: who is asking, the authorization decision, and the audit
record that goes with every decision.

Each state change runs in one transaction together with its audit record
(:meth:`Session.transaction` and :meth:`Session.record`); every denied attempt is recorded on its
own (:meth:`Session.record_denial`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from sqlalchemy import Connection, Engine

from modelseal.access import roles
from modelseal.access.roles import Decision, Principal
from modelseal.audit.committer import GroupCommitter
from modelseal.audit.record import AuditEvent
from modelseal.errors import ModelsealError, PermissionDeniedError
from modelseal.store import db


@dataclasses.dataclass(frozen=True)
class Session:
    """The store as seen by one principal, for one call."""

    engine: Engine
    committer: GroupCommitter
    actor: Principal

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """One read-only transaction (a consistent snapshot)."""
        with db.reading(self.engine) as conn:
            yield conn

    def transaction(self) -> contextlib.AbstractContextManager[Connection]:
        """A write transaction; committed durably, with its audit records, when it returns."""
        return self.committer.transaction()

    def event(
        self,
        action: str,
        resource: str,
        decision: Decision,
        *,
        reason: str | None = None,
        digest: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """The audit event for a decision this session's principal caused."""
        actor = self.actor
        return AuditEvent(
            actor=actor.name,
            roles=actor.roles,
            action=action,
            resource=resource,
            outcome="allowed" if decision.allowed else "denied",
            reason=reason if reason is not None else decision.reason,
            digest=digest,
            request_id=actor.request_id,
            source=actor.source,
            details=dict(details or {}),
        )

    def record(
        self,
        conn: Connection,
        action: str,
        resource: str,
        decision: Decision,
        *,
        digest: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Add the audit record of an allowed change to the open transaction ``conn``."""
        event = self.event(action, resource, decision, digest=digest, details=details)
        self.committer.record(conn, event)

    def record_denial(
        self,
        action: str,
        resource: str,
        reason: str,
        *,
        digest: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a denied attempt (durable when this returns)."""
        event = self.event(
            action, resource, Decision(False, reason), digest=digest, details=details
        )
        self.committer.append([event])

    def require(
        self, permission: str, action: str, resource: str, model: str | None = None
    ) -> Decision:
        """The decision that grants ``permission``; a denial is recorded and raised."""
        decision = roles.decide(self.actor, permission, model)
        if not decision.allowed:
            self.record_denial(action, resource, decision.reason)
            raise PermissionDeniedError(
                f"{self.actor.name} may not {action} {resource}: {decision.reason}",
                hint="ask an administrator for a role that grants it",
            )
        return decision

    def deny(self, action: str, resource: str, error: ModelsealError, **details: Any) -> NoReturn:
        """Record ``error`` as a denied attempt, then raise it."""
        self.record_denial(action, resource, error.message, **details)
        raise error
