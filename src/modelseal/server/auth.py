"""Who is asking: the bearer token of each request is authenticated (every failure audited)
before anything else about the request is looked at, its body included (see
:mod:`modelseal.server.guard`); failures are limited per address."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelseal.access.roles import Principal
from modelseal.access.tokens import bearer_token
from modelseal.errors import AuthenticationError, RateLimitedError
from modelseal.registry.core import Registry, RegistrySession
from modelseal.server.ratelimit import FailureLimiter, worth_recording

_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")
# Documents the scheme in OpenAPI; the guard does the checking (and the audit).
bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer msk_...`")
STATE_KEY = "modelseal_principal"


def authenticate(
    registry: Registry,
    limiter: FailureLimiter,
    headers: Mapping[str, str],
    source: str,
    path: str,
) -> Principal:
    """The principal the request's bearer token stands for (every failure is an audited denial;
    refusals of a rate-limited address are audited 1st, 2nd, 4th, 8th... with their count)."""
    header = headers.get("x-request-id", "")
    request_id = header if _REQUEST_ID.match(header) else uuid.uuid4().hex
    anonymous = Principal("anonymous", request_id=request_id, source=source)
    try:
        limiter.check(source)
    except RateLimitedError as exc:
        if worth_recording(exc.refusals):
            registry.record_denial(anonymous, "authenticate", path, exc.message,
                                   details={"refusals": exc.refusals})  # fmt: skip
        raise
    value = bearer_token(headers.get("authorization", ""))
    try:
        if value is None:
            registry.record_denial(anonymous, "authenticate", path, "missing token")
            raise AuthenticationError(
                "authentication required", hint="send 'Authorization: Bearer <token>'"
            )
        return registry.authenticate(value, request_id=request_id, source=source)
    except AuthenticationError:
        limiter.failed(source)
        raise


def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, authenticated by the guard before the request reached its route."""
    found = request.scope.get(STATE_KEY)
    if not isinstance(found, Principal):  # the guard authenticates every API route
        raise AuthenticationError("authentication required", hint="send a bearer token")
    return found


Actor = Annotated[Principal, Depends(principal)]


def session(request: Request, actor: Actor) -> RegistrySession:
    """The registry as the authenticated caller sees it, for this request."""
    registry: Registry = request.app.state.registry
    return registry.session(actor)


SessionDep = Annotated[RegistrySession, Depends(session)]
