"""Encrypted versions: client-side envelope encryption of registry blobs.

Each encrypted version has its own data key (a one-key Tink ``AES256_GCM_HKDF_1MB`` keyset),
wrapped by a key-encryption key (KEK) that only the client's provider holds (``local:``,
``pkcs11:``, ``aws-kms:``). The pushing client hashes every plaintext file exactly as the signed
manifest says *while* encrypting it, and sends only ciphertext; the registry stores the
ciphertext (content-addressed by the ciphertext's SHA-256) and the wrapped key, and never sees
the KEK or a plaintext byte. A pulling client unwraps the key, decrypts streaming, checks each
file's plaintext SHA-256 and then the whole model against its signature.

Bindings (so no ciphertext or key can be moved unnoticed):

* the wrap of the data key is bound (envelope/v1 context) to
  ``modelseal.crypto.associated_data(model, version number, "sha256:" + root digest)``;
* each file's ciphertext is bound, as streaming-AEAD associated data, to the length-prefixed
  list ``"modelseal/registry-blob/v1", model, "sha256:" + root digest, path`` - and to the
  version by its data key, which no other version shares. (The version number cannot be in the
  blob's associated data: it is assigned only when the version is published.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from modelseal.errors import DigestMismatchError, InputError, Reason
from modelseal.registry.models import shown

if TYPE_CHECKING:
    from modelseal.crypto.envelope import Envelope
    from modelseal.crypto.keyset import Keyset, StreamingKey
    from modelseal.crypto.providers import KeyProvider
    from modelseal.hashing.manifest import Serialization
    from modelseal.signing.statement import SignedStatement

BLOB_LABEL = b"modelseal/registry-blob/v1"
SEGMENT = 1 << 20  # AES256_GCM_HKDF_1MB
HEADER = 1 + 32 + 7  # header length byte, salt, nonce prefix
TAG = 16

Item = tuple[int | None, int | None, bytes]


def version_associated_data(model: str, number: int, root_digest: str) -> bytes:
    """What a version's wrapped data key is bound to (see the module docstring)."""
    from modelseal.crypto.api import associated_data

    return associated_data(
        model_name=model, version=str(number), manifest_digest=f"sha256:{root_digest}"
    )


def blob_associated_data(model: str, root_digest: str, path: str) -> bytes:
    """What one file's ciphertext is bound to (see the module docstring)."""
    parts = (BLOB_LABEL, model.encode(), f"sha256:{root_digest}".encode(), path.encode())
    return b"".join(len(p).to_bytes(8, "big") + p for p in parts)


def ciphertext_size(plaintext: int) -> int:
    """The exact ciphertext length of ``plaintext`` bytes under the data-key template."""
    first = SEGMENT - HEADER - TAG
    segments = 1 if plaintext <= first else 1 + -(-(plaintext - first) // (SEGMENT - TAG))
    return HEADER + plaintext + TAG * segments


def plaintext_size(ciphertext: int) -> int | None:
    """The plaintext length a well-formed ciphertext of this length holds (None if none)."""
    body = ciphertext - HEADER
    if body < TAG:
        return None
    first = SEGMENT - HEADER
    segments = 1 if body <= first else 1 + -(-(body - first) // SEGMENT)
    plain = body - TAG * segments
    return plain if plain >= 0 and ciphertext_size(plain) == ciphertext else None


# ------------------------------------------------------------------------ the signed manifest


@dataclasses.dataclass(frozen=True)
class SignedFiles:
    """What the signature says about each file: its manifest items (none for empty files)."""

    serialization: Serialization
    items: Mapping[str, tuple[Item, ...]]
    empty: frozenset[str]
    root_digest: str

    @classmethod
    def from_statement(cls, statement: SignedStatement) -> SignedFiles:
        """The signed files of a verified statement."""
        from modelseal.registry.signature import empty_files

        items: dict[str, list[Item]] = {}
        for item in statement.manifest.items:
            items.setdefault(item.path, []).append((item.start, item.end, item.digest))
        empty = frozenset(empty_files(statement))
        for path in empty:
            items.setdefault(path, [])
        return cls(
            statement.manifest.serialization,
            {p: tuple(sorted(v, key=_order)) for p, v in items.items()},
            empty,
            statement.manifest.root_digest.hex(),
        )

    @classmethod
    def from_bundle(cls, bundle: bytes) -> SignedFiles:
        """Parse (not verify: the registry does that) a bundle's manifest."""
        from modelseal.signing.bundle import parse_bundle
        from modelseal.signing.statement import parse_payload

        return cls.from_statement(parse_payload(parse_bundle(bundle).payload))

    def signed_size(self, path: str) -> int | None:
        """The size a shards signature fixes (files signatures do not)."""
        if self.serialization.method != "shards":
            return None
        return max((int(end or 0) for _, end, _ in self.items.get(path, ())), default=0)

    def check(self, path: str, got: Sequence[Item], size: int) -> None:
        """Raise :class:`DigestMismatchError` unless ``got`` (hashed) is what was signed."""
        want = list(self.items.get(path, ()))
        found = sorted(got, key=_order)
        if path in self.empty:
            found, want = [(None, None, b"")] * (size > 0), []
        if found != want:
            raise mismatch(path)

    def digest_of(self, path: str) -> str | None:
        """The file's SHA-256 if the signature records exactly that (files, sha256)."""
        if self.serialization.method != "files" or self.serialization.hash_type != "sha256":
            return None
        found = self.items.get(path, ())
        return found[0][2].hex() if len(found) == 1 else None


def mismatch(path: str) -> DigestMismatchError:
    """The error for a file whose plaintext differs from its signed digest."""
    return DigestMismatchError(
        f"{shown(path)} does not match its signed digest",
        reasons=[Reason("modified", f"{path} differs from the signed manifest", path)],
        hint="the file changed after signing or in transit; push the signed files",
    )


def _order(item: Item) -> tuple[int, int]:
    return (item[0] or 0, item[1] or 0)


# ------------------------------------------------------------------------------- push side


@dataclasses.dataclass
class PlainDigest:
    """Filled in when a file's ciphertext stream has been fully produced and checked."""

    sha256: str = ""
    size: int = 0


class _HashingReader:
    """Reads a plaintext file, feeding the SHA-256 and the manifest hasher as it goes."""

    def __init__(self, handle: BinaryIO, path: str, serialization: Serialization) -> None:
        from modelseal.registry.ingest import StreamingItems

        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.items = StreamingItems(path, serialization)
        self.size = 0

    def readinto(self, view: memoryview) -> int:
        n = self.handle.readinto(view) or 0  # type: ignore[attr-defined]
        if n:
            part = view[:n]
            self.sha256.update(part)
            self.items.update(part)  # type: ignore[arg-type]
            self.size += n
        return n


class _Cancelled(Exception):
    pass


_DONE = object()


def encrypted_chunks(
    key: StreamingKey,
    open_file: Callable[[], BinaryIO],
    *,
    path: str,
    signed: SignedFiles,
    associated_data: bytes,
    result: PlainDigest,
    workers: int = 2,
) -> Iterator[bytes]:
    """The ciphertext of one model file, for streaming to the registry.

    The plaintext is hashed as the signed manifest says while it is encrypted; the final
    ciphertext segment (without which the ciphertext does not authenticate) is released only
    after the digests matched, else the stream raises :class:`DigestMismatchError`.
    """
    from modelseal.crypto import streaming

    pending: queue.Queue[Any] = queue.Queue(maxsize=4)
    cancelled = threading.Event()

    def put(item: Any) -> None:
        while True:
            if cancelled.is_set():
                raise _Cancelled
            try:
                pending.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    class HoldBack:
        held: bytes | None = None

        def write(self, data: bytes | bytearray | memoryview, /) -> int:
            if self.held is not None:
                put(self.held)
            self.held = bytes(data)  # the pipeline reuses its buffers: copy
            return len(self.held)

    def produce() -> None:
        out = HoldBack()
        try:
            with open_file() as handle:
                reader = _HashingReader(handle, path, signed.serialization)
                streaming.encrypt_stream(
                    key,
                    reader,  # type: ignore[arg-type]
                    out,
                    associated_data=associated_data,
                    workers=workers,
                )
            items = [(i.start, i.end, i.digest) for i in reader.items.items()]
            if signed.serialization.method == "files" and signed.serialization.hash_type == (
                "sha256"
            ):
                items = [(None, None, reader.sha256.digest())]
            signed.check(path, items, reader.size)
            result.sha256, result.size = reader.sha256.hexdigest(), reader.size
            if out.held is not None:
                put(out.held)
            put(_DONE)
        except _Cancelled:
            return
        except BaseException as exc:
            with contextlib.suppress(_Cancelled):
                put(exc)

    thread = threading.Thread(target=produce, name="modelseal-push-encrypt", daemon=True)
    thread.start()
    try:
        while True:
            item = pending.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
        thread.join()


# ------------------------------------------------------------------------------- pull side


class _ChunkReader:
    """A file-like reader over an iterable of chunks (a download)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)


def decrypt_file(
    keys: Sequence[StreamingKey],
    chunks: Iterable[bytes],
    out: BinaryIO,
    *,
    path: str,
    associated_data: bytes,
    expected_sha256: str,
    expected_size: int,
    workers: int = 2,
) -> None:
    """Decrypt one downloaded file into ``out`` and check its plaintext digest and size.

    Raises :class:`~modelseal.errors.DecryptionError` (tampered, truncated, wrong key or
    binding) or :class:`DigestMismatchError`; ``out`` then holds unauthenticated bytes that
    the caller must discard.
    """
    from modelseal.crypto import streaming
    from modelseal.errors import DecryptionError

    writer = _HashingWriter(out)
    try:
        streaming.decrypt_stream(
            keys,
            _ChunkReader(chunks),  # type: ignore[arg-type]
            writer,
            associated_data=associated_data,
            workers=workers,
        )
    except DecryptionError as exc:
        raise DecryptionError(
            f"{shown(path)}: {exc.message}",
            hint="the registry's ciphertext was altered or belongs elsewhere; do not use it",
        ) from None
    if writer.sha256.hexdigest() != expected_sha256 or writer.size != expected_size:
        raise mismatch(path)


# ------------------------------------------------------------------------------ data keys


def new_data_key() -> Keyset:
    """A fresh one-key streaming-AEAD keyset for one version."""
    from modelseal.crypto import keyset as ks

    return ks.new_streaming_keyset()


def wrap_data_key(
    data_key: Keyset, provider: KeyProvider, *, model: str, number: int, root_digest: str
) -> Envelope:
    """The envelope of a version's data key, bound to the version's identity."""
    from modelseal.crypto import envelope as env
    from modelseal.crypto import keyset as ks

    ad = version_associated_data(model, number, root_digest)
    digest = env.ad_digest(ad)
    wrapped = provider.wrap(
        ks.to_binary(data_key), context=env.CONTEXT_LABEL + bytes.fromhex(digest)
    )
    return env.Envelope(wrapped, digest)


def unwrap_data_key(
    envelope: Envelope, provider: KeyProvider, *, model: str, number: int, root_digest: str
) -> tuple[StreamingKey, ...]:
    """The decryption keys of a version, after checking the envelope was made for it."""
    from modelseal.crypto import envelope as env
    from modelseal.crypto import keyset as ks
    from modelseal.errors import UnwrapError

    ad = version_associated_data(model, number, root_digest)
    try:
        data_key = env.open_envelope(envelope, provider, associated_data=ad)
    except UnwrapError as exc:
        raise UnwrapError(
            f"cannot unwrap the data key of {model}:{number}: {exc.message}",
            hint="pull with the key-encryption key it was pushed with (--kek URI)",
        ) from None
    keys = ks.decryption_keys(data_key)
    if not keys:
        raise InputError(f"the data key of {model}:{number} holds no key", hint="")
    return keys
