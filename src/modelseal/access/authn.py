"""Authentication: the principal a bearer token stands for. Every failure is an audited
denial, and a token that does not exist costs the same comparison as one that does."""

from __future__ import annotations

from typing import NoReturn

from sqlalchemy import select

from modelseal.access import tokens
from modelseal.access.roles import Grant, Principal
from modelseal.access.session import Session
from modelseal.audit.record import utc_now
from modelseal.errors import AuthenticationError
from modelseal.store.schema import grants, principals
from modelseal.store.schema import tokens as tokens_table


def authenticate(session: Session, value: str) -> Principal:
    """The principal ``value`` (a token) stands for; ``session`` is the anonymous caller's,
    carrying the request id and source address into the audit record of a failure."""
    anonymous = session.actor
    parsed = tokens.parse(value)
    if parsed is None:
        _fail(session, "token", "malformed token")
    token_id, secret = parsed
    with session.reading() as conn:
        row = (
            conn.execute(
                select(tokens_table, principals.c.name, principals.c.disabled_at)
                .join(principals, principals.c.id == tokens_table.c.principal_id)
                .where(tokens_table.c.id == token_id)
            )
            .mappings()
            .first()
        )
        ok = tokens.matches(secret, row["secret_hash"] if row else None)
        if row is None or not ok:
            _fail(session, f"token/{token_id}", "unknown token")
        who = Principal(row["name"], request_id=anonymous.request_id, source=anonymous.source)
        named = Session(session.engine, session.committer, who)
        if row["revoked_at"] is not None:
            _fail(named, f"token/{token_id}", "token revoked")
        if row["expires_at"] is not None and row["expires_at"] <= utc_now():
            _fail(named, f"token/{token_id}", "token expired")
        if row["disabled_at"] is not None:
            _fail(named, f"token/{token_id}", "user disabled")
        found = conn.execute(
            select(grants.c.role, grants.c.scope).where(
                grants.c.principal_id == row["principal_id"]
            )
        ).all()
    return Principal(
        row["name"],
        tuple(Grant(r, s) for r, s in sorted(found)),
        request_id=anonymous.request_id,
        source=anonymous.source,
    )


def _fail(session: Session, resource: str, reason: str) -> NoReturn:
    session.record_denial("authenticate", resource, reason)
    raise AuthenticationError(
        f"authentication failed: {reason}", hint="use a valid, unexpired API token"
    )
