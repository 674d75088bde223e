"""Principals, their role grants and their API tokens: the operations administrators use.

Every operation checks ``access.admin`` (revoking one's own token excepted) and commits its
change together with its audit record.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from modelseal.access import roles, tokens
from modelseal.access.roles import Decision, Grant
from modelseal.access.session import Session
from modelseal.audit.record import format_time, utc_now
from modelseal.errors import ConflictError, InputError, NotFoundError
from modelseal.operation import Operation, Route
from modelseal.store.schema import grants, principals
from modelseal.store.schema import tokens as tokens_table

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# Names the audit trail uses for callers that are not users: no user may take them.
RESERVED_NAMES = frozenset({"anonymous", "system", "unknown"})
DAY = 24 * 3600
# A token lives 90 days unless asked otherwise, and at most a year: a leaked token expires.
DEFAULT_TOKEN_SECONDS = 90 * DAY
MAX_TOKEN_SECONDS = 366 * DAY


def check_user_name(name: str) -> str:
    """``name`` if it is a valid user name, else :class:`InputError`."""
    import re

    if not re.match(_NAME, name) or "\n" in name:
        raise InputError(
            f"invalid user name {name!r}",
            hint="use letters, digits, '.', '_' and '-' (at most 128, starting alphanumeric)",
        )
    if name.lower() in RESERVED_NAMES:
        raise InputError(
            f"the user name {name!r} is reserved",
            hint=f"choose another (reserved: {', '.join(sorted(RESERVED_NAMES))})",
        )
    return name


def check_scope(scope: str) -> str:
    """``scope`` if it is a valid grant scope (a glob on model names), else :class:`InputError`."""
    if not scope or len(scope) > 200 or any(c.isspace() for c in scope):
        raise InputError(f"invalid scope {scope!r}", hint="a glob on model names, e.g. 'fraud-*'")
    return scope


UserName = Annotated[
    str, AfterValidator(check_user_name), Field(json_schema_extra={"pattern": _NAME})
]
RoleName = Annotated[
    str, AfterValidator(roles.check_role), Field(json_schema_extra={"enum": sorted(roles.ROLES)})
]
Scope = Annotated[str, AfterValidator(check_scope), Field(json_schema_extra={"maxLength": 200})]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenInfo(_View):
    """An API token as administrators see it (never its secret)."""

    id: str
    description: str
    created_at: str
    expires_at: str | None
    revoked: bool


class UserView(_View):
    """A principal, its role grants and its tokens."""

    name: str
    created_at: str
    disabled: bool
    roles: list[str]
    tokens: list[TokenInfo]


class UserRef(_View):
    """The user an operation created."""

    name: str


class UserStatus(_View):
    """A user after a change."""

    name: str
    status: str


class GrantView(_View):
    """A role grant after a change."""

    user: str
    role: str
    scope: str


class NewToken(_View):
    """A new API token: its value is shown once and never stored."""

    id: str
    token: str = Field(
        description="The bearer token; store it now, it cannot be shown again.",
        pattern=r"^msk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$",
    )


class TokenStatus(_View):
    """A token after a change."""

    id: str
    status: str


def _principal_id(conn: Connection, user: str, *, lock: bool = False) -> int:
    query = select(principals.c.id).where(principals.c.name == user)
    if lock:
        query = query.with_for_update()
    found = conn.execute(query).scalar()
    if found is None:
        raise NotFoundError(
            f"unknown user {user!r}", hint="list the users to see who exists", topic="users"
        )
    return int(found)


class CreateUser(Operation[UserRef]):
    """Create a user (a principal that can be granted roles and given tokens)."""

    route: ClassVar[Route] = Route("POST", "/v1/users", tag="access", errors=(403, 409))
    name: UserName

    def run(self, session: Session) -> UserRef:
        """Create the user, audited."""
        user = self.name
        decision = session.require(roles.ACCESS_ADMIN, "user.create", f"user/{user}")
        try:
            with session.transaction() as conn:
                if conn.execute(select(principals.c.id).where(principals.c.name == user)).first():
                    raise ConflictError(f"user {user!r} already exists", hint="choose another name")
                conn.execute(
                    insert(principals).values(
                        name=user, created_at=utc_now(), created_by=session.actor.name
                    )
                )
                session.record(conn, "user.create", f"user/{user}", decision)
        except SqlIntegrityError:
            raise ConflictError(
                f"user {user!r} already exists", hint="choose another name"
            ) from None
        return UserRef(name=user)


class DisableUser(Operation[UserStatus]):
    """Disable a user: every token of theirs stops working at once."""

    route: ClassVar[Route] = Route(
        "POST", "/v1/users/{name}/disable", tag="access", errors=(403, 404)
    )
    name: str = Field(max_length=200)

    def run(self, session: Session) -> UserStatus:
        """Disable the user, audited."""
        user = self.name
        decision = session.require(roles.ACCESS_ADMIN, "user.disable", f"user/{user}")
        with session.transaction() as conn:
            pid = _principal_id(conn, user, lock=True)
            conn.execute(
                update(principals).where(principals.c.id == pid).values(disabled_at=utc_now())
            )
            session.record(conn, "user.disable", f"user/{user}", decision)
        return UserStatus(name=user, status="disabled")


class ListUsers(Operation[list[UserView]]):
    """Every user with their role grants and tokens (administrators)."""

    route: ClassVar[Route] = Route("GET", "/v1/users", tag="access", errors=(403,))

    def run(self, session: Session) -> list[UserView]:
        """The users, sorted by name."""
        session.require(roles.ACCESS_ADMIN, "user.list", "users")
        with session.reading() as conn:
            users = conn.execute(select(principals).order_by(principals.c.name)).mappings().all()
            all_grants = conn.execute(select(grants)).mappings().all()
            all_tokens = conn.execute(select(tokens_table)).mappings().all()
        return [
            UserView(
                name=u["name"],
                created_at=u["created_at"],
                disabled=u["disabled_at"] is not None,
                roles=sorted(
                    str(Grant(g["role"], g["scope"]))
                    for g in all_grants
                    if g["principal_id"] == u["id"]
                ),
                tokens=[
                    TokenInfo(
                        id=t["id"],
                        description=t["description"],
                        created_at=t["created_at"],
                        expires_at=t["expires_at"],
                        revoked=t["revoked_at"] is not None,
                    )
                    for t in all_tokens
                    if t["principal_id"] == u["id"]
                ],
            )
            for u in users
        ]


class GrantRole(Operation[GrantView]):
    """Grant a role to a user, on the models ``scope`` matches (``*``: all)."""

    route: ClassVar[Route] = Route(
        "POST", "/v1/users/{name}/roles", tag="access", errors=(403, 404, 409)
    )
    name: str = Field(max_length=200)
    role: RoleName
    scope: Scope = "*"

    def run(self, session: Session) -> GrantView:
        """Add the grant, audited."""
        user, role, scope = self.name, self.role, self.scope
        resource = f"user/{user}/roles/{role}"
        decision = session.require(roles.ACCESS_ADMIN, "role.grant", resource)
        with session.transaction() as conn:
            pid = _principal_id(conn, user, lock=True)
            exists = conn.execute(
                select(grants.c.role).where(
                    and_(
                        grants.c.principal_id == pid, grants.c.role == role, grants.c.scope == scope
                    )
                )
            ).first()
            if exists:
                raise ConflictError(
                    f"{user} already has {Grant(role, scope)}", hint="nothing to do"
                )
            conn.execute(
                insert(grants).values(
                    principal_id=pid,
                    role=role,
                    scope=scope,
                    granted_at=utc_now(),
                    granted_by=session.actor.name,
                )
            )
            session.record(conn, "role.grant", resource, decision, details={"scope": scope})
        return GrantView(user=user, role=role, scope=scope)


class RevokeRole(Operation[GrantView]):
    """Take a role grant away from a user."""

    route: ClassVar[Route] = Route(
        "POST", "/v1/users/{name}/roles/revoke", tag="access", errors=(403, 404)
    )
    name: str = Field(max_length=200)
    role: RoleName
    scope: str = Field("*", max_length=200)

    def run(self, session: Session) -> GrantView:
        """Remove the grant, audited."""
        user, role, scope = self.name, self.role, self.scope
        resource = f"user/{user}/roles/{role}"
        decision = session.require(roles.ACCESS_ADMIN, "role.revoke", resource)
        with session.transaction() as conn:
            pid = _principal_id(conn, user, lock=True)
            gone = conn.execute(
                delete(grants).where(
                    grants.c.principal_id == pid, grants.c.role == role, grants.c.scope == scope
                )
            ).rowcount
            if not gone:
                raise NotFoundError(
                    f"{user} does not have {Grant(role, scope)}",
                    hint="list the users to see their roles",
                    topic="users",
                )
            session.record(conn, "role.revoke", resource, decision, details={"scope": scope})
        return GrantView(user=user, role=role, scope=scope)


class CreateToken(Operation[NewToken]):
    """A new API token for a user; its value is returned once and never stored."""

    route: ClassVar[Route] = Route(
        "POST", "/v1/users/{name}/tokens", tag="access", errors=(403, 404)
    )
    name: str = Field(max_length=200)
    expires_in_seconds: int = Field(
        DEFAULT_TOKEN_SECONDS,
        ge=1,
        le=MAX_TOKEN_SECONDS,
        description="Lifetime in seconds (default 90 days, at most 366 days).",
    )
    description: str = Field("", max_length=200)

    def run(self, session: Session) -> NewToken:
        """Create the token, audited (its id, never its secret)."""
        user = self.name
        decision = session.require(roles.ACCESS_ADMIN, "token.create", f"user/{user}/tokens")
        new = tokens.generate()
        lifetime = dt.timedelta(seconds=self.expires_in_seconds)
        expires = format_time(dt.datetime.now(dt.UTC) + lifetime)
        with session.transaction() as conn:
            pid = _principal_id(conn, user, lock=True)
            conn.execute(
                insert(tokens_table).values(
                    id=new.id,
                    principal_id=pid,
                    secret_hash=new.secret_hash,
                    description=self.description,
                    created_at=utc_now(),
                    expires_at=expires,
                )
            )
            session.record(conn, "token.create", f"token/{new.id}", decision,
                           details={"user": user, "expires_at": expires})  # fmt: skip
        return NewToken(id=new.id, token=new.value)


class RevokeToken(Operation[TokenStatus]):
    """Revoke a token: administrators any, every user their own (a leaked token can be killed
    by its owner at once)."""

    route: ClassVar[Route] = Route(
        "POST", "/v1/tokens/{token_id}/revoke", tag="access", errors=(403, 404)
    )
    token_id: str = Field(max_length=64)

    def run(self, session: Session) -> TokenStatus:
        """Revoke the token, audited."""
        token_id, actor = self.token_id, session.actor
        with session.reading() as conn:
            owner = conn.execute(
                select(principals.c.name)
                .join(tokens_table, tokens_table.c.principal_id == principals.c.id)
                .where(tokens_table.c.id == token_id)
            ).scalar()
        if owner is not None and owner == actor.name and not actor.superuser:
            decision = Decision(True, "own token")
        else:
            decision = session.require(roles.ACCESS_ADMIN, "token.revoke", f"token/{token_id}")
        with session.transaction() as conn:
            found = conn.execute(
                update(tokens_table)
                .where(tokens_table.c.id == token_id, tokens_table.c.revoked_at.is_(None))
                .values(revoked_at=utc_now())
            ).rowcount
            if not found:
                raise NotFoundError(
                    f"no active token {token_id!r}",
                    hint="list the users to see their tokens",
                    topic="tokens",
                )
            session.record(conn, "token.revoke", f"token/{token_id}", decision)
        return TokenStatus(id=token_id, status="revoked")
