"""One exception hierarchy for everything modelseal raises on purpose.

Every error carries a user-facing message (what is wrong) and a hint (what to do), and the exit
code the command line uses for it:

* ``0`` success / verified / clean
* ``1`` a verification or policy failure, or unsafe content found
* ``2`` a usage or input error (unreadable file, malformed signature, bad option)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class ModelsealError(Exception):
    """Base of every error modelseal raises deliberately."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and the hint as the single line the CLI prints."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(ModelsealError):
    """The caller asked for something that cannot be done as asked (exit 2)."""


class InputError(UsageError):
    """An input (model path, key, certificate, signature file) cannot be read or used (exit 2)."""


class ModelPathError(InputError):
    """The model path is missing, unreadable, or holds entries that may not be hashed."""


class KeyFileError(InputError):
    """A key file cannot be read, decrypted or used for the requested operation."""


class PassphraseError(KeyFileError):
    """A passphrase is missing or wrong."""


class UnsupportedAlgorithmError(InputError):
    """A key type, hash algorithm or serialization method that modelseal does not support."""


class OutputError(InputError):
    """An output file cannot be written."""


@dataclasses.dataclass(frozen=True)
class Reason:
    """One precise reason why a verification failed.

    ``code`` is stable and machine-readable (``modified``, ``missing``, ``extra``, ``renamed``,
    ``symlink``, ``unreadable``, ``bad-signature``, ``wrong-key``, ``malformed``,
    ``unsupported-algorithm``, ``certificate-expired``, ``certificate-untrusted``,
    ``certificate-usage``, ``inconsistent-manifest``); ``message`` is for people.
    """

    code: str
    message: str
    path: str | None = None
    expected: str | None = None
    actual: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        for key in ("path", "expected", "actual"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class VerificationError(ModelsealError):
    """The model or its signature did not verify. Carries every reason found (exit 1)."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, reasons: Sequence[Reason] = (), hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reasons: tuple[Reason, ...] = tuple(reasons)


class SignatureMismatchError(VerificationError):
    """The signature does not match the key, or the signed payload was edited."""


class IntegrityError(VerificationError):
    """The model's files differ from the signed manifest."""


class CertificateError(VerificationError):
    """The signing certificate is expired, untrusted or not allowed to sign."""


class UnsafeModelError(VerificationError):
    """Scanning found unsafe content in a model, or could not scan all of it (exit 1)."""


class ModelChangedError(VerificationError):
    """A model file changed on disk while it was being verified and loaded (exit 1)."""


class MalformedSignatureError(VerificationError):
    """The signature file is not a well-formed OMS bundle (an input error: exit 2)."""

    exit_code = EXIT_USAGE


class UnsupportedSignatureError(MalformedSignatureError):
    """The signature uses a format, method or algorithm modelseal does not verify (exit 2)."""
