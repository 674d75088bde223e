"""Where registry operations run: in process, on the embedded store (:class:`LocalBackend`, as
its single local administrator), or on a registry server (:class:`modelseal.client.Client`).
Both take the same typed operations and return the same typed answers; :func:`push` and
:func:`pull` are the client-side halves of moving a model, written once for both."""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar

from modelseal.access.roles import Principal
from modelseal.errors import (
    DigestMismatchError,
    InputError,
    KeyRequiredError,
    VersionTakenError,
)
from modelseal.fsinput import open_regular
from modelseal.operation import Operation
from modelseal.registry.config import RegistryConfig
from modelseal.registry.models import Lineage, VersionRef
from modelseal.registry.receive import UploadFile
from modelseal.registry.transfer import model_file, pull_into, read_chunks
from modelseal.registry.uploads import AbortUpload, BeginUpload, GetUploadState, PublishUpload
from modelseal.registry.versions import DownloadFile, GetDownload
from modelseal.registry.views import (
    FileView,
    ReceivedFile,
    SealedVersion,
    UploadView,
    VersionView,
)

if TYPE_CHECKING:
    from modelseal.crypto.providers import KeyProvider
    from modelseal.registry.core import Registry

OutT = TypeVar("OutT")
MAX_PUBLISH_ATTEMPTS = 20


class Progress(Protocol):
    """Told how many bytes a transfer moves, then as they go."""

    def start(self, total: int) -> None:
        """The transfer moves ``total`` bytes."""

    def advance(self, count: int) -> None:
        """``count`` more bytes went through."""


def _counted(chunks: Iterable[bytes], progress: Progress | None) -> Iterable[bytes]:
    if progress is None:
        return chunks
    return _reporting(chunks, progress)


def _reporting(chunks: Iterable[bytes], progress: Progress) -> Iterator[bytes]:
    for chunk in chunks:
        progress.advance(len(chunk))
        yield chunk


class Backend(Protocol):
    """Runs registry operations (in process or over HTTP)."""

    def call(self, operation: Operation[OutT]) -> OutT:
        """Run ``operation``; its typed answer."""

    def send(
        self, operation: UploadFile, chunks: Iterable[bytes], size: int | None = None
    ) -> ReceivedFile:
        """Run an upload of one file with ``chunks`` as its content."""

    def close(self) -> None:
        """Release what the backend holds."""


class LocalBackend:
    """The embedded store, acting as the local administrator (audited as ``local:<user>``)."""

    def __init__(self, registry: Registry, actor: Principal | None = None) -> None:
        self.registry = registry
        self.actor = actor or Principal(f"local:{_user()}", superuser=True, source="local")

    @classmethod
    def open(cls, config: RegistryConfig) -> LocalBackend:
        """Open the embedded store ``config`` describes."""
        from modelseal.registry.core import Registry

        return cls(Registry.open(config))

    def call(self, operation: Operation[OutT]) -> OutT:
        """Run ``operation`` in process."""
        return self.registry.run(self.actor, operation)

    def send(
        self, operation: UploadFile, chunks: Iterable[bytes], size: int | None = None
    ) -> ReceivedFile:
        """Store one file of an upload from ``chunks``."""
        return self.registry.receive(self.actor, operation, chunks)

    def close(self) -> None:
        """Close the store."""
        self.registry.close()


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
    progress: Progress | None = None,
) -> VersionView:
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
    upload = backend.call(
        BeginUpload(
            name=name,
            bundle=bundle.decode("utf-8", errors="replace"),
            public_key=key.decode("ascii", errors="replace") if key is not None else None,
            metadata=dict(metadata or {}),
            lineage=lineage or Lineage(),
            encrypted=kek is not None,
        )
    )
    try:
        if progress is not None:
            progress.start(sum(_size(model_file(root, p)) for p in upload.files))
        if kek is not None:
            return _push_encrypted(backend, upload, root, bundle, kek, progress)
        for path in upload.files:
            file = model_file(root, path)
            size = file.stat().st_size if file.is_file() else None
            chunks = _counted(read_chunks(file), progress)
            backend.send(UploadFile(upload_id=upload.upload_id, path=path), chunks, size)
        return backend.call(PublishUpload(upload_id=upload.upload_id))
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            backend.call(AbortUpload(upload_id=upload.upload_id))
        raise


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def _push_encrypted(
    backend: Backend,
    upload: UploadView,
    root: Path,
    bundle: bytes,
    kek: KeyProvider,
    progress: Progress | None,
) -> VersionView:
    from modelseal.crypto import keyset as ks
    from modelseal.registry import encryption as enc

    signed = enc.SignedFiles.from_bundle(bundle)
    if signed.root_digest != upload.root_digest.sha256:
        raise InputError(
            "the registry reports another manifest digest than the signature's",
            hint="check that the server is the registry you meant",
        )
    _scan_before_encrypting(upload, root)
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
        size = None if size is None else enc.ciphertext_size(size)
        operation = UploadFile(upload_id=upload.upload_id, path=path)
        backend.send(operation, _counted(chunks, progress), size)
        digests[path] = result.sha256
    for _ in range(MAX_PUBLISH_ATTEMPTS):
        number = backend.call(GetUploadState(upload_id=upload.upload_id)).next_version
        envelope = enc.wrap_data_key(
            data_key, kek, model=upload.model, number=number, root_digest=signed.root_digest
        )
        sealed = SealedVersion(version=number, envelope=envelope.to_dict(),
                               plaintext_sha256=digests, client_scanned=True)  # fmt: skip
        try:
            return backend.call(PublishUpload(upload_id=upload.upload_id, encryption=sealed))
        except VersionTakenError:  # another push of this model won the number: wrap again
            continue
    raise InputError(
        "could not publish: other pushes of this model kept taking the next number",
        hint="push again",
    )


def _scan_before_encrypting(upload: UploadView, root: Path) -> None:
    """The registry cannot scan ciphertext: scan the signed plaintext files here, and refuse to
    push what is not clean."""
    from modelseal.registry import push_scan
    from modelseal.scanning import scan

    report = scan([model_file(root, path) for path in upload.files]).to_dict()
    if report["status"] != push_scan.CLEAN:
        raise push_scan.refusal(upload.model, str(report["status"]), report)


def _open_model_file(path: Path) -> BinaryIO:
    try:
        return os.fdopen(open_regular(path), "rb")
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
    overwrite: bool = False,
    progress: Progress | None = None,
) -> VersionView:
    """Download ``ref`` into ``dest`` and verify it (see :func:`pull_into`; ``overwrite``
    replaces an existing ``dest`` once the download verified).

    An encrypted version needs ``kek`` (the key-encryption key it was pushed with): its data
    key is unwrapped here, each file is decrypted as it streams in (into a private staging
    path) and checked against its plaintext digest, then the whole model against its
    signature; nothing is moved to ``dest`` unless everything authenticated and verified.
    ``kek`` may be a function that opens the provider: it is called only for encrypted versions."""
    info = backend.call(GetDownload(name=ref.model, version=ref.number, alias=ref.alias))

    def fetch(path: str) -> Iterable[bytes]:
        operation = DownloadFile(name=info.model, number=info.version, path=path)
        return _counted(backend.call(operation).chunks, progress)

    total = sum(f.transfer_size for f in info.files)
    if not info.encrypted:
        if progress is not None:
            progress.start(total)
        pull_into(info, Path(dest), fetch, public_key=public_key, trust_anchors=trust_anchors,
                  overwrite=overwrite)  # fmt: skip
        return info

    if kek is None:
        raise KeyRequiredError(
            f"{info.model}:{info.version} is encrypted",
            hint="pull with the key-encryption key it was pushed with",
            topic="pull-encryption",
        )
    keys = _data_keys(ref, info, kek)
    if progress is not None:  # after the key is open: a passphrase prompt comes first
        progress.start(total)

    def write(entry: FileView, out: BinaryIO) -> None:
        _decrypt(keys, info, entry, fetch(entry.path), out)

    pull_into(info, Path(dest), fetch, public_key=public_key, trust_anchors=trust_anchors,
              write=write, private=True, overwrite=overwrite)  # fmt: skip
    return info


def download_to_memory(
    backend: Backend,
    ref: VersionRef,
    *,
    kek: KeyProvider | Callable[[], KeyProvider] | None = None,
) -> tuple[VersionView, dict[str, Any]]:
    """``ref``'s files downloaded into fresh process memory, each exactly its recorded size
    (relative path -> bytes; ``"."`` for a single-file model), nothing written to disk.

    An encrypted version needs ``kek`` (as :func:`pull`): each file is decrypted as it streams
    in, every segment authenticated and the plaintext checked against its recorded digest and
    size. Nothing else is verified here: the caller verifies the bytes against the version's
    signature (:func:`modelseal.loading.verified.load_verified` with ``contents``), hashing
    them once.
    """
    from modelseal.hashing.engine import new_buffer

    info = backend.call(GetDownload(name=ref.model, version=ref.number, alias=ref.alias))
    keys = None
    if info.encrypted:
        if kek is None:
            raise KeyRequiredError(
                f"{info.model}:{info.version} is encrypted",
                hint="give the key-encryption key it was pushed with",
                topic="serve-encryption",
            )
        keys = _data_keys(ref, info, kek)  # (after checking the version's identity)
    else:
        _check_identity(ref, info)  # the version asked for, and the digest its signature names
    contents: dict[str, Any] = {}
    for entry in info.files:
        buffer = new_buffer(entry.size)
        chunks = backend.call(
            DownloadFile(name=info.model, number=info.version, path=entry.path)
        ).chunks
        out = _MemoryFile(buffer)
        if keys is not None:
            _decrypt(keys, info, entry, chunks, out)  # type: ignore[arg-type]
        else:
            for chunk in chunks:
                out.write(chunk)
                if out.overflowed:
                    break
        if out.overflowed or out.done != entry.size:
            raise DigestMismatchError(
                f"{info.model}:{info.version}: {entry.path} is not the {entry.size} bytes recorded",
                hint="the registry's blob store was altered",
            )
        contents[entry.path] = buffer
    return info, contents


def _decrypt(
    keys: Any, info: VersionView, entry: FileView, chunks: Iterable[bytes], out: BinaryIO
) -> None:
    """Decrypt one file of ``info`` into ``out``, bound to its model, digest and path, and
    check its plaintext digest and size (see :func:`encryption.decrypt_file`)."""
    from modelseal.registry import encryption as enc

    enc.decrypt_file(
        keys, chunks, out,
        path=entry.path,
        associated_data=enc.blob_associated_data(info.model, info.root_digest.sha256,
                                                 entry.path),
        expected_sha256=entry.sha256,
        expected_size=entry.size,
    )  # fmt: skip


class _MemoryFile:
    """Writes into a buffer of a known size; refuses (and remembers) anything past its end."""

    def __init__(self, buffer: Any) -> None:
        self.view = memoryview(buffer)
        self.done = 0
        self.overflowed = False

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        """Copy ``data`` in; 0 (and nothing copied) when it would not fit."""
        size = len(data)
        if self.done + size > len(self.view):
            self.overflowed = True
            return 0
        self.view[self.done : self.done + size] = data
        self.done += size
        return size


def _data_keys(
    ref: VersionRef, info: VersionView, kek: KeyProvider | Callable[[], KeyProvider]
) -> Any:
    """The streaming keys of an encrypted version, unwrapped with ``kek``, bound to the
    version asked for."""
    from modelseal.crypto import envelope as env
    from modelseal.registry import encryption as enc

    _check_identity(ref, info)
    assert info.encryption is not None and info.encryption.envelope is not None
    provider = kek() if callable(kek) else kek
    return enc.unwrap_data_key(
        env.from_dict(info.encryption.envelope,
                      where=f"the envelope of {info.model}:{info.version}"),
        provider,
        model=info.model,
        number=info.version,
        root_digest=info.root_digest.sha256,
    )  # fmt: skip


def _check_identity(ref: VersionRef, info: VersionView) -> None:
    """The version is the one asked for and its digest the signature's: the data key's
    binding is then checked against values this side knows, not only what the server says."""
    from modelseal.registry import encryption as enc

    if info.model != ref.model or (ref.number is not None and info.version != ref.number):
        raise DigestMismatchError(
            f"the registry answered {info.model}:{info.version} for {ref}",
            hint="check that the server is the registry you meant",
        )
    signed = enc.SignedFiles.from_bundle((info.bundle or "").encode("utf-8"))
    if signed.root_digest != info.root_digest.sha256:
        raise DigestMismatchError(
            f"{info.model}:{info.version}: the recorded digest is not the signature's",
            hint="the registry's record was altered",
        )


def _read(path: Path, what: str) -> bytes:
    try:
        with os.fdopen(open_regular(path), "rb") as fh:  # never waits on a FIFO
            return fh.read()
    except OSError as exc:
        raise InputError(
            f"cannot read {what} {str(path)!r}: {exc.strerror}", hint="check the path"
        ) from None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


@contextlib.contextmanager
def pulled(
    backend: Backend,
    ref: str,
    *,
    public_key: str | os.PathLike[str] | None = None,
    trust_anchors: Sequence[str | os.PathLike[str]] = (),
) -> Iterator[tuple[VersionView, Path]]:
    """``ref`` (``NAME[:VERSION|@ALIAS]``) pulled and verified (see :func:`pull`) into a
    private temporary folder (0700) that is removed when the block ends: yields the version's
    view and the model's path."""
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="modelseal-pull-"))
    try:
        top.chmod(0o700)
        info = pull(backend, VersionRef.parse(ref), top / "model", public_key=public_key,
                    trust_anchors=trust_anchors)  # fmt: skip
        yield info, top / "model"
    finally:
        shutil.rmtree(top, ignore_errors=True)
