"""API tokens: ``msk_<id>_<secret>``. The id finds the row; only SHA-256 of the secret is
stored, compared in constant time. A token is shown once, when it is created."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets

PREFIX = "msk_"
_TOKEN = re.compile(r"\Amsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")
_DUMMY = hashlib.sha256(b"modelseal-no-such-token").hexdigest()


@dataclasses.dataclass(frozen=True)
class NewToken:
    """A freshly generated token: its id and secret (shown once)."""

    id: str
    secret: str

    @property
    def value(self) -> str:
        """The bearer token the caller sends."""
        return f"{PREFIX}{self.id}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        """What the registry stores instead of the secret."""
        return hash_secret(self.secret)


def generate() -> NewToken:
    """A new random token (64-bit id, 256-bit secret)."""
    return NewToken(secrets.token_hex(8), secrets.token_urlsafe(32))


def hash_secret(secret: str) -> str:
    """SHA-256 of a token's secret, hex."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse(value: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else ``None``."""
    match = _TOKEN.match(value.strip())
    return (match.group(1), match.group(2)) if match else None


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization`` header value ``Bearer <token>`` (any case of the
    scheme), else ``None``."""
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time comparison; with no stored hash, compare against a dummy (same work)."""
    expected = stored_hash if stored_hash is not None else _DUMMY
    ok = hmac.compare_digest(hash_secret(secret), expected)
    return ok and stored_hash is not None
