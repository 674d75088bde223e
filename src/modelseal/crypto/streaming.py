"""Tink-compatible streaming AEAD: ``AesGcmHkdfStreaming`` (e.g. ``AES256_GCM_HKDF_1MB``).

Ciphertext layout (the same bytes Tink reads and writes)::

    header  = header_len (1 byte: 1 + salt + 7) || salt (derived-key size) || nonce_prefix (7)
    body    = segment_0 || segment_1 || ... || segment_n      (each: AES-GCM ciphertext || tag)

* the segment key is ``HKDF(hash, ikm=key_value, salt=salt, info=associated_data)``;
* segment ``i`` is encrypted with nonce ``nonce_prefix || i (4 bytes, big-endian) || last``,
  ``last`` being 1 for the final segment and 0 otherwise, and empty GCM associated data;
* a ciphertext segment is ``segment_size`` bytes (the first one ``segment_size - header_len``)
  except the last, which is shorter or equal; an empty plaintext is one empty final segment.

So truncation at a segment boundary, reordering, duplication or removal of segments, a
modified byte, the wrong key or the wrong associated data all fail authentication. Segments are
sealed and opened on a small thread pool (AES-GCM in ``cryptography`` releases the GIL); memory
stays bounded by the number of segments in flight, whatever the stream length.
"""

from __future__ import annotations

import collections
import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from modelseal.crypto.errors import DecryptionError
from modelseal.crypto.keyset import NONCE_PREFIX_SIZE, TAG_SIZE, StreamingKey
from modelseal.errors import InputError

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha512": hashes.SHA512,
}
MAX_SEGMENTS = 1 << 32
DEFAULT_WORKERS = 2


class Writable(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


def _segment_key(key: StreamingKey, salt: bytes, associated_data: bytes) -> AESGCM:
    hkdf = HKDF(
        algorithm=_HASHES[key.hkdf_hash](),
        length=key.derived_key_size,
        salt=salt,
        info=associated_data,
    )
    return AESGCM(hkdf.derive(key.key_value))


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _read_exact(src: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at end of stream (raw streams may return short reads)."""
    data = src.read(size)
    if data is None:
        data = b""
    if len(data) == size or not data:
        return data
    parts = [data]
    have = len(data)
    while have < size:
        more = src.read(size - have)
        if not more:
            break
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def _chunks(src: BinaryIO, first: int, rest: int) -> Iterator[tuple[int, bytes, bool]]:
    """``(index, chunk, is_last)`` with one chunk of look-ahead; always at least one chunk."""
    current = _read_exact(src, first)
    index = 0
    while True:
        following = (
            _read_exact(src, rest) if len(current) == (first if index == 0 else rest) else b""
        )
        yield index, current, not following
        if not following:
            return
        current = following
        index += 1


def _ordered(
    jobs: Iterator[Callable[[], bytes]], write: Callable[[bytes], object], workers: int
) -> None:
    """Run ``jobs`` on ``workers`` threads, writing their results in order, a bounded window."""
    if workers <= 1:
        for job in jobs:
            write(job())
        return
    window: collections.deque[Future[bytes]] = collections.deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelseal-aead") as pool:
        try:
            for job in jobs:
                window.append(pool.submit(job))
                if len(window) > 2 * workers:
                    write(window.popleft().result())
            while window:
                write(window.popleft().result())
        finally:
            for pending in window:
                pending.cancel()


def encrypt_stream(
    key: StreamingKey,
    src: BinaryIO,
    dst: Writable,
    *,
    associated_data: bytes = b"",
    workers: int = DEFAULT_WORKERS,
) -> int:
    """Encrypt all of ``src`` into ``dst``; returns the number of plaintext bytes.

    Uses a fresh random salt and nonce prefix, so encrypting twice never repeats a nonce.
    """
    salt = secrets.token_bytes(key.derived_key_size)
    prefix = secrets.token_bytes(NONCE_PREFIX_SIZE)
    aead = _segment_key(key, salt, associated_data)
    dst.write(bytes([key.header_size]) + salt + prefix)
    first = key.segment_size - key.header_size - TAG_SIZE
    rest = key.segment_size - TAG_SIZE
    total = 0

    def jobs() -> Iterator[Callable[[], bytes]]:
        nonlocal total
        for index, chunk, last in _chunks(src, first, rest):
            if index >= MAX_SEGMENTS:
                raise InputError("plaintext too long for one stream", hint="split the file")
            total += len(chunk)
            nonce = _nonce(prefix, index, last)

            def job(nonce: bytes = nonce, chunk: bytes = chunk) -> bytes:
                return aead.encrypt(nonce, chunk, None)

            yield job

    _ordered(jobs(), dst.write, workers)
    return total


class _Replay:
    """A reader that first returns ``head`` and then continues with ``tail``."""

    def __init__(self, head: bytes, tail: BinaryIO) -> None:
        self._head = head
        self._tail = tail

    def read(self, size: int) -> bytes:
        if self._head:
            out, self._head = self._head[:size], self._head[size:]
            if len(out) < size:
                out += _read_exact(self._tail, size - len(out))
            return out
        return _read_exact(self._tail, size)


_WRONG = "ciphertext does not decrypt: wrong key, wrong associated data, or the data was modified"
_WRONG_HINT = "check --keyset and --associated-data; do not use this file otherwise"


def _open_first(
    keys: Sequence[StreamingKey], src: BinaryIO, associated_data: bytes
) -> tuple[StreamingKey, AESGCM, bytes, bytes, _Replay]:
    """Find the key whose header and first segment authenticate.

    Returns the key, its segment cipher, the nonce prefix, the first plaintext segment (already
    authenticated, not yet released) and a reader positioned after the first segment.
    """
    if not keys:
        raise DecryptionError("the keyset holds no enabled streaming key", hint=_WRONG_HINT)
    longest = max(k.segment_size for k in keys)
    head = _read_exact(src, longest + 1)
    if not head:
        raise DecryptionError(
            "ciphertext is empty (not even a header)", hint="the file was truncated"
        )
    for key in keys:
        if head[0] != key.header_size or len(head) < key.header_size + TAG_SIZE:
            continue
        salt = head[1 : 1 + key.derived_key_size]
        prefix = head[1 + key.derived_key_size : key.header_size]
        aead = _segment_key(key, salt, associated_data)
        first_end = key.segment_size
        segment = head[key.header_size : first_end]
        last = len(head) <= first_end
        try:
            plain = aead.decrypt(_nonce(prefix, 0, last), segment, None)
        except InvalidTag:
            continue
        return key, aead, prefix, plain, _Replay(head[first_end:], src)
    if (
        head[0] not in {k.header_size for k in keys}
        or len(head) < min(k.header_size for k in keys) + TAG_SIZE
    ):
        raise DecryptionError(
            "not a streaming AEAD ciphertext for this keyset (bad header, or truncated)",
            hint=_WRONG_HINT,
        )
    raise DecryptionError(_WRONG, hint=_WRONG_HINT)


def _segment_failure(
    aead: AESGCM, prefix: bytes, index: int, segment: bytes, last: bool
) -> DecryptionError:
    """Why segment ``index`` failed, as precisely as can be told without guessing."""
    try:
        aead.decrypt(_nonce(prefix, index, not last), segment, None)
    except InvalidTag:
        pass
    else:
        if last:
            return DecryptionError(
                f"ciphertext is truncated (it ends after segment {index}, which is not the last)",
                hint="the file is incomplete; fetch it again",
            )
    return DecryptionError(
        f"segment {index} does not authenticate: the ciphertext was modified, reordered, "
        "truncated or extended",
        hint="do not use this file; fetch it again",
    )


def decrypt_stream(
    keys: Sequence[StreamingKey],
    src: BinaryIO,
    dst: Writable,
    *,
    associated_data: bytes = b"",
    workers: int = DEFAULT_WORKERS,
) -> int:
    """Decrypt ``src`` into ``dst`` with the first of ``keys`` that authenticates.

    Raises :class:`DecryptionError` on any failure. Plaintext of earlier segments may already
    have been written when a later one fails: callers that must not leave plaintext behind
    write to a temporary file and keep it only once this returns (see :mod:`.api`).
    """
    key, aead, prefix, first_plain, rest = _open_first(keys, src, associated_data)
    dst.write(first_plain)
    total = len(first_plain)
    size = key.segment_size

    def jobs() -> Iterator[Callable[[], bytes]]:
        nonlocal total
        # The first segment is done; continue with full segments, one of look-ahead.
        current = rest.read(size)
        index = 1
        while current:
            if index >= MAX_SEGMENTS:
                raise DecryptionError("ciphertext has too many segments", hint=_WRONG_HINT)
            following = rest.read(size) if len(current) == size else b""
            last = not following
            if len(current) < TAG_SIZE:
                raise DecryptionError(
                    f"segment {index} is shorter than a tag: the ciphertext was truncated",
                    hint="the file is incomplete; fetch it again",
                )
            total += len(current) - TAG_SIZE

            def job(segment: bytes = current, index: int = index, last: bool = last) -> bytes:
                try:
                    return aead.decrypt(_nonce(prefix, index, last), segment, None)
                except InvalidTag:
                    raise _segment_failure(aead, prefix, index, segment, last) from None

            yield job
            current = following
            index += 1

    _ordered(jobs(), dst.write, workers)
    return total


def encrypt_bytes(key: StreamingKey, plaintext: bytes, *, associated_data: bytes = b"") -> bytes:
    """One-shot :func:`encrypt_stream` for data already in memory."""
    import io

    out = io.BytesIO()
    encrypt_stream(key, io.BytesIO(plaintext), out, associated_data=associated_data)
    return out.getvalue()


def decrypt_bytes(
    keys: Sequence[StreamingKey], ciphertext: bytes, *, associated_data: bytes = b""
) -> bytes:
    """One-shot :func:`decrypt_stream`; returns plaintext only if every segment authenticated."""
    import io

    out = io.BytesIO()
    decrypt_stream(keys, io.BytesIO(ciphertext), out, associated_data=associated_data)
    return out.getvalue()
