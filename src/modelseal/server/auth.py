"""Who is asking: the bearer token of each request, authenticated (and every failure audited)
before anything else about the request is looked at; failures are limited per address."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelseal.access.roles import Principal
from modelseal.errors import AuthenticationError, RateLimitedError
from modelseal.registry.core import Registry, RegistrySession
from modelseal.server.ratelimit import FailureLimiter

_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")
# Documents the scheme in OpenAPI; the dependency below does the checking (and the audit).
bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer msk_...`")


def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Authenticate the bearer token (every failure is an audited denial)."""
    registry: Registry = request.app.state.registry
    header = request.headers.get("x-request-id", "")
    request_id = header if _REQUEST_ID.match(header) else uuid.uuid4().hex
    source = request.client.host if request.client else ""
    anonymous = Principal("anonymous", request_id=request_id, source=source)
    limiter: FailureLimiter = request.app.state.auth_limiter
    try:
        limiter.check(source)
    except RateLimitedError as exc:
        registry.record_denial(anonymous, "authenticate", request.url.path, exc.message)
        raise
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    try:
        if scheme.lower() != "bearer" or not value.strip():
            registry.record_denial(anonymous, "authenticate", request.url.path, "missing token")
            raise AuthenticationError(
                "authentication required", hint="send 'Authorization: Bearer <token>'"
            )
        return registry.authenticate(value.strip(), request_id=request_id, source=source)
    except AuthenticationError:
        limiter.failed(source)
        raise


Actor = Annotated[Principal, Depends(principal)]


def session(request: Request, actor: Actor) -> RegistrySession:
    """The registry as the authenticated caller sees it, for this request."""
    registry: Registry = request.app.state.registry
    return registry.session(actor)


SessionDep = Annotated[RegistrySession, Depends(session)]
