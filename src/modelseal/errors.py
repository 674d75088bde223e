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


def first_line(exc: BaseException, limit: int | None = 300) -> str:
    """What a one-line message may quote of a foreign exception: the first line of its text
    (its type's name when it has none), at most ``limit`` characters."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


class ModelsealError(Exception):
    """Base of every error modelseal raises deliberately.

    ``code`` is stable and machine-readable (it travels in JSON error bodies and ``--json``
    output); ``exit_code`` is what the command line exits with; ``http_status`` is what the
    registry server answers with (always a 4xx: a 500 would be a bug).
    """

    code: str = "error"
    exit_code: int = EXIT_USAGE
    http_status: int = 400

    def __init__(self, message: str, *, hint: str = "", topic: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # What the error is about (``users``, ``versions:fraud``...): lets a front end such as
        # the CLI replace ``hint`` with one that names its own commands.
        self.topic = topic

    def one_line(self) -> str:
        """The message and the hint as the single line the CLI prints."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(ModelsealError):
    """The caller asked for something that cannot be done as asked (exit 2)."""

    code = "usage"


class InputError(UsageError):
    """An input (model path, key, certificate, signature file) cannot be read or used (exit 2)."""

    code = "input"


class ModelPathError(InputError):
    """The model path is missing, unreadable, or holds entries that may not be hashed."""

    code = "model-path"


class KeyFileError(InputError):
    """A key file cannot be read, decrypted or used for the requested operation."""

    code = "key-file"


class PassphraseError(KeyFileError):
    """A passphrase is missing or wrong."""

    code = "passphrase"


class UnsupportedAlgorithmError(InputError):
    """A key type, hash algorithm or serialization method that modelseal does not support."""

    code = "unsupported-algorithm"


class OutputError(InputError):
    """An output file cannot be written."""

    code = "output"


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
        """The reason as JSON values (fields that are set)."""
        out = {"code": self.code, "message": self.message}
        for key in ("path", "expected", "actual"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class VerificationError(ModelsealError):
    """The model or its signature did not verify. Carries every reason found (exit 1)."""

    code = "verification-failed"
    exit_code = EXIT_FAILURE
    http_status = 422

    def __init__(
        self, message: str, *, reasons: Sequence[Reason] = (), hint: str = "", topic: str = ""
    ) -> None:
        super().__init__(message, hint=hint, topic=topic)
        self.reasons: tuple[Reason, ...] = tuple(reasons)


class SignatureMismatchError(VerificationError):
    """The signature does not match the key, or the signed payload was edited."""

    code = "signature-mismatch"


class IntegrityError(VerificationError):
    """The model's files differ from the signed manifest."""

    code = "integrity"


class CertificateError(VerificationError):
    """The signing certificate is expired, untrusted or not allowed to sign."""

    code = "certificate"


class UnsafeModelError(VerificationError):
    """Scanning found unsafe content in a model, or could not scan all of it (exit 1)."""

    code = "unsafe-content"


class UnscannableModelError(UnsafeModelError):
    """A model could not be scanned completely (and nothing unsafe was found): exit 2."""

    code = "unscannable-model"
    exit_code = EXIT_USAGE


class ModelChangedError(VerificationError):
    """A model file changed on disk while it was being verified and loaded (exit 1)."""

    code = "model-changed"


class MalformedSignatureError(VerificationError):
    """The signature file is not a well-formed OMS bundle (an input error: exit 2)."""

    code = "malformed-signature"
    exit_code = EXIT_USAGE
    http_status = 400


class UnsupportedSignatureError(MalformedSignatureError):
    """The signature uses a format, method or algorithm modelseal does not verify (exit 2)."""

    code = "unsupported-signature"


# ------------------------------------------------------------------ registry, access, server


class NotFoundError(UsageError):
    """An unknown model, version, alias, upload, user or token (exit 2, HTTP 404)."""

    code = "not-found"
    http_status = 404


class ConflictError(UsageError):
    """The request conflicts with the current state: a name taken, a version deleted, an
    upload incomplete (exit 2, HTTP 409)."""

    code = "conflict"
    http_status = 409


class VersionTakenError(ConflictError):
    """An encrypted push wrapped its data key for a version number another push took first
    (the client wraps again for ``next_version`` and retries)."""

    code = "version-taken"

    def __init__(
        self, message: str, *, hint: str = "", topic: str = "", next_version: int = 0
    ) -> None:
        super().__init__(message, hint=hint, topic=topic)
        self.next_version = next_version


class KeyRequiredError(UsageError):
    """An encrypted version was pulled without a key-encryption key (exit 2)."""

    code = "key-required"


class TooLargeError(UsageError):
    """A file larger than the registry accepts (``max_file_bytes``; exit 2, HTTP 413)."""

    code = "too-large"
    http_status = 413


class AuthenticationError(ModelsealError):
    """A missing, unknown, expired or revoked token (exit 1, HTTP 401)."""

    code = "authentication-failed"
    exit_code = EXIT_FAILURE
    http_status = 401


class PermissionDeniedError(ModelsealError):
    """The caller's roles do not grant what was asked (exit 1, HTTP 403)."""

    code = "permission-denied"
    exit_code = EXIT_FAILURE
    http_status = 403


class RateLimitedError(ModelsealError):
    """Too many failed authentications from one address (exit 1, HTTP 429)."""

    code = "rate-limited"
    exit_code = EXIT_FAILURE
    http_status = 429

    def __init__(
        self, message: str, *, hint: str = "", topic: str = "", retry_after: float = 0.0
    ) -> None:
        super().__init__(message, hint=hint, topic=topic)
        self.retry_after = retry_after
        self.refusals = 1  # refusals of this source since it was last allowed


class DigestMismatchError(IntegrityError):
    """Uploaded or downloaded bytes differ from their signed digests (exit 1, HTTP 422)."""

    code = "digest-mismatch"


# ------------------------------------------------------------- protect, audit, store, client


class DecryptionError(VerificationError):
    """Ciphertext did not authenticate: wrong key, wrong associated data, or tampering (exit 1)."""

    code = "decryption-failed"


class KeysetError(KeyFileError):
    """A keyset file is malformed, of the wrong key type, or unusable (exit 2)."""

    code = "keyset"


class EnvelopeError(InputError):
    """An envelope or encrypted-directory header is malformed (exit 2)."""

    code = "envelope"


class ProviderError(InputError):
    """A key provider (local file, PKCS#11 token, AWS KMS) cannot be reached or used (exit 2)."""

    code = "key-provider"


class UnwrapError(VerificationError):
    """A wrapped data key does not unwrap under the given key-encryption key (exit 1)."""

    code = "unwrap-failed"


class TensorFormatError(InputError):
    """A weights file is malformed, or holds something that is not plain tensor data (exit 2)."""

    code = "tensor-format"


class AuditTamperedError(VerificationError):
    """The audit log does not verify (exit 1); carries every finding."""

    code = "audit-tampered"


class ProofError(InputError):
    """A proof was asked for sizes or indices the log does not have."""

    code = "proof"


class NoteError(InputError):
    """A signed note or checkpoint is malformed, or its signature does not verify."""

    code = "note"


class BlobStoreError(InputError):
    """The blob store cannot be reached or written."""

    code = "blob-store"


class BlobCorruptError(BlobStoreError):
    """A stored blob's content no longer matches its digest."""

    code = "blob-corrupt"


class DatabaseError(InputError):
    """The registry database cannot be opened, or is at an unknown schema version."""

    code = "database"


class ServerError(InputError):
    """The server could not be reached, or answered something that is not the registry API."""

    code = "server-unreachable"


# ------------------------------------------------------------------------------------ scanning


class ScanPathError(InputError):
    """A path given to scan does not exist, is not a file or directory, or cannot be read."""

    code = "scan-path"


class AllowlistError(UsageError):
    """An allow-list entry or allow-list config file is malformed (exit 2)."""

    code = "allowlist"


class UnscannableError(InputError):
    """Some file could not be scanned completely, so it is not clean (exit 2)."""

    code = "unscannable"


class UnsafePickleError(ModelsealError):
    """The restricted unpickler refused an operation outside the allow-list (exit 1)."""

    code = "unsafe-pickle"
    exit_code = EXIT_FAILURE


class ForbiddenGlobalError(ModelsealError):
    """The restricted unpickler refused a global that is not on the allow-list (exit 1)."""

    code = "forbidden-global"
    exit_code = EXIT_FAILURE

    def __init__(self, module: str, name: str) -> None:
        super().__init__(
            f"refused to load pickle global {module}.{name}: it is not on the allow-list",
            hint="scan the file to see what it imports; allow the global only if you trust it",
            topic="forbidden-global",
        )
        self.module = module
        self.name = name


# --------------------------------------------------------------------------------- serving


class InferenceInputError(InputError):
    """An inference request does not match the model's input signature or the protocol (400).

    ``tensor`` names the input (or output) the problem is about, when there is one."""

    code = "inference-input"

    def __init__(self, message: str, *, tensor: str | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.tensor = tensor


class ModelNotServedError(ModelsealError):
    """The server has no model of that name and version (404)."""

    code = "model-not-found"
    http_status = 404


class ModelNotReadyError(ModelsealError):
    """The model is known but not ready: it is loading, or it failed a check (400, as Triton
    answers; the reason is on the model's ready endpoint)."""

    code = "model-not-ready"


class ModelRefusedInputError(InferenceInputError):
    """The model itself refused an input its signature allows (its framework raised a
    ValueError, TypeError, KeyError or IndexError: an unseen category, for instance) (400)."""

    code = "model-refused-input"


class ModelFailedError(ModelsealError):
    """The model failed while answering, for a reason other than its input (500)."""

    code = "model-failed"
    http_status = 500


class RequestTooLargeError(InputError):
    """A request body or batch is over the server's limit (413)."""

    code = "request-too-large"
    http_status = 413
