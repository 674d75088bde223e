"""What the registry answers: the public views of models, versions, uploads and keys.

These are the response models of the registry's operations; the same classes describe the JSON
the HTTP API sends (and its OpenAPI document) and the values the Python API returns, in process
or through :mod:`modelseal.client`. Nothing here exposes where the registry stores a blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from modelseal.registry import models
from modelseal.registry.models import FileEntry, VersionInfo

# Inputs are checked by the same functions in process and behind the HTTP API, so both refuse
# the same values with the same message; the JSON schema states the rule for clients.
ModelName = Annotated[
    str,
    AfterValidator(models.check_model_name),
    WithJsonSchema({"type": "string", "pattern": models.MODEL_PATTERN, "maxLength": 128}),
]
AliasName = Annotated[
    str,
    AfterValidator(models.check_alias),
    WithJsonSchema({"type": "string", "pattern": models.ALIAS_PATTERN, "maxLength": 64}),
]
VersionNumber = Annotated[int, Field(ge=1, le=models.MAX_VERSION)]


def _lineage(value: Any) -> Any:
    return models.Lineage.from_dict(value) if isinstance(value, Mapping) else value


Lineage = Annotated[
    models.Lineage,
    BeforeValidator(_lineage),
    PlainSerializer(lambda lineage: lineage.to_dict()),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "training_data_digest": {"type": "string", "maxLength": 200},
                "code_revision": {"type": "string", "maxLength": 200},
                "parent_version": {"type": "integer", "minimum": 1},
            },
        }
    ),
]


class View(BaseModel):
    """Base of every answer: frozen, and unknown fields refused when read back."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Digest(View):
    """A content digest."""

    sha256: str = Field(description="Lower-case hex SHA-256.", pattern=r"^[0-9a-f]{64}$")


class FileView(View):
    """One file of a version."""

    path: str = Field(description="Path in the model ('.' for a single-file model).")
    size: int = Field(description="Plaintext size in bytes.")
    sha256: str = Field(description="SHA-256 of the plaintext.")
    stored_size: int | None = Field(
        None, description="Encrypted versions: the size of the ciphertext a download carries."
    )

    @property
    def transfer_size(self) -> int:
        """How many bytes a download of this file carries (ciphertext when encrypted)."""
        return self.stored_size if self.stored_size is not None else self.size

    @classmethod
    def of(cls, entry: FileEntry) -> FileView:
        """The public view of a stored file."""
        return cls(path=entry.path, size=entry.size, sha256=entry.blob,
                   stored_size=entry.stored_size)  # fmt: skip


class Encryption(View):
    """How an encrypted version's data key is wrapped."""

    provider: str | None = None
    kek_id: str | None = None
    envelope: dict[str, Any] | None = Field(
        None, description="Downloads only: the envelope/v1 document of the wrapped data key."
    )


class ScanSummary(View):
    """What scanning a version's files found when it was pushed."""

    status: str = Field(
        description="clean, unsafe, unscannable, or client-clean (an encrypted push the "
        "pushing client scanned)."
    )
    summary: str = Field("", description="How many findings, the worst, what was unscannable.")


class ScanReportView(View):
    """A version's full scan report (as ``modelseal scan --json`` prints it)."""

    model: str
    version: int
    status: str
    report: dict[str, Any]


class VersionView(View):
    """One version of a model."""

    model: str
    version: int
    root_digest: Digest
    signer: str
    created_at: str
    created_by: str
    metadata: dict[str, Any]
    lineage: Lineage
    files: list[FileView]
    aliases: list[str]
    deleted: bool
    deleted_at: str | None = None
    deleted_by: str | None = None
    delete_reason: str | None = None
    bundle: str | None = Field(None, description="The OMS signature bundle (resolve, download).")
    public_key: str | None = Field(None, description="The signer's PEM key, for key bundles.")
    encryption: Encryption | None = None
    scan: ScanSummary | None = Field(None, description="What scanning the pushed files found.")
    quarantined: bool = Field(False, description="Not downloadable until released.")

    @property
    def encrypted(self) -> bool:
        """Whether the version's files are stored encrypted."""
        return self.encryption is not None

    @classmethod
    def of(
        cls, info: VersionInfo, *, with_bundle: bool = False, with_key: bool = False
    ) -> VersionView:
        """The public view of a stored version; the bundle and the wrapped key only on request
        (the wrapped key is useless without the KEK, but least privilege)."""
        encryption = None
        if info.envelope is not None:
            key = info.envelope.get("dataKey", {})
            encryption = Encryption(
                provider=key.get("provider"),
                kek_id=key.get("kekId"),
                envelope=dict(info.envelope) if with_key else None,
            )
        return cls(
            model=info.model,
            version=info.number,
            root_digest=Digest(sha256=info.root_digest),
            signer=info.signer,
            created_at=info.created_at,
            created_by=info.created_by,
            metadata=dict(info.metadata),
            lineage=info.lineage,
            files=[FileView.of(f) for f in info.files],
            aliases=list(info.aliases),
            deleted=info.deleted,
            deleted_at=info.deleted_at,
            deleted_by=info.deleted_by,
            delete_reason=info.delete_reason,
            bundle=info.bundle if with_bundle else None,
            public_key=info.public_key if with_bundle else None,
            encryption=encryption,
            scan=None if info.scan_status is None else ScanSummary(
                status=info.scan_status, summary=info.scan_summary or ""),
            quarantined=info.quarantined,
        )  # fmt: skip


class ModelView(View):
    """A model and where its aliases point."""

    name: str
    created_at: str
    created_by: str
    latest_version: int | None = Field(
        description="The newest live version (none if all are deleted)."
    )
    aliases: dict[str, int]


class AliasView(View):
    """Where an alias points, and its last move."""

    alias: str
    version: int
    updated_at: str
    updated_by: str


class UploadView(View):
    """An upload in progress: the files the registry expects."""

    upload_id: str
    model: str
    files: list[str]
    root_digest: Digest
    encrypted: bool = False


class UploadState(View):
    """The number publishing an upload would give now (an encrypted push wraps for it)."""

    next_version: int


class ReceivedFile(View):
    """A file the registry received and checked against the signed manifest."""

    path: str
    size: int
    sha256: str
    stored_size: int | None = None


class SealedVersion(View):
    """What publishing an encrypted upload adds: the number its data key was wrapped for, the
    envelope, and each file's plaintext SHA-256 (hashed by the client while encrypting)."""

    version: VersionNumber
    envelope: dict[str, Any]
    plaintext_sha256: dict[str, str]
    client_scanned: bool = Field(
        False, description="The pushing client scanned the plaintext clean before encrypting."
    )


class VersionKey(View):
    """A wrapped data key held by the registry (what a key rotation re-wraps)."""

    model: str
    version: int
    root_digest: Digest
    envelope: dict[str, Any]

    @property
    def provider(self) -> str:
        """The provider of the key-encryption key that wraps it."""
        return str(self.envelope["dataKey"]["provider"])

    @property
    def kek_id(self) -> str:
        """The id of the key-encryption key that wraps it."""
        return str(self.envelope["dataKey"]["kekId"])


class KeyChange(View):
    """Replace a version's wrapped key ``old`` (compare-and-swap) with ``new`` (envelopes)."""

    model: str
    version: VersionNumber
    old: dict[str, Any]
    new: dict[str, Any]


class Replaced(View):
    """How many wrapped keys a rotation replaced."""

    replaced: int


class GcReport(View):
    """What a garbage collection deleted."""

    blobs_deleted: int
    bytes_freed: int
    uploads_expired: int
    temporaries_deleted: int


class TrustedKey(View):
    """A signer key the registry trusts for pushes."""

    id: str
    name: str
    added_at: str | None = None
    added_by: str | None = None
    purpose: str = "signer"


class KeyStatus(View):
    """A trusted key after a change."""

    id: str
    status: str
