"""The registry's own values (frozen) and its name rules. What it answers callers is in
:mod:`modelseal.registry.views`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from modelseal.errors import InputError

MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ALIAS_PATTERN = r"^[a-z][a-z0-9._-]{0,63}$"
_MODEL = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_ALIAS = re.compile(r"\A[a-z][a-z0-9._-]{0,63}\Z")
RESERVED_ALIASES = frozenset({"latest"})
# Version numbers and the like are stored as 32-bit integers on every database.
MAX_VERSION = 2**31 - 1


def check_model_name(name: str) -> str:
    """``name`` if it is a valid model (or user) name, else :class:`InputError`."""
    if not _MODEL.match(name):
        raise InputError(
            f"invalid model name {name!r}",
            hint="use letters, digits, '.', '_' and '-' (at most 128, starting alphanumeric)",
        )
    return name


def check_alias(alias: str) -> str:
    """``alias`` if it is a valid alias name, else :class:`InputError`."""
    if not _ALIAS.match(alias) or alias in RESERVED_ALIASES:
        raise InputError(
            f"invalid alias {alias!r}",
            hint="use lower-case letters, digits, '.', '_', '-' (not 'latest')",
        )
    return alias


@dataclasses.dataclass(frozen=True)
class VersionRef:
    """``NAME``, ``NAME:3``, ``NAME@production`` (latest when neither is given)."""

    model: str
    number: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> VersionRef:
        """``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; :class:`InputError` if malformed."""
        if "@" in text:
            model, alias = text.split("@", 1)
            return cls(check_model_name(model), alias=check_alias(alias))
        if ":" in text:
            model, number = text.split(":", 1)
            if not number.isdigit() or int(number) < 1:
                raise InputError(f"invalid version {number!r}", hint="versions are 1, 2, 3, ...")
            return cls(check_model_name(model), number=int(number))
        return cls(check_model_name(text))

    def __str__(self) -> str:
        if self.alias:
            return f"{self.model}@{self.alias}"
        if self.number:
            return f"{self.model}:{self.number}"
        return self.model


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One file of a version: its path, plaintext size and SHA-256. For encrypted versions
    ``stored``/``stored_size`` name the ciphertext object in the blob store (registry-side)."""

    path: str
    size: int
    blob: str
    stored: str | None = None
    stored_size: int | None = None

    @property
    def transfer_size(self) -> int:
        """How many bytes a download of this file carries (ciphertext when encrypted)."""
        return self.stored_size if self.stored_size is not None else self.size


@dataclasses.dataclass(frozen=True)
class Lineage:
    """Where a version came from (all optional)."""

    training_data_digest: str | None = None
    code_revision: str | None = None
    parent_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lineage:
        """Lineage from JSON values; :class:`InputError` names a bad field."""
        unknown = set(data) - {"training_data_digest", "code_revision", "parent_version"}
        if unknown:
            raise InputError(
                f"unknown lineage field {sorted(unknown)[0]!r}",
                hint="use training_data_digest, code_revision, parent_version",
            )
        parent = data.get("parent_version")
        if parent is not None and (not isinstance(parent, int) or isinstance(parent, bool)):
            raise InputError("parent_version must be a version number", hint="e.g. 3")
        for key in ("training_data_digest", "code_revision"):
            value = data.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > 200):
                raise InputError(f"{key} must be a short string", hint="at most 200 characters")
        return cls(data.get("training_data_digest"), data.get("code_revision"), parent)


@dataclasses.dataclass(frozen=True)
class VersionInfo:
    """A version as the registry stores it (with where its blobs are)."""

    model: str
    number: int
    root_digest: str
    signer: str
    created_at: str
    created_by: str
    metadata: Mapping[str, Any]
    lineage: Lineage
    files: tuple[FileEntry, ...]
    aliases: tuple[str, ...]
    bundle: str
    public_key: str | None
    deleted_at: str | None = None
    deleted_by: str | None = None
    delete_reason: str | None = None
    # Encrypted versions: the envelope/v1 document of the version's wrapped data key.
    envelope: Mapping[str, Any] | None = None
    # What scanning the pushed files found (None: pushed before scans were recorded).
    scan_status: str | None = None
    scan_summary: str | None = None
    quarantined_at: str | None = None

    @property
    def deleted(self) -> bool:
        """Whether the version was tombstoned."""
        return self.deleted_at is not None

    @property
    def quarantined(self) -> bool:
        """Whether the version waits in quarantine (its scan was not clean)."""
        return self.quarantined_at is not None

    @property
    def encrypted(self) -> bool:
        """Whether its files are stored encrypted."""
        return self.envelope is not None


def shown(path: str) -> str:
    """A signed resource path as messages show it: quoted, or "the model file" for the ``"."``
    of a single-file model."""
    return "the model file" if path == "." else repr(path)
