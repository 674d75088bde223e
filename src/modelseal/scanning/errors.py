"""Where the scanner's errors used to live: they are in :mod:`modelseal.errors` now.

Kept so that older imports keep working; import from :mod:`modelseal.errors` instead. The scan
reports unsafe content with :class:`modelseal.errors.UnsafeModelError` (``UnsafeContentError``
is the same class).
"""

from __future__ import annotations

from modelseal.errors import (
    AllowlistError,
    ForbiddenGlobalError,
    ScanPathError,
    UnsafeModelError,
    UnscannableError,
)

UnsafeContentError = UnsafeModelError

__all__ = [
    "AllowlistError",
    "ForbiddenGlobalError",
    "ScanPathError",
    "UnsafeContentError",
    "UnscannableError",
]
