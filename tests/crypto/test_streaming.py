"""The streaming AEAD format: round trips and fail-closed tamper detection (property tests)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modelseal.crypto import keyset as ks
from modelseal.crypto import streaming
from modelseal.errors import DecryptionError, InputError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

SEG = 4096
KEYSET = ks.new_streaming_keyset(segment_size=SEG)
KEY = ks.primary_streaming_key(KEYSET)
KEYS = ks.decryption_keys(KEYSET)
HEADER = KEY.header_size
FIRST_CT = SEG - HEADER  # ciphertext bytes of segment 0


def segments(ciphertext: bytes) -> list[bytes]:
    """Split a ciphertext body into its segments (header excluded)."""
    body = ciphertext[HEADER:]
    out = [body[:FIRST_CT]]
    body = body[FIRST_CT:]
    while body:
        out.append(body[:SEG])
        body = body[SEG:]
    return out


def join(header: bytes, parts: list[bytes]) -> bytes:
    return header + b"".join(parts)


PROPS = settings(
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)


@PROPS
@given(data=st.binary(max_size=5 * SEG), ad=st.binary(max_size=64), workers=st.sampled_from([1, 2]))
def test_round_trip(data: bytes, ad: bytes, workers: int) -> None:
    out = io.BytesIO()
    n = streaming.encrypt_stream(KEY, io.BytesIO(data), out, associated_data=ad, workers=workers)
    ct = out.getvalue()
    assert n == len(data)
    assert ct[0] == HEADER
    # Exact Tink size: header + plaintext + one tag per segment (at least one segment).
    n_segments = (
        1 if len(data) <= FIRST_CT - 16 else 2 + (len(data) - (FIRST_CT - 16) - 1) // (SEG - 16)
    )
    assert len(ct) == HEADER + len(data) + 16 * n_segments
    back = io.BytesIO()
    assert streaming.decrypt_stream(
        KEYS, io.BytesIO(ct), back, associated_data=ad, workers=workers
    ) == len(data)
    assert back.getvalue() == data


def test_fresh_salt_and_nonce_prefix_every_time() -> None:
    a = streaming.encrypt_bytes(KEY, b"same")
    b = streaming.encrypt_bytes(KEY, b"same")
    assert a[1:HEADER] != b[1:HEADER]
    assert a != b


@PROPS
@given(data=st.binary(min_size=1, max_size=4 * SEG), cut=st.integers(min_value=0))
def test_any_truncation_fails(data: bytes, cut: int) -> None:
    ct = streaming.encrypt_bytes(KEY, data)
    cut %= len(ct)
    with pytest.raises(DecryptionError):
        streaming.decrypt_bytes(KEYS, ct[:cut])


def test_truncation_at_segment_boundary_is_named() -> None:
    ct = streaming.encrypt_bytes(KEY, bytes(3 * SEG))
    parts = segments(ct)
    assert len(parts) == 4
    with pytest.raises(DecryptionError, match="truncated"):
        streaming.decrypt_bytes(KEYS, join(ct[:HEADER], parts[:2]))


@PROPS
@given(
    data=st.binary(min_size=0, max_size=3 * SEG),
    position=st.integers(min_value=0),
    bit=st.integers(0, 7),
)
def test_any_modified_bit_fails(data: bytes, position: int, bit: int) -> None:
    ct = bytearray(streaming.encrypt_bytes(KEY, data))
    ct[position % len(ct)] ^= 1 << bit
    with pytest.raises(DecryptionError):
        streaming.decrypt_bytes(KEYS, bytes(ct))


def sized(low: int, high: int) -> st.SearchStrategy[bytes]:
    """Pseudo-random bytes of a length in [low, high] (cheap for hypothesis to generate)."""
    return st.builds(
        lambda n, seed: random.Random(seed).randbytes(n),
        st.integers(low, high),
        st.integers(0, 2**32),
    )


@PROPS
@given(data=sized(3 * SEG, 5 * SEG), draw=st.data())
def test_reordered_segments_fail(data: bytes, draw: st.DataObject) -> None:
    ct = streaming.encrypt_bytes(KEY, data)
    parts = segments(ct)
    # Never the identity: a permutation that moves nothing would test nothing.
    order = draw.draw(
        st.permutations(range(len(parts))).filter(lambda o: o != list(range(len(parts))))
    )
    with pytest.raises(DecryptionError):
        streaming.decrypt_bytes(KEYS, join(ct[:HEADER], [parts[i] for i in order]))


def test_swapping_two_full_segments_fails() -> None:
    ct = streaming.encrypt_bytes(KEY, bytes(range(256)) * 64)
    parts = segments(ct)
    parts[1], parts[2] = parts[2], parts[1]
    with pytest.raises(DecryptionError, match="segment 1"):
        streaming.decrypt_bytes(KEYS, join(ct[:HEADER], parts))


@PROPS
@given(data=sized(2 * SEG, 4 * SEG), which=st.integers(min_value=0))
def test_duplicated_or_dropped_segment_fails(data: bytes, which: int) -> None:
    ct = streaming.encrypt_bytes(KEY, data)
    parts = segments(ct)
    i = which % len(parts)
    with pytest.raises(DecryptionError):
        streaming.decrypt_bytes(KEYS, join(ct[:HEADER], parts[: i + 1] + parts[i:]))
    if len(parts) > 1:
        with pytest.raises(DecryptionError):
            streaming.decrypt_bytes(KEYS, join(ct[:HEADER], parts[:i] + parts[i + 1 :]))


@PROPS
@given(data=st.binary(max_size=2 * SEG), extra=st.binary(min_size=1, max_size=SEG + 20))
def test_appended_bytes_fail(data: bytes, extra: bytes) -> None:
    ct = streaming.encrypt_bytes(KEY, data)
    with pytest.raises(DecryptionError):
        streaming.decrypt_bytes(KEYS, ct + extra)


@PROPS
@given(data=st.binary(max_size=2 * SEG), ad=st.binary(max_size=32), other=st.binary(max_size=32))
def test_wrong_associated_data_fails(data: bytes, ad: bytes, other: bytes) -> None:
    assume(ad != other)  # equal associated data would test nothing
    ct = streaming.encrypt_bytes(KEY, data, associated_data=ad)
    with pytest.raises(DecryptionError, match="wrong key, wrong associated data"):
        streaming.decrypt_bytes(KEYS, ct, associated_data=other)


def test_wrong_key_fails() -> None:
    ct = streaming.encrypt_bytes(KEY, b"weights" * 1000)
    other = ks.decryption_keys(ks.new_streaming_keyset(segment_size=SEG))
    with pytest.raises(DecryptionError, match="wrong key"):
        streaming.decrypt_bytes(other, ct)


def test_segments_from_another_ciphertext_of_the_same_key_fail() -> None:
    a = streaming.encrypt_bytes(KEY, bytes(3 * SEG))
    b = streaming.encrypt_bytes(KEY, bytes(3 * SEG))
    spliced = join(a[:HEADER], [segments(a)[0], segments(b)[1], *segments(a)[2:]])
    with pytest.raises(DecryptionError, match="segment 1"):
        streaming.decrypt_bytes(KEYS, spliced)


def test_multi_key_keyset_decrypts_with_any_enabled_key() -> None:
    old = ks.new_streaming_keyset(segment_size=SEG)
    new = ks.new_streaming_keyset()  # another segment size too
    merged = ks.Keyset(new.primary_key_id, (*new.keys, *old.keys))
    ct_old = streaming.encrypt_bytes(ks.primary_streaming_key(old), b"x" * 10_000)
    ct_new = streaming.encrypt_bytes(ks.primary_streaming_key(merged), b"y" * 10_000)
    keys = ks.decryption_keys(merged)
    assert streaming.decrypt_bytes(keys, ct_old) == b"x" * 10_000
    assert streaming.decrypt_bytes(keys, ct_new) == b"y" * 10_000
    disabled = ks.Keyset(
        merged.primary_key_id,
        (
            merged.keys[0],
            *(ks.KeysetKey(k.key_id, k.type_url, k.value, status="DISABLED") for k in old.keys),
        ),
    )
    with pytest.raises(DecryptionError):
        streaming.decrypt_bytes(ks.decryption_keys(disabled), ct_old)


def test_empty_and_headerless_inputs() -> None:
    with pytest.raises(DecryptionError, match="empty"):
        streaming.decrypt_bytes(KEYS, b"")
    with pytest.raises(DecryptionError, match="bad header"):
        streaming.decrypt_bytes(KEYS, b"\x07" + bytes(100))
    ct = streaming.encrypt_bytes(KEY, b"")
    assert len(ct) == HEADER + 16
    assert streaming.decrypt_bytes(KEYS, ct) == b""
    with pytest.raises(DecryptionError):
        streaming.decrypt_bytes(KEYS, ct[:HEADER])


class ShortReads(io.RawIOBase):
    """A raw stream that returns at most 1000 bytes per read, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer)
        chunk = self._data.read(min(len(view), 1000))
        view[: len(chunk)] = chunk
        return len(chunk)


def test_short_reads_are_handled() -> None:
    data = bytes(range(256)) * 100
    out = io.BytesIO()
    # A raw stream (short reads) where the API names BinaryIO, whose type has no short reads.
    streaming.encrypt_stream(KEY, cast(BinaryIO, ShortReads(data)), out)
    back = io.BytesIO()
    streaming.decrypt_stream(KEYS, cast(BinaryIO, ShortReads(out.getvalue())), back)
    assert back.getvalue() == data


# Regular files take the positional path: workers read their own segments at their offsets.
FILES = settings(
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FILES
@given(
    size=st.sampled_from([0, 1, FIRST_CT - 16, FIRST_CT - 15, SEG - 16, 3 * SEG, 7 * SEG + 123]),
    workers=st.sampled_from([1, 2, 3]),
    offset=st.sampled_from([0, 5]),
)
def test_regular_files_round_trip(
    tmp_path_factory: pytest.TempPathFactory, size: int, workers: int, offset: int
) -> None:
    d = tmp_path_factory.mktemp("files")
    data = random.Random(size).randbytes(size)
    (d / "plain").write_bytes(b"x" * offset + data)
    with open(d / "plain", "rb", buffering=0) as src, open(d / "ct", "wb", buffering=0) as dst:
        src.seek(offset)  # reading starts at the file position
        assert (
            streaming.encrypt_stream(KEY, src, dst, associated_data=b"f", workers=workers) == size
        )
        assert src.tell() == offset + size
    ciphertext = (d / "ct").read_bytes()
    assert streaming.decrypt_bytes(KEYS, ciphertext, associated_data=b"f") == data
    with open(d / "ct", "rb", buffering=0) as src, open(d / "out", "wb", buffering=0) as dst:
        n = streaming.decrypt_stream(KEYS, src, dst, associated_data=b"f", workers=workers)
    assert n == size and (d / "out").read_bytes() == data


def test_tampered_and_truncated_files_fail(tmp_path: Path) -> None:
    data = random.Random(5).randbytes(12 * SEG)
    ciphertext = bytearray(streaming.encrypt_bytes(KEY, data))
    bad = bytearray(ciphertext)
    bad[HEADER + FIRST_CT + 7 * SEG + 5] ^= 1  # segment 8 of 13
    cases = [
        (bytes(bad), "segment 8 does not authenticate"),
        (bytes(ciphertext[: HEADER + FIRST_CT + 3 * SEG + 9]), "shorter than a tag"),
        (bytes(ciphertext[: HEADER + FIRST_CT + 3 * SEG]), "truncated"),
    ]
    for blob, message in cases:
        (tmp_path / "ct").write_bytes(blob)
        with (
            open(tmp_path / "ct", "rb", buffering=0) as src,
            open(tmp_path / "out", "wb", buffering=0) as dst,
            pytest.raises(DecryptionError, match=message),
        ):
            streaming.decrypt_stream(KEYS, src, dst, workers=2)


def test_a_file_that_shrinks_while_read_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plain").write_bytes(bytes(6 * SEG))
    real = os.preadv

    def shrinking(fd: int, buffers: list[memoryview], offset: int) -> int:
        os.truncate(tmp_path / "plain", 2 * SEG)  # someone cuts the file meanwhile
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", shrinking)
    with (
        open(tmp_path / "plain", "rb", buffering=0) as src,
        open(tmp_path / "ct", "wb", buffering=0) as dst,
        pytest.raises(InputError, match="shrank"),
    ):
        streaming.encrypt_stream(KEY, src, dst, workers=2)
