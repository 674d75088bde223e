"""Who may ask a model for predictions: bearer tokens of the registry's users, the ``model.infer``
permission scoped by model glob, per-token rate limits, and the audit of what the server does.

Tokens are checked against the registry's access tables (the embedded store or the shared
database the replicas use); a verified token is remembered for a few seconds (by its SHA-256,
never the token itself) so the database is not asked on every request; revoking a token takes
effect within that time. Denials are audited 1st, 2nd, 4th, 8th... per caller and model, so a
flood of refused requests cannot grow the audit log without bound.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Any

from modelseal.access import roles
from modelseal.access.roles import Decision, Principal
from modelseal.access.tokens import bearer_token
from modelseal.errors import AuthenticationError, PermissionDeniedError, RateLimitedError

CACHE_SECONDS = 5.0
SERVER_ACTOR = "modelseal-serve"


def _worth_recording(count: int) -> bool:
    return count & (count - 1) == 0  # 1, 2, 4, 8, ...


def _no_token() -> AuthenticationError:
    return AuthenticationError(
        "authentication required", hint="send 'Authorization: Bearer <token>'"
    )


def _token_key(value: str) -> str:
    """What a token is remembered (and rate limited) by: its SHA-256, never the token."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class TokenBucket:
    """``rate`` requests per second with bursts of ``burst``, per key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one request of ``key``'s allowance; :class:`RateLimitedError` when none is left."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._state[key] = (tokens, now)
                raise RateLimitedError(
                    f"rate limit of {self.rate:g} requests per second reached",
                    retry_after=(1.0 - tokens) / self.rate,
                )
            self._state[key] = (tokens - 1.0, now)
            if len(self._state) > 100_000:  # forget idle callers
                self._state = {k: v for k, v in self._state.items() if now - v[1] < 60}


class ServeAccess:
    """Authentication, authorization, rate limits and the audit trail of one server."""

    def __init__(
        self,
        registry: Any | None,
        *,
        required: bool,
        rate: float = 0.0,
        burst: int = 0,
    ) -> None:
        if required and registry is None:
            raise AuthenticationError(
                "checking tokens needs the registry's database",
                hint="serve with the registry's home or database, or without authentication",
            )
        self.registry, self.required = registry, required
        self.bucket = TokenBucket(rate, max(burst, 1)) if rate > 0 else None
        self._cache: dict[str, tuple[Principal, float]] = {}
        # Per cached principal: its model.infer decision by model (dropped with the principal).
        self._decisions: dict[str, dict[str, Decision]] = {}
        self._denials: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def authorize(self, headers: Mapping[str, str], source: str, model: str) -> Principal | None:
        """The caller allowed to run ``model`` (``None`` when authentication is off)."""
        return self.authorize_value(headers.get("authorization", ""), source, model)

    def authorize_value(self, authorization: str, source: str, model: str) -> Principal | None:
        """:meth:`authorize` given the ``Authorization`` header's value (``""``: none)."""
        if not self.required:
            return None
        value = bearer_token(authorization)
        if value is None:
            self._deny_anonymous(source, model, "missing token")
            raise _no_token()
        key = _token_key(value)
        who = self._principal(key, value, source)
        if self.bucket is not None:
            self.bucket.take(key)
        decisions = self._decisions.get(key)
        decision = decisions.get(model) if decisions is not None else None
        if decision is None:
            decision = roles.decide(who, roles.INFER, model)
            if decisions is not None and len(decisions) < 1_000:
                decisions[model] = decision  # kept as long as the principal is
        if not decision.allowed:
            self._record_denial(who, model, decision.reason)
            raise PermissionDeniedError(
                f"{who.name} may not run model {model!r}: {decision.reason}",
                hint="ask an administrator for a role with model.infer on this model",
            )
        return who

    async def authorize_async(
        self, authorization: str, source: str, model: str
    ) -> Principal | None:
        """:meth:`authorize_value` for the event loop: a caller whose token is cached and who
        may run ``model`` is answered at once; anything that needs the database (a token not
        in the cache, a refusal to audit) runs in a worker thread, never on the loop."""
        if not self.required:
            return None
        who = self._cached_caller(authorization, model)
        if who is not None:
            return who
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.authorize_value, authorization, source, model)

    def _cached_caller(self, authorization: str, model: str) -> Principal | None:
        """The caller when the cache alone says they may run ``model`` (rate limit taken);
        ``None`` when that takes the database (see :meth:`authorize_async`)."""
        value = bearer_token(authorization)
        if value is None:
            return None
        key = _token_key(value)
        who = self._cached(key)
        decision = self._decided(key, model)
        if who is None or decision is None or not decision.allowed:
            return None
        if self.bucket is not None:
            self.bucket.take(key)
        return who

    def _cached(self, key: str) -> Principal | None:
        """The principal of token ``key`` while its cache entry is fresh."""
        with self._lock:
            cached = self._cache.get(key)
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    def _decided(self, key: str, model: str) -> Decision | None:
        """The cached model.infer decision of token ``key`` on ``model``, if any."""
        decisions = self._decisions.get(key)
        return decisions.get(model) if decisions is not None else None

    def authorize_admin(self, headers: Mapping[str, str], source: str) -> Principal:
        """The authenticated caller of a repository route (its permission is checked there)."""
        value = bearer_token(headers.get("authorization", ""))
        if value is None:
            raise _no_token()
        return self._principal(_token_key(value), value, source)

    def _principal(self, key: str, value: str, source: str) -> Principal:
        cached = self._cached(key)
        if cached is not None:
            return cached
        now = time.monotonic()
        assert self.registry is not None
        who: Principal = self.registry.authenticate(value, source=source)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
                self._decisions.clear()
            self._cache[key] = (who, now + CACHE_SECONDS)
            self._decisions[key] = {}
        return who

    def _deny_anonymous(self, source: str, model: str, reason: str) -> None:
        self._record_denial(Principal("anonymous", source=source), model, reason)

    def _record_denial(self, who: Principal, model: str, reason: str) -> None:
        if self.registry is None:
            return
        with self._lock:
            count = self._denials.get((who.name, model), 0) + 1
            self._denials[(who.name, model)] = count
        if _worth_recording(count):
            self.registry.record_denial(
                who, "model.infer", f"model/{model}", reason, details={"refusals": count}
            )

    def record(self, event: str, model: str, details: dict[str, Any]) -> None:
        """Audit a load, swap, refusal or unload (by the server itself)."""
        if self.registry is None:
            return
        from modelseal.access.session import Session

        actor = Principal(SERVER_ACTOR, source="serve")
        session = Session(self.registry.engine, self.registry.committer, actor)
        decision = Decision(not event.endswith(("refused", "failed")), details.get("error", ""))
        digest = details.get("digest")
        session.committer.append(
            [session.event(event, f"model/{model}", decision, digest=digest, details=details)]
        )
