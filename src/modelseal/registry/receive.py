"""Receiving one file of an upload: streamed into the blob store and hashed as it arrives, as
the signed manifest says; a file whose digests differ from the signed ones is refused, and
nothing past the signed size or the registry's cap is ever written."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, NoReturn

from pydantic import Field
from sqlalchemy import delete, insert

from modelseal.errors import (
    DigestMismatchError,
    InputError,
    ModelsealError,
    Reason,
    TooLargeError,
)
from modelseal.hashing.manifest import Serialization
from modelseal.operation import Operation, Route
from modelseal.registry.blobs import StoredBlob
from modelseal.registry.core import RegistrySession
from modelseal.registry.ingest import StreamingItems
from modelseal.registry.models import shown
from modelseal.registry.signature import empty_files
from modelseal.registry.uploads import checked_signature, expected_files, upload_row
from modelseal.registry.views import ReceivedFile
from modelseal.store.schema import upload_files

_Item = tuple[int | None, int | None, bytes]


class UploadFile(Operation[ReceivedFile]):
    """Stream one file of an upload (the raw request body); it is hashed as it arrives."""

    route: ClassVar[Route] = Route(
        "PUT",
        "/v1/uploads/{upload_id}/files/{path:path}",
        tag="uploads",
        errors=(404, 413, 422),
        body="bytes",
    )
    upload_id: str = Field(max_length=64)
    path: str = Field(max_length=4096)

    def run(self, session: RegistrySession, body: Iterable[bytes]) -> ReceivedFile:
        """Store and check the file; what was received."""
        upload_id, path = self.upload_id, self.path
        with session.reading() as conn:
            row = upload_row(conn, session, upload_id)
        checked = checked_signature(session, upload_id, row)
        manifest = checked.statement.manifest
        expected = expected_files(checked)
        if path not in expected:
            raise InputError(
                f"{shown(path)} is not a file of the signed model",
                hint="push exactly the files the signature lists",
            )
        receipt = _Receipt(session, upload_id, path, f"model/{row['model_name']}")
        serialization = manifest.serialization
        limit = _signed_size(serialization.method, expected[path])
        if limit is not None and limit > session.registry.max_file_bytes:
            receipt.too_large()
        if row["encrypted"]:
            return receipt.ciphertext(body, limit)
        # A shards signature fixes the size: stop a longer body early. Else the registry's cap.
        chunks = _bounded(body, limit, cap=session.registry.max_file_bytes)
        try:
            blob, items = _store_hashed(session, path, serialization, chunks)
        except _OverCapError:
            receipt.too_large()
        except _TooLongError as exc:
            receipt.refuse(DigestMismatchError(
                f"{shown(path)} is longer than its signed size ({exc.limit} bytes)",
                reasons=[Reason("modified", f"{path} is longer than signed", path)],
                hint="push the signed files",
            ))  # fmt: skip
        want = sorted(((i.start, i.end, i.digest) for i in expected[path]), key=_order)
        got = sorted(items, key=_order)
        if path in empty_files(checked.statement):
            got, want = [(None, None, b"")] * (blob.size > 0), []
        if got != want:
            receipt.refuse(DigestMismatchError(
                f"{shown(path)} does not match its signed digest",
                reasons=[Reason("modified", f"{path} differs from the signed manifest", path)],
                hint="the file changed after signing or in transit; push the signed files",
            ))  # fmt: skip
        receipt.record(blob=blob.digest, size=blob.size)
        return ReceivedFile(path=path, size=blob.size, sha256=blob.digest)


class _Receipt:
    """One file being received: how it is refused (audited) or recorded."""

    def __init__(self, session: RegistrySession, upload_id: str, path: str, resource: str):
        self.session, self.upload_id, self.path, self.resource = session, upload_id, path, resource
        self.details: dict[str, Any] = {"path": path, "upload": upload_id[:12]}

    def refuse(self, error: ModelsealError) -> NoReturn:
        """Record ``error`` as a denied push, then raise it."""
        self.session.deny("version.publish", self.resource, error, details=self.details)

    def too_large(self) -> NoReturn:
        cap = self.session.registry.max_file_bytes
        self.refuse(TooLargeError(
            f"{shown(self.path)} is larger than this registry accepts ({cap} bytes)",
            hint="ask the registry's administrator to raise max_file_bytes",
                topic="max-file-bytes",
        ))  # fmt: skip

    def record(self, **values: Any) -> None:
        """Record (or replace) what was received for the path in the open upload."""
        session, upload_id = self.session, self.upload_id
        with session.transaction() as conn:
            upload_row(conn, session, upload_id)
            conn.execute(
                delete(upload_files).where(
                    upload_files.c.upload_id == upload_id, upload_files.c.path == self.path
                )
            )
            conn.execute(insert(upload_files).values(upload_id=upload_id, path=self.path, **values))

    def ciphertext(self, body: Iterable[bytes], limit: int | None) -> ReceivedFile:
        """Store one file's ciphertext. Without the key the registry checks what it can: the
        ciphertext's form and length (against the signed size for shards signatures); the
        pushing client checked the plaintext digests while encrypting (a mismatch it finds
        reaches here as the stream's error and is audited like one found here)."""
        from modelseal.registry import encryption as enc

        path, cap = self.path, self.session.registry.max_file_bytes
        self.details["encrypted"] = True
        chunks = _bounded(body, None if limit is None else enc.ciphertext_size(limit),
                          cap=enc.ciphertext_size(cap))  # fmt: skip
        try:
            blob = self.session.blobs.put(chunks)
        except _OverCapError:
            self.too_large()
        except _TooLongError:
            self.refuse(DigestMismatchError(
                f"{shown(path)} is longer than its signed size ({limit} bytes)",
                reasons=[Reason("modified", f"{path} is longer than signed", path)],
                hint="push the signed files",
            ))  # fmt: skip
        except DigestMismatchError as exc:  # found by the encrypting client (embedded store)
            self.refuse(exc)
        plain = enc.plaintext_size(blob.size)
        if plain is None or (limit is not None and plain != limit):
            self.refuse(DigestMismatchError(
                f"{shown(path)}: the ciphertext's length does not fit "
                + ("a streaming ciphertext" if plain is None else "the signed size"),
                reasons=[Reason("modified", f"{path} has the wrong ciphertext length", path)],
                hint="push the signed files with the same modelseal version",
            ))  # fmt: skip
        assert plain is not None
        self.record(blob=blob.digest, size=plain, stored=blob.digest, stored_size=blob.size)
        return ReceivedFile(path=path, size=plain, sha256=blob.digest, stored_size=blob.size)


def _store_hashed(
    session: RegistrySession, path: str, serialization: Serialization, chunks: Iterable[bytes]
) -> tuple[StoredBlob, list[_Item]]:
    """Store the stream, hashing it as ``serialization`` says; return the manifest items."""
    if serialization.method == "files" and serialization.hash_type == "sha256":
        # The blob's own SHA-256 is the manifest digest: hash once.
        blob = session.blobs.put(chunks)
        return blob, [(None, None, bytes.fromhex(blob.digest))]
    hasher = StreamingItems(path, serialization)
    blob = session.blobs.put(chunks, observe=hasher.update)
    return blob, [(i.start, i.end, i.digest) for i in hasher.items()]


class _TooLongError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class _OverCapError(Exception):
    """A file went past the registry's ``max_file_bytes``."""


def _signed_size(method: str, items: list[Any]) -> int | None:
    """The file size a signature fixes (shards record offsets; files mode does not)."""
    if method != "shards":
        return None
    return max((int(i.end) for i in items), default=0)


def _bounded(chunks: Iterable[bytes], limit: int | None, *, cap: int) -> Iterator[bytes]:
    """``chunks``, stopped as soon as they go past the signed size ``limit`` (if any) or the
    registry's ``cap``: nothing past either is ever written."""
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if limit is not None and seen > limit:
            raise _TooLongError(limit)
        if seen > cap:
            raise _OverCapError
        yield chunk


def _order(item: _Item) -> tuple[int, int]:
    return (item[0] or 0, item[1] or 0)
