"""Error answers: every error is a 4xx with the one JSON error body."""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse

from modelseal.errors import AuthenticationError, ModelsealError, RateLimitedError
from modelseal.operation import ErrorBody, ErrorDetail


def error_body(exc: ModelsealError) -> dict[str, Any]:
    """The JSON body of an error answer."""
    reasons = [r.to_dict() for r in getattr(exc, "reasons", ())]
    detail = ErrorDetail(type=type(exc).__name__, code=exc.code, message=exc.message,
                         hint=exc.hint, topic=exc.topic, reasons=reasons)  # fmt: skip
    return ErrorBody(error=detail).model_dump()


def plain_error(kind: str, code: str, message: str, hint: str) -> dict[str, Any]:
    """An error body for errors that are not modelseal's own (routing, request parsing)."""
    detail = ErrorDetail(type=kind, code=code, message=message, hint=hint)
    return ErrorBody(error=detail).model_dump()


def error_response(exc: ModelsealError) -> JSONResponse:
    """The answer to ``exc``, with ``WWW-Authenticate`` or ``Retry-After`` where they apply."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(math.ceil(exc.retry_after))}
    return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)
