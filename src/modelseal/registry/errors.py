"""Registry errors. Each carries the CLI exit code (from :mod:`modelseal.errors`) and the HTTP
status the server answers with; every one is a client error (4xx), never a 500.

* not found (unknown model, version, alias, upload, user, token): exit 2, HTTP 404
* conflict (name taken, version deleted, upload incomplete): exit 2, HTTP 409
* authentication failed (missing, unknown, expired or revoked token): exit 1, HTTP 401
* permission denied (a role or scope missing): exit 1 (a policy failure), HTTP 403
* digest or signature mismatch on upload: exit 1, HTTP 422
* a file larger than the registry accepts (``max_file_bytes``): exit 2, HTTP 413
* any other bad input: exit 2, HTTP 400
"""

from __future__ import annotations

from modelseal.errors import (
    EXIT_FAILURE,
    IntegrityError,
    ModelsealError,
    UsageError,
    VerificationError,
)


class NotFoundError(UsageError):
    http_status = 404


class ConflictError(UsageError):
    http_status = 409


class VersionTakenError(ConflictError):
    """An encrypted push wrapped its data key for a version number another push took first
    (the client wraps again for ``next_version`` and retries)."""

    def __init__(self, message: str, *, hint: str = "", next_version: int = 0) -> None:
        super().__init__(message, hint=hint)
        self.next_version = next_version


class KeyRequiredError(UsageError):
    """An encrypted version was pulled without a key-encryption key (exit 2)."""

    http_status = 400


class AuthenticationError(ModelsealError):
    exit_code = EXIT_FAILURE
    http_status = 401


class PermissionDeniedError(ModelsealError):
    exit_code = EXIT_FAILURE
    http_status = 403


class DigestMismatchError(IntegrityError):
    http_status = 422


class TooLargeError(UsageError):
    http_status = 413


def http_status(error: ModelsealError) -> int:
    """The HTTP status for any modelseal error (4xx only)."""
    status = getattr(error, "http_status", None)
    if isinstance(status, int):
        return status
    if isinstance(error, VerificationError) and error.exit_code == EXIT_FAILURE:
        return 422
    return 400
