"""The AWS KMS provider: data keys wrapped by a KMS symmetric key (``Encrypt``/``Decrypt``).

URI: ``aws-kms:KEY[?region=REGION&endpoint=URL]`` where ``KEY`` is a key id, key ARN or
``alias/NAME``. Credentials, region and endpoint otherwise come from boto3's usual chain
(``AWS_REGION``, ``AWS_ENDPOINT_URL_KMS``, ...). The envelope context is passed as the KMS
encryption context ``{"modelseal": "data-key/v1", "context": BASE64}``, so CloudTrail shows it
and KMS refuses to decrypt under any other. The KEK id recorded is the key ARN.

Rotation: with an ``alias/`` URI, ``add_kek`` creates a new KMS key and points the alias at it;
``retire`` disables the old key (and schedules its deletion, 7-day minimum), after which KMS
refuses to decrypt what it wrapped. Tests run against moto's KMS server, an emulator.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs

from modelseal.crypto.providers import WrappedKey
from modelseal.errors import ProviderError, UnwrapError, UsageError

NAME = "aws-kms"
PENDING_DELETION_DAYS = 7


class AwsKmsProvider:
    """KEKs in AWS KMS."""

    def __init__(self, key: str, *, region: str | None = None, endpoint: str | None = None) -> None:
        if not key:
            raise ProviderError("aws-kms: needs a key", hint="e.g. --kek aws-kms:alias/models")
        self._key = key
        self._region = region
        self._endpoint = endpoint
        self._client: Any = None
        self._previous: set[str] = set()

    @property
    def name(self) -> str:
        """``aws-kms``, the provider scheme recorded in envelopes."""
        return NAME

    def _kms(self) -> Any:
        if self._client is None:
            try:
                import boto3  # type: ignore[import-untyped]
            except ImportError:
                raise ProviderError(
                    "AWS KMS support needs boto3", hint="pip install 'modelseal[crypto]'"
                ) from None
            self._client = boto3.client(
                "kms", region_name=self._region, endpoint_url=self._endpoint
            )
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )

        try:
            return getattr(self._kms(), operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if operation == "decrypt" and code in (
                "InvalidCiphertextException",
                "IncorrectKeyException",
                "AccessDeniedException",
                "DisabledException",
                "NotFoundException",
                "KMSInvalidStateException",
            ):
                raise UnwrapError(
                    f"AWS KMS refused to unwrap the data key ({code})",
                    hint="the KEK was retired (disabled) or the envelope was modified",
                ) from None
            raise ProviderError(
                f"AWS KMS {operation} failed for {self._key!r} ({code or 'error'})",
                hint="check the key id, region, credentials and permissions",
            ) from None
        except BotoCoreError as exc:
            raise ProviderError(
                f"cannot reach AWS KMS ({type(exc).__name__})",
                hint="check credentials, region (AWS_REGION) and endpoint",
            ) from None

    @staticmethod
    def _context(context: bytes) -> dict[str, str]:
        return {"modelseal": "data-key/v1", "context": base64.b64encode(context).decode("ascii")}

    def wrap(self, data_key: bytes, *, context: bytes) -> WrappedKey:
        """Encrypt ``data_key`` with the KMS key, ``context`` bound as its encryption context.

        The wrapped key names the KMS key by its ARN. Errors are :class:`ProviderError`.
        """
        out = self._call(
            "encrypt", KeyId=self._key, Plaintext=data_key, EncryptionContext=self._context(context)
        )
        return WrappedKey(NAME, str(out["KeyId"]), bytes(out["CiphertextBlob"]))

    def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        """Decrypt with the KMS key that wrapped ``wrapped``.

        A wrong ``context``, a modified ciphertext or a disabled or deleted key is an
        :class:`UnwrapError`; a key wrapped by another provider, or KMS unreachable, a
        :class:`ProviderError`.
        """
        if wrapped.provider != NAME:
            raise ProviderError(
                f"this data key was wrapped by the {wrapped.provider!r} provider, not {NAME!r}",
                hint=f"pass --kek {wrapped.provider}:...",
            )
        out = self._call(
            "decrypt",
            KeyId=wrapped.kek_id,
            CiphertextBlob=wrapped.ciphertext,
            EncryptionContext=self._context(context),
        )
        return bytes(out["Plaintext"])

    def current_kek_id(self) -> str:
        """The ARN of the KMS key the configured key id, ARN or alias names now."""
        return str(self._call("describe_key", KeyId=self._key)["KeyMetadata"]["Arn"])

    def kek_ids(self) -> frozenset[str]:
        """The current key's ARN and those this provider object rotated away from."""
        return frozenset({self.current_kek_id(), *self._previous})

    def add_kek(self) -> str:
        """Create a KMS key and point the configured alias at it; returns its ARN.

        The key URI must be an ``alias/`` (a :class:`UsageError` otherwise).
        """
        if not self._key.startswith("alias/"):
            raise UsageError(
                "AWS KMS rotation without --new-kek needs an alias/ key URI",
                hint="use --kek aws-kms:alias/NAME, or name the new key with --new-kek",
            )
        old = self.current_kek_id()
        new = self._call("create_key", Description="modelseal key-encryption key")["KeyMetadata"]
        self._call("update_alias", AliasName=self._key, TargetKeyId=new["KeyId"])
        self._previous.add(old)
        return str(new["Arn"])

    def retire(self, kek_ids: frozenset[str]) -> None:
        """Disable these KMS keys and schedule their deletion (``PENDING_DELETION_DAYS`` days)."""
        for kek_id in sorted(kek_ids):
            # The bare key id: KMS accepts it for keys of this account, and moto accepts no ARN.
            key_id = kek_id.rsplit("/", 1)[-1] if ":key/" in kek_id else kek_id
            self._call("disable_key", KeyId=key_id)
            self._call(
                "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=PENDING_DELETION_DAYS
            )


def from_uri(uri: str, *, passphrase: bytes | None = None) -> AwsKmsProvider:
    """``aws-kms:KEY[?region=R&endpoint=URL]``."""
    body = uri.split(":", 1)[1]
    key, _, query = body.partition("?")
    params = parse_qs(query, strict_parsing=False)
    unknown = set(params) - {"region", "endpoint"}
    if unknown:
        raise ProviderError(
            f"unknown aws-kms URI parameter {sorted(unknown)[0]!r}",
            hint="use region= and endpoint=",
        )
    region = params.get("region", [None])[-1]
    endpoint = params.get("endpoint", [None])[-1]
    return AwsKmsProvider(key, region=region, endpoint=endpoint)
