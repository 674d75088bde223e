"""The local blob store: large blobs written with early write-back are stored whole."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from modelseal.registry import blobs
from modelseal.registry.blobs import BlobStore


def test_large_blob_with_write_back_is_stored_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real = blobs._write_back

    def spy(handle: IO[bytes]) -> Callable[[int], None]:
        flush = real(handle)
        assert flush is not None  # Linux: sync_file_range is there

        def counted(count: int) -> None:
            before = handle.tell()
            flush(count)
            calls.append((count, before))

        return counted

    monkeypatch.setattr(blobs, "_write_back", spy)
    store = BlobStore(str(tmp_path / "store"))
    data = os.urandom(21 * blobs.CHUNK + 123)
    chunks = [data[i : i + blobs.CHUNK] for i in range(0, len(data), blobs.CHUNK)]
    stored = store.put(iter(chunks))
    assert stored.digest == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    assert b"".join(store.read(stored.digest)) == data
    assert sum(c for c, _ in calls) == len(data)
    assert not list(store.temporaries())


def test_write_back_starts_every_few_mib(tmp_path: Path) -> None:
    started: list[tuple[int, int, int]] = []

    class Libc:
        def sync_file_range(self, fd: int, offset: int, count: int, flags: int) -> int:
            started.append((offset, count, flags))
            return 0

    blobs._libc.cache_clear()
    try:
        with open(tmp_path / "f", "wb") as fh:
            original = blobs._libc
            blobs._libc = lambda: Libc()  # type: ignore[assignment]
            try:
                flush = blobs._write_back(fh)
            finally:
                blobs._libc = original
            assert flush is not None
            for _ in range(20):
                fh.write(b"x" * blobs.CHUNK)
                flush(blobs.CHUNK)
    finally:
        blobs._libc.cache_clear()
    step = blobs._WRITE_BACK
    assert started == [(i * step, step, 2) for i in range(20 * blobs.CHUNK // step)]
