"""What the CLI talks to: the embedded store directly (as its single local administrator) or a
registry server over HTTP (:class:`modelseal.server.client.RemoteBackend`). Both offer the same
operations and return the same values."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from modelseal.access.roles import Principal
from modelseal.access.tokens import NewToken
from modelseal.errors import InputError
from modelseal.registry.config import RegistryConfig
from modelseal.registry.models import (
    FileEntry,
    GcReport,
    KeyChange,
    Lineage,
    ModelInfo,
    SealedVersion,
    UploadInfo,
    VersionInfo,
    VersionKey,
    VersionRef,
)
from modelseal.registry.transfer import model_file, pull_into, read_chunks

if TYPE_CHECKING:
    from modelseal.crypto.providers import KeyProvider

MAX_PUBLISH_ATTEMPTS = 20


class Backend(Protocol):
    def begin_upload(
        self,
        name: str,
        *,
        bundle: bytes,
        public_key: bytes | None,
        metadata: Mapping[str, Any],
        lineage: Lineage,
        encrypted: bool = False,
    ) -> UploadInfo: ...

    def send_file(
        self, upload: UploadInfo, path: str, chunks: Iterable[bytes], size: int | None = None
    ) -> None: ...

    def next_version(self, upload: UploadInfo) -> int: ...

    def publish(self, upload: UploadInfo, sealed: SealedVersion | None = None) -> VersionInfo: ...

    def version_keys(self, provider: str | None) -> list[VersionKey]: ...

    def replace_version_keys(
        self, changes: list[KeyChange], *, new_kek_id: str, retiring: list[str]
    ) -> int: ...

    def abort(self, upload: UploadInfo) -> None: ...

    def download_info(self, ref: VersionRef) -> VersionInfo: ...

    def fetch(self, info: VersionInfo, path: str) -> Iterable[bytes]: ...

    def get_version(self, ref: VersionRef) -> VersionInfo: ...

    def set_alias(self, name: str, alias: str, version: int) -> VersionInfo: ...

    def list_models(self) -> list[ModelInfo]: ...

    def list_versions(self, name: str) -> list[VersionInfo]: ...

    def delete_version(self, name: str, version: int, reason: str) -> VersionInfo: ...

    def gc(self, grace_seconds: float) -> GcReport: ...

    def create_user(self, name: str) -> None: ...

    def disable_user(self, name: str) -> None: ...

    def list_users(self) -> list[dict[str, Any]]: ...

    def grant_role(self, user: str, role: str, scope: str) -> None: ...

    def revoke_role(self, user: str, role: str, scope: str) -> None: ...

    def create_token(
        self, user: str, expires_in: dt.timedelta | None, description: str
    ) -> NewToken: ...

    def revoke_token(self, token_id: str) -> None: ...

    def add_trusted_key(self, pem: bytes, name: str) -> dict[str, str]: ...

    def remove_trusted_key(self, key_id: str) -> None: ...

    def list_trusted_keys(self) -> list[dict[str, str]]: ...

    def audit_checkpoint(self) -> str: ...

    def audit_records(self, *, export: bool) -> Iterator[dict[str, Any]]: ...

    def audit_inclusion(self, index: int, size: int | None) -> dict[str, Any]: ...

    def audit_consistency(self, old: int, new: int | None) -> dict[str, Any]: ...

    def close(self) -> None: ...


def push(
    backend: Backend,
    model_path: str | os.PathLike[str],
    *,
    name: str,
    signature: str | os.PathLike[str],
    public_key: str | os.PathLike[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    lineage: Lineage | None = None,
    kek: KeyProvider | None = None,
) -> VersionInfo:
    """Publish the signed model at ``model_path`` as the next version of ``name``.

    With ``kek`` the version is encrypted on this side: a fresh data key encrypts every file
    (checked against the signed manifest while it streams), only ciphertext is sent, and the
    data key is wrapped by ``kek`` for the version (see :mod:`modelseal.registry.encryption`).
    """
    root = Path(model_path)
    if not root.exists():
        raise InputError(f"model path {str(root)!r} does not exist", hint="check the path")
    bundle = _read(Path(signature), "signature")
    key = _read(Path(public_key), "public key") if public_key is not None else None
    upload = backend.begin_upload(
        name,
        bundle=bundle,
        public_key=key,
        metadata=metadata or {},
        lineage=lineage or Lineage(),
        encrypted=kek is not None,
    )
    try:
        if kek is not None:
            return _push_encrypted(backend, upload, root, bundle, kek)
        for path in upload.files:
            file = model_file(root, path)
            size = file.stat().st_size if file.is_file() else None
            backend.send_file(upload, path, read_chunks(file), size)
        return backend.publish(upload)
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            backend.abort(upload)
        raise


def _push_encrypted(
    backend: Backend, upload: UploadInfo, root: Path, bundle: bytes, kek: KeyProvider
) -> VersionInfo:
    from modelseal.crypto import keyset as ks
    from modelseal.registry import encryption as enc
    from modelseal.registry.errors import VersionTakenError

    signed = enc.SignedFiles.from_bundle(bundle)
    if signed.root_digest != upload.root_digest:
        raise InputError(
            "the registry reports another manifest digest than the signature's",
            hint="check --server",
        )
    data_key = enc.new_data_key()
    key = ks.primary_streaming_key(data_key)
    digests: dict[str, str] = {}
    for path in upload.files:
        file = model_file(root, path)
        size = file.stat().st_size if file.is_file() else None
        result = enc.PlainDigest()
        chunks = enc.encrypted_chunks(
            key,
            lambda file=file: _open_model_file(file),  # type: ignore[misc]
            path=path,
            signed=signed,
            associated_data=enc.blob_associated_data(upload.model, signed.root_digest, path),
            result=result,
        )
        backend.send_file(upload, path, chunks, None if size is None else enc.ciphertext_size(size))
        digests[path] = result.sha256
    for _ in range(MAX_PUBLISH_ATTEMPTS):
        number = backend.next_version(upload)
        envelope = enc.wrap_data_key(
            data_key, kek, model=upload.model, number=number, root_digest=signed.root_digest
        )
        try:
            return backend.publish(upload, SealedVersion(number, envelope.to_dict(), digests))
        except VersionTakenError:  # another push of this model won the number: wrap again
            continue
    raise InputError(
        "could not publish: other pushes of this model kept taking the next number",
        hint="push again",
    )


def _open_model_file(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(
            f"cannot read {str(path)!r}: {exc.strerror}", hint="check the model files"
        ) from None


def pull(
    backend: Backend,
    ref: VersionRef,
    dest: str | os.PathLike[str],
    *,
    public_key: str | os.PathLike[str] | None = None,
    trust_anchors: Sequence[str | os.PathLike[str]] = (),
    kek: KeyProvider | Callable[[], KeyProvider] | None = None,
) -> VersionInfo:
    """Download ``ref`` into ``dest`` and verify it (see :func:`pull_into`).

    An encrypted version needs ``kek`` (the key-encryption key it was pushed with): its data
    key is unwrapped here, each file is decrypted as it streams in (into a private staging
    path) and checked against its plaintext digest, then the whole model against its
    signature; nothing is moved to ``dest`` unless everything authenticated and verified.
    ``kek`` may be a function that opens the provider: it is called only for encrypted versions."""
    info = backend.download_info(ref)
    if not info.encrypted:
        pull_into(
            info,
            Path(dest),
            lambda path: backend.fetch(info, path),
            public_key=public_key,
            trust_anchors=trust_anchors,
        )
        return info
    from modelseal.crypto import envelope as env
    from modelseal.registry import encryption as enc
    from modelseal.registry.errors import KeyRequiredError

    if kek is None:
        raise KeyRequiredError(
            f"{info.model}:{info.number} is encrypted",
            hint="pull with --kek URI (the key-encryption key it was pushed with)",
        )
    _check_identity(ref, info)
    assert info.envelope is not None
    provider = kek() if callable(kek) else kek
    keys = enc.unwrap_data_key(
        env.from_dict(info.envelope, where=f"the envelope of {info.model}:{info.number}"),
        provider,
        model=info.model,
        number=info.number,
        root_digest=info.root_digest,
    )

    def write(entry: FileEntry, out: BinaryIO) -> None:
        enc.decrypt_file(
            keys,
            backend.fetch(info, entry.path),
            out,
            path=entry.path,
            associated_data=enc.blob_associated_data(info.model, info.root_digest, entry.path),
            expected_sha256=entry.blob,
            expected_size=entry.size,
        )

    pull_into(
        info,
        Path(dest),
        lambda path: backend.fetch(info, path),
        public_key=public_key,
        trust_anchors=trust_anchors,
        write=write,
        private=True,
    )
    return info


def _check_identity(ref: VersionRef, info: VersionInfo) -> None:
    """The version is the one asked for and its digest the signature's: the data key's
    binding is then checked against values this side knows, not only what the server says."""
    from modelseal.registry import encryption as enc
    from modelseal.registry.errors import DigestMismatchError

    if info.model != ref.model or (ref.number is not None and info.number != ref.number):
        raise DigestMismatchError(
            f"the registry answered {info.model}:{info.number} for {ref}", hint="check --server"
        )
    if enc.SignedFiles.from_bundle(info.bundle.encode("utf-8")).root_digest != info.root_digest:
        raise DigestMismatchError(
            f"{info.model}:{info.number}: the recorded digest is not the signature's",
            hint="the registry's record was altered",
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read {what} {str(path)!r}: {exc.strerror}", hint="check the path"
        ) from None


class LocalBackend:
    """The embedded store, acting as the local administrator (audited as ``local:<user>``)."""

    def __init__(self, config: RegistryConfig) -> None:
        from modelseal.registry.service import Registry

        self.registry = Registry.open(config)
        self.actor = Principal(f"local:{_user()}", superuser=True, source="local")

    def begin_upload(
        self,
        name: str,
        *,
        bundle: bytes,
        public_key: bytes | None,
        metadata: Mapping[str, Any],
        lineage: Lineage,
        encrypted: bool = False,
    ) -> UploadInfo:
        return self.registry.begin_upload(
            self.actor, name, bundle=bundle, public_key=public_key, metadata=metadata,
            lineage=lineage, encrypted=encrypted,
        )  # fmt: skip

    def send_file(
        self, upload: UploadInfo, path: str, chunks: Iterable[bytes], size: int | None = None
    ) -> None:
        self.registry.receive_file(self.actor, upload.id, path, chunks)

    def next_version(self, upload: UploadInfo) -> int:
        return self.registry.next_version(self.actor, upload.id)

    def publish(self, upload: UploadInfo, sealed: SealedVersion | None = None) -> VersionInfo:
        return self.registry.publish(self.actor, upload.id, sealed=sealed)

    def version_keys(self, provider: str | None) -> list[VersionKey]:
        return self.registry.version_keys(self.actor, provider=provider)

    def replace_version_keys(
        self, changes: list[KeyChange], *, new_kek_id: str, retiring: list[str]
    ) -> int:
        return self.registry.replace_version_keys(
            self.actor, changes, new_kek_id=new_kek_id, retiring=retiring
        )

    def abort(self, upload: UploadInfo) -> None:
        self.registry.abort_upload(self.actor, upload.id)

    def download_info(self, ref: VersionRef) -> VersionInfo:
        return self.registry.download(self.actor, ref)

    def fetch(self, info: VersionInfo, path: str) -> Iterator[bytes]:
        return self.registry.read_file(info, path)

    def get_version(self, ref: VersionRef) -> VersionInfo:
        return self.registry.get_version(self.actor, ref)

    def set_alias(self, name: str, alias: str, version: int) -> VersionInfo:
        return self.registry.set_alias(self.actor, name, alias, version)

    def list_models(self) -> list[ModelInfo]:
        return self.registry.list_models(self.actor)

    def list_versions(self, name: str) -> list[VersionInfo]:
        return self.registry.list_versions(self.actor, name)

    def delete_version(self, name: str, version: int, reason: str) -> VersionInfo:
        return self.registry.delete_version(self.actor, name, version, reason=reason)

    def gc(self, grace_seconds: float) -> GcReport:
        return self.registry.gc(self.actor, grace_seconds=grace_seconds)

    def create_user(self, name: str) -> None:
        self.registry.create_user(self.actor, name)

    def disable_user(self, name: str) -> None:
        self.registry.disable_user(self.actor, name)

    def list_users(self) -> list[dict[str, Any]]:
        return self.registry.list_users(self.actor)

    def grant_role(self, user: str, role: str, scope: str) -> None:
        self.registry.grant_role(self.actor, user, role, scope)

    def revoke_role(self, user: str, role: str, scope: str) -> None:
        self.registry.revoke_role(self.actor, user, role, scope)

    def create_token(
        self, user: str, expires_in: dt.timedelta | None, description: str
    ) -> NewToken:
        return self.registry.create_token(
            self.actor, user, expires_in=expires_in, description=description
        )

    def revoke_token(self, token_id: str) -> None:
        self.registry.revoke_token(self.actor, token_id)

    def add_trusted_key(self, pem: bytes, name: str) -> dict[str, str]:
        return self.registry.add_trusted_key(self.actor, pem, name=name)

    def remove_trusted_key(self, key_id: str) -> None:
        self.registry.remove_trusted_key(self.actor, key_id)

    def list_trusted_keys(self) -> list[dict[str, str]]:
        return self.registry.list_trusted_keys(self.actor)

    def audit_checkpoint(self) -> str:
        return self.registry.audit_checkpoint(self.actor)

    def audit_records(self, *, export: bool) -> Iterator[dict[str, Any]]:
        for record in self.registry.audit_records(self.actor, export=export):
            yield record.to_dict()

    def audit_inclusion(self, index: int, size: int | None) -> dict[str, Any]:
        return self.registry.audit_inclusion(self.actor, index, size)

    def audit_consistency(self, old: int, new: int | None) -> dict[str, Any]:
        return self.registry.audit_consistency(self.actor, old, new)

    def close(self) -> None:
        self.registry.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def open_backend(config: RegistryConfig) -> Backend:
    """The embedded store, or the server when one is configured."""
    if config.server:
        from modelseal.server.client import RemoteBackend

        return RemoteBackend(config.server, token=config.token)
    return LocalBackend(config)
