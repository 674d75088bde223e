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
import dataclasses
import io
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from modelseal.crypto.keyset import NONCE_PREFIX_SIZE, TAG_SIZE, StreamingKey
from modelseal.errors import DecryptionError, InputError

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha512": hashes.SHA512,
}
MAX_SEGMENTS = 1 << 32
DEFAULT_WORKERS = 2


class Writable(Protocol):
    """Where output goes: anything with a binary ``write`` (a file, a socket, a buffer)."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int | None:
        """Write ``data``; return how many bytes were taken (``None``: all of them)."""
        ...


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
    buffer = bytearray(size)
    n = _readinto_exact(src, memoryview(buffer))
    del buffer[n:]
    return bytes(buffer)


def _readinto_exact(src: Any, view: memoryview) -> int:
    """Fill ``view`` from ``src``; fewer bytes only at end of stream. Returns the count."""
    readinto = getattr(src, "readinto", None)
    have = 0
    while have < len(view):
        if readinto is not None:
            n = readinto(view[have:]) or 0
        else:
            data = src.read(len(view) - have) or b""
            n = len(data)
            view[have : have + n] = data
        if not n:
            break
        have += n
    return have


def _write_all(dst: Writable, view: memoryview) -> None:
    """Write all of ``view`` (raw files may write less than asked)."""
    while len(view):
        n = dst.write(view)
        if n is None or n >= len(view):
            return
        view = view[n:]


# process(index, input, output, is_last) fills ``output`` from ``input`` (or raises).
Process = Callable[[int, memoryview, memoryview, bool], None]


def _check_segment(index: int, length: int, min_size: int) -> None:
    """Segment ``index`` of ``length`` bytes can exist (checked before it is processed)."""
    if length < min_size:
        raise DecryptionError(
            f"segment {index} is shorter than a tag: the ciphertext was truncated",
            hint="the file is incomplete; fetch it again",
        )
    if index >= MAX_SEGMENTS:
        raise InputError("stream too long (2^32 segments)", hint="split the file")


def _regular_file(src: Any) -> tuple[int, int, int] | None:
    """``(fd, position, size)`` of an unbuffered regular file (whose segments workers can read at
    their offsets), else None (read in order)."""
    if not isinstance(src, io.FileIO):
        return None
    try:
        fd = src.fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return fd, os.lseek(fd, 0, os.SEEK_CUR), st.st_size
    except (OSError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How a stream is cut into segments: the first chunk read is ``first_size`` bytes, the
    others ``size``; each output is ``out_delta`` bytes longer than its input; segment numbers
    start at ``start_index``; a segment shorter than ``min_size`` is refused; ``workers``
    threads process segments."""

    first_size: int
    size: int
    out_delta: int
    start_index: int
    min_size: int
    workers: int


def _pipeline_pread(
    fd: int, position: int, end: int, dst: Writable, process: Process, layout: _Layout
) -> int:
    """:func:`_pipeline` for a regular file: the segment layout follows from the file's size, so
    each worker reads its own segment at its offset (the copying out of the file is spread over
    the cores) while this thread writes the outputs in order. A file that changes size meanwhile
    is an error, never a shorter output."""
    first_size, size, out_delta = layout.first_size, layout.size, layout.out_delta
    start_index, min_size, workers = layout.start_index, layout.min_size, layout.workers
    total = max(0, end - position)
    count = 1 if total <= first_size else 1 + -(-(total - first_size) // size)
    last_length = total if count == 1 else total - first_size - (count - 2) * size

    def length(index: int) -> int:
        return last_length if index == count - 1 else (first_size if index == 0 else size)

    # Every segment can exist (only the last may be short): checked before any output.
    _check_segment(start_index + count - 1, last_length, min_size)
    if count > 1:
        _check_segment(start_index, first_size, min_size)
    window = 2 * workers
    slots = window + 1
    inputs = [bytearray(size) for _ in range(slots)]
    outputs = [bytearray(size + out_delta) for _ in range(slots)]

    def job(index: int, offset: int, n: int) -> memoryview:
        slot = index % slots
        source = memoryview(inputs[slot])[:n]
        got = 0
        while got < n:
            m = os.preadv(fd, [source[got:]], offset + got)
            if m == 0:
                raise InputError(
                    "the input file shrank while it was being read",
                    hint="make sure nothing modifies it meanwhile",
                )
            got += m
        target = memoryview(outputs[slot])[: n + out_delta]
        process(start_index + index, source, target, index == count - 1)
        return target

    pending: collections.deque[Future[memoryview]] = collections.deque()
    offset = position
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelseal-aead") as pool:
        try:
            for index in range(count):
                n = length(index)
                pending.append(pool.submit(job, index, offset, n))
                offset += n
                while len(pending) > window:
                    _write_all(dst, pending.popleft().result())
            while pending:
                _write_all(dst, pending.popleft().result())
        finally:
            for left in pending:
                left.cancel()
    if os.fstat(fd).st_size != end:
        raise InputError(
            "the input file changed size while it was being read",
            hint="make sure nothing modifies it meanwhile",
        )
    os.lseek(fd, end, os.SEEK_SET)  # as if read in order
    return total


def _pipeline(src: Any, dst: Writable, process: Process, layout: _Layout) -> int:
    """Read ``src`` in chunks (``first_size``, then ``size``), transform each chunk into an
    output ``out_delta`` bytes longer, and write the outputs in order; returns bytes read.

    Buffers are allocated once and reused (no per-segment allocation: that halves throughput).
    With ``workers > 1`` up to ``2 * workers`` chunks are processed concurrently; a buffer is
    reused only after the chunk that used it was written. One chunk of look-ahead tells the
    last chunk apart (an empty stream is one empty, last chunk).
    """
    first_size, size, out_delta = layout.first_size, layout.size, layout.out_delta
    start_index, min_size, workers = layout.start_index, layout.min_size, layout.workers
    if workers > 1:
        positional = _regular_file(src)
        if positional is not None:
            fd, position, end = positional
            return _pipeline_pread(fd, position, end, dst, process, layout)
    window = 2 * workers if workers > 1 else 0
    slots = window + 2
    inputs = [bytearray(size) for _ in range(slots)]
    outputs = [bytearray(size + out_delta) for _ in range(slots)]
    pending: collections.deque[tuple[Future[None], memoryview]] = collections.deque()
    pool = (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelseal-aead")
        if workers > 1
        else None
    )
    index = 0
    n = _readinto_exact(src, memoryview(inputs[0])[:first_size])
    total = n
    try:
        while True:
            full = n == (first_size if index == 0 else size)
            following = (index + 1) % slots
            m = _readinto_exact(src, memoryview(inputs[following])[:size]) if full else 0
            last = m == 0
            _check_segment(start_index + index, n, min_size)
            slot = index % slots
            source = memoryview(inputs[slot])[:n]
            target = memoryview(outputs[slot])[: n + out_delta]
            if pool is None:
                process(start_index + index, source, target, last)
                _write_all(dst, target)
            else:
                job = pool.submit(process, start_index + index, source, target, last)
                pending.append((job, target))
                while len(pending) > window:
                    done, view = pending.popleft()
                    done.result()
                    _write_all(dst, view)
            if last:
                break
            index += 1
            n = m
            total += m
        while pending:
            done, view = pending.popleft()
            done.result()
            _write_all(dst, view)
    finally:
        if pool is not None:
            for job, _ in pending:
                job.cancel()
            pool.shutdown(wait=True)
    return total


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
    _write_all(dst, memoryview(bytes([key.header_size]) + salt + prefix))

    def seal(index: int, plain: memoryview, out: memoryview, last: bool) -> None:
        aead.encrypt_into(_nonce(prefix, index, last), plain, None, out)

    layout = _Layout(
        first_size=key.segment_size - key.header_size - TAG_SIZE,
        size=key.segment_size - TAG_SIZE,
        out_delta=TAG_SIZE,
        start_index=0,
        min_size=0,
        workers=workers,
    )
    return _pipeline(src, dst, seal, layout)


class _Replay:
    """A reader that first returns ``head`` and then continues with ``tail``."""

    def __init__(self, head: bytes, tail: BinaryIO) -> None:
        self._head = head
        self._tail = tail

    def readinto(self, view: memoryview) -> int:
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return _readinto_exact(self._tail, view)

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
) -> tuple[StreamingKey, AESGCM, bytes, bytes, BinaryIO | _Replay | None]:
    """Find the key whose header and first segment authenticate.

    Returns the key, its segment cipher, the nonce prefix, the first plaintext segment (already
    authenticated, not yet released) and a reader positioned after it (None if it was last).
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
        if last:
            return key, aead, prefix, plain, None
        if _regular_file(src) is not None:  # go on reading the file itself, from after segment 0
            src.seek(src.tell() - (len(head) - first_end))
            return key, aead, prefix, plain, src
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
    _write_all(dst, memoryview(first_plain))
    if rest is None:  # the first segment was the last
        return len(first_plain)

    def open_segment(index: int, segment: memoryview, out: memoryview, last: bool) -> None:
        try:
            aead.decrypt_into(_nonce(prefix, index, last), segment, None, out)
        except InvalidTag:
            raise _segment_failure(aead, prefix, index, bytes(segment), last) from None

    layout = _Layout(
        first_size=key.segment_size,
        size=key.segment_size,
        out_delta=-TAG_SIZE,
        start_index=1,
        min_size=TAG_SIZE,
        workers=workers,
    )
    ciphertext = _pipeline(rest, dst, open_segment, layout)
    segments = -(-ciphertext // key.segment_size)
    return len(first_plain) + ciphertext - TAG_SIZE * segments


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
