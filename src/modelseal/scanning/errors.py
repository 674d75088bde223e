"""Errors the scanner raises on purpose (all exit 2: the scan itself could not be done)."""

from __future__ import annotations

from modelseal.errors import EXIT_FAILURE, InputError, ModelsealError, UsageError


class ScanPathError(InputError):
    """A path given to scan does not exist or cannot be read."""


class AllowlistError(UsageError):
    """An allow-list entry or allow-list config file is malformed."""


class UnsafeContentError(ModelsealError):
    """The scan found unsafe content (exit 1); raised by the CLI after printing the report."""

    exit_code = EXIT_FAILURE


class UnscannableError(InputError):
    """Some file could not be scanned completely, so it is not clean (exit 2)."""


class ForbiddenGlobalError(ModelsealError):
    """The restricted unpickler refused a global that is not on the allow-list (exit 1)."""

    exit_code = EXIT_FAILURE

    def __init__(self, module: str, name: str) -> None:
        super().__init__(
            f"refused to load pickle global {module}.{name}: it is not on the allow-list",
            hint="scan the file with 'modelseal scan'; allow the global only if you trust it",
        )
        self.module = module
        self.name = name
