"""Content-addressed blob storage through fsspec: a local folder by default, S3 (or any
S3-compatible store) by ``s3://bucket/prefix`` URL.

Layout under the root: ``sha256/<2 hex>/<64 hex>`` for blobs and ``incoming/<random>`` for
uploads in flight. A blob is written to ``incoming/`` while it is hashed and only then moved to
its digest's name, so a blob name always matches its content; identical content is stored once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import queue
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from modelseal.errors import BlobCorruptError, BlobStoreError

_DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")
CHUNK = 1 << 20
_WRITE_BACK = 8 << 20  # start the disk write of every this many bytes while receiving more


@dataclasses.dataclass(frozen=True)
class StoredBlob:
    """A blob written to the store: its SHA-256 and size."""

    digest: str
    size: int


class BlobStore:
    """Blobs by SHA-256 under one root of one fsspec filesystem."""

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec  # type: ignore[import-untyped]

        self.url = url
        options = dict(storage_options or {})
        if url.startswith("s3://"):
            endpoint = os.environ.get("MODELSEAL_S3_ENDPOINT_URL")
            if endpoint and "endpoint_url" not in options:
                options["endpoint_url"] = endpoint
            # Listings must be fresh: other processes add and collect blobs.
            options.setdefault("use_listings_cache", False)
            options.setdefault("skip_instance_cache", True)
            self.fs: Any = fsspec.filesystem("s3", **options)
            self.root = url[len("s3://") :].rstrip("/")
            self.local = False
        else:
            path = url[len("file://") :] if url.startswith("file://") else url
            self.fs = fsspec.filesystem("file")
            self.root = str(Path(path).expanduser().resolve())
            self.local = True
            try:
                Path(self.root, "incoming").mkdir(parents=True, exist_ok=True)
                Path(self.root, "sha256").mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BlobStoreError(
                    f"cannot use {path!r} as the blob store: {exc.strerror}",
                    hint="give a folder the registry may write to, or an s3:// URL",
                ) from None

    def path(self, digest: str) -> str:
        """Where blob ``digest`` lives in the store."""
        if not _DIGEST.match(digest):
            raise BlobStoreError(f"invalid blob digest {digest!r}", hint="expected 64 hex digits")
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def put(
        self, chunks: Iterable[bytes], *, observe: Callable[[bytes], None] | None = None
    ) -> StoredBlob:
        """Stream ``chunks`` into the store, hashing as they arrive; ``observe`` sees each chunk
        too (the manifest hashers). Returns the blob's digest and size.

        Hashing (this thread) and writing (a helper thread) overlap: both release the GIL on
        large buffers, so a push costs about the slower of the two, not their sum."""
        tmp = f"{self.root}/incoming/{secrets.token_hex(16)}"
        hasher = hashlib.sha256()
        size = 0
        pending: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        failed: list[BaseException] = []

        def write() -> None:
            try:
                with self._open_write(tmp) as out:
                    flush = _write_back(out) if self.local else None
                    while (chunk := pending.get()) is not None:
                        out.write(chunk)
                        if flush is not None:
                            flush(len(chunk))
            except BaseException as exc:
                failed.append(exc)
                while pending.get() is not None:  # drain so the producer never blocks
                    pass

        writer = threading.Thread(target=write, name="modelseal-blob-writer", daemon=True)
        writer.start()
        try:
            try:
                for chunk in chunks:
                    if not chunk:
                        continue
                    if failed:
                        break
                    hasher.update(chunk)
                    if observe is not None:
                        observe(chunk)
                    pending.put(chunk)
                    size += len(chunk)
            finally:
                pending.put(None)
                writer.join()
            if failed:
                raise BlobStoreError(
                    f"cannot write to the blob store: {failed[0]}",
                    hint="check the blob store's space and permissions",
                )
            digest = hasher.hexdigest()
            self._commit(tmp, self.path(digest))
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise
        return StoredBlob(digest, size)

    @contextlib.contextmanager
    def _open_write(self, path: str) -> Iterator[IO[bytes]]:
        if self.local:
            with open(path, "xb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        else:
            with self.fs.open(path, "wb") as handle:
                yield handle

    def _commit(self, tmp: str, final: str) -> None:
        # Always replace: identical content, and a fresh timestamp protects the blob from a
        # concurrent garbage collection during its grace period.
        if self.local:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(os.path.dirname(final))
        else:
            self.fs.mv(tmp, final)

    def exists(self, digest: str) -> bool:
        """Whether blob ``digest`` is stored."""
        return bool(self.fs.exists(self.path(digest)))

    def size(self, digest: str) -> int:
        """The size of blob ``digest`` in bytes."""
        return int(self.fs.size(self.path(digest)))

    def local_path(self, digest: str) -> str | None:
        """The blob's file on this machine (a local store), else ``None`` (S3)."""
        return self.path(digest) if self.local else None

    def read(self, digest: str, *, verify: bool = True) -> Iterator[bytes]:
        """The blob's bytes in chunks; with ``verify`` the last chunk is followed by a check that
        the content still hashes to its name (raises :class:`BlobCorruptError`)."""
        hasher = hashlib.sha256()
        with self.fs.open(self.path(digest), "rb") as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
                yield chunk
        if verify and hasher.hexdigest() != digest:
            raise BlobCorruptError(
                f"stored blob {digest[:16]}... does not match its digest",
                hint="the blob store was altered; restore the blob from a backup",
            )

    def digests(self) -> Iterator[tuple[str, float]]:
        """Every stored blob with its modification time (seconds since the epoch)."""
        for path, info in self._find(f"{self.root}/sha256"):
            name = path.rsplit("/", 1)[-1]
            if _DIGEST.match(name):
                yield name, _mtime(info)

    def temporaries(self) -> Iterator[tuple[str, float]]:
        """Temporary files left by interrupted writes, with their modification times."""
        for path, info in self._find(f"{self.root}/incoming"):
            yield path, _mtime(info)

    def _find(self, base: str) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        yield from found.items()

    def delete(self, digest: str) -> None:
        """Delete blob ``digest`` (gone already is fine)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(digest))

    def delete_path(self, path: str) -> None:
        """Delete the file at ``path`` in the store (a temporary)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path)


def _mtime(info: dict[str, Any]) -> float:
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
    return time.time()


def _write_back(handle: IO[bytes]) -> Callable[[int], None] | None:
    """A callback that starts the kernel writing a file's data to disk every ``_WRITE_BACK``
    bytes (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, asynchronous), so that the final fsync
    waits for the last few MiB instead of the whole blob: the disk works while data still
    arrives. Durability still comes from that fsync. ``None`` where the call does not exist."""
    libc = _libc()
    if libc is None:
        return None
    fd = handle.fileno()
    state = {"written": 0, "started": 0}

    def flush(count: int) -> None:
        state["written"] += count
        pending = state["written"] - state["started"]
        if pending >= _WRITE_BACK:
            handle.flush()
            # SYNC_FILE_RANGE_WRITE = 2; a failure only loses the head start.
            libc.sync_file_range(fd, state["started"], pending, 2)
            state["started"] = state["written"]

    return flush


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.sync_file_range.argtypes = [
            ctypes.c_int,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_uint,
        ]
    except (OSError, AttributeError):
        return None
    return libc


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
