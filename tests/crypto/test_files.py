"""Files and directories: round trips, fail-closed decryption, untrusted paths."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import pytest

from modelseal.crypto import api, directory, streaming
from modelseal.crypto import keyset as ks
from modelseal.errors import DecryptionError, EnvelopeError, InputError, OutputError, UsageError
from tests.conftest import build_model
from tests.crypto.conftest import leftovers, tree

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = build_model(tmp_path / "model")
    (root / "empty-dir" / "nested").mkdir(parents=True)
    (root / "weights" / "big.bin").write_bytes(os.urandom(3 * 4096 + 5))
    return root


def test_file_round_trip(tmp_path: Path, small_keyset: ks.Keyset) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(50_000))
    result = api.encrypt(src, tmp_path / "w.enc", keyset=small_keyset, associated_data=b"a")
    assert result.kind == "file" and result.plaintext_bytes == 50_000
    api.decrypt(tmp_path / "w.enc", tmp_path / "w.out", keyset=small_keyset, associated_data=b"a")
    assert (tmp_path / "w.out").read_bytes() == src.read_bytes()
    assert (tmp_path / "w.out").stat().st_mode & 0o777 == 0o600
    assert leftovers(tmp_path) == []


def test_directory_round_trip_keeps_empty_files_and_dirs(
    tmp_path: Path, model: Path, small_keyset: ks.Keyset
) -> None:
    result = api.encrypt(model, tmp_path / "enc", keyset=small_keyset)
    assert result.files == 6
    names = sorted(p.name for p in (tmp_path / "enc").rglob("*"))
    assert "config.json" not in names  # file names are not revealed
    api.decrypt(tmp_path / "enc", tmp_path / "out", keyset=small_keyset)
    assert tree(tmp_path / "out") == tree(model)
    assert (tmp_path / "out" / "empty-dir" / "nested").is_dir()
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o700


def test_in_memory_decryption_writes_nothing(
    tmp_path: Path, model: Path, small_keyset: ks.Keyset
) -> None:
    api.encrypt(model, tmp_path / "enc", keyset=small_keyset, associated_data=b"m")
    api.encrypt(model / "config.json", tmp_path / "config.json.enc", keyset=small_keyset)
    before = sorted(p.name for p in tmp_path.iterdir())
    files = api.decrypt_to_memory(tmp_path / "enc", keyset=small_keyset, associated_data=b"m")
    assert files == tree(model)
    single = api.decrypt_to_memory(tmp_path / "config.json.enc", keyset=small_keyset)
    assert single == {"config.json": (model / "config.json").read_bytes()}
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(DecryptionError):
        api.decrypt_to_memory(tmp_path / "enc", keyset=small_keyset, associated_data=b"x")


def test_failed_file_decryption_leaves_nothing(tmp_path: Path, small_keyset: ks.Keyset) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(40_000))
    api.encrypt(src, tmp_path / "w.enc", keyset=small_keyset)
    data = bytearray((tmp_path / "w.enc").read_bytes())
    data[-100] ^= 1  # the last segment: earlier segments decrypt fine first
    (tmp_path / "bad.enc").write_bytes(bytes(data))
    with pytest.raises(DecryptionError):
        api.decrypt(tmp_path / "bad.enc", tmp_path / "out.bin", keyset=small_keyset)
    assert not (tmp_path / "out.bin").exists()
    assert leftovers(tmp_path) == []
    # An existing target is not touched by a failed --force decryption either.
    (tmp_path / "out.bin").write_bytes(b"previous")
    with pytest.raises(DecryptionError):
        api.decrypt(tmp_path / "bad.enc", tmp_path / "out.bin", keyset=small_keyset, overwrite=True)
    assert (tmp_path / "out.bin").read_bytes() == b"previous"


def encrypted_dir(tmp_path: Path, model: Path, keyset: ks.Keyset, ad: bytes = b"") -> Path:
    out = tmp_path / "enc"
    api.encrypt(model, out, keyset=keyset, associated_data=ad)
    return out


def assert_fails_closed(
    tmp_path: Path, enc: Path, keyset: ks.Keyset, error: type[Exception]
) -> None:
    with pytest.raises(error):
        api.decrypt(enc, tmp_path / "out", keyset=keyset)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_swapped_blobs_fail(tmp_path: Path, model: Path, small_keyset: ks.Keyset) -> None:
    enc = encrypted_dir(tmp_path, model, small_keyset)
    a, b = enc / "blobs" / "00000000.enc", enc / "blobs" / "00000001.enc"
    tmp = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(tmp)
    assert_fails_closed(tmp_path, enc, small_keyset, DecryptionError)


def test_removed_blob_fails(tmp_path: Path, model: Path, small_keyset: ks.Keyset) -> None:
    enc = encrypted_dir(tmp_path, model, small_keyset)
    last = sorted((enc / "blobs").iterdir())[-1]
    last.unlink()
    assert_fails_closed(tmp_path, enc, small_keyset, DecryptionError)


def test_added_blob_or_file_fails(tmp_path: Path, model: Path, small_keyset: ks.Keyset) -> None:
    enc = encrypted_dir(tmp_path, model, small_keyset)
    count = len(list((enc / "blobs").iterdir()))
    shutil.copy(enc / "blobs" / "00000000.enc", enc / "blobs" / f"{count:08d}.enc")
    assert_fails_closed(tmp_path, enc, small_keyset, DecryptionError)
    (enc / "blobs" / f"{count:08d}.enc").unlink()
    (enc / "README").write_text("hi")
    assert_fails_closed(tmp_path, enc, small_keyset, DecryptionError)


def test_index_from_another_artifact_fails(
    tmp_path: Path, model: Path, small_keyset: ks.Keyset
) -> None:
    enc = encrypted_dir(tmp_path, model, small_keyset, ad=b"v1")
    other = tmp_path / "other"
    api.encrypt(model, other, keyset=small_keyset, associated_data=b"v2")
    shutil.copy(other / "index.enc", enc / "index.enc")
    with pytest.raises(DecryptionError):
        api.decrypt(enc, tmp_path / "out", keyset=small_keyset, associated_data=b"v1")
    with pytest.raises(DecryptionError):  # and the v2 blobs do not fit a v1 index either
        api.decrypt(enc, tmp_path / "out", keyset=small_keyset, associated_data=b"v2")
    assert not (tmp_path / "out").exists()


def test_blob_from_another_version_fails(
    tmp_path: Path, model: Path, small_keyset: ks.Keyset
) -> None:
    enc = encrypted_dir(tmp_path, model, small_keyset, ad=b"v1")
    other = tmp_path / "other"
    api.encrypt(model, other, keyset=small_keyset, associated_data=b"v2")
    shutil.copy(other / "blobs" / "00000002.enc", enc / "blobs" / "00000002.enc")
    with pytest.raises(DecryptionError, match="blob 2"):
        api.decrypt(enc, tmp_path / "out", keyset=small_keyset, associated_data=b"v1")
    assert not (tmp_path / "out").exists()


def forge_index(enc: Path, keyset: ks.Keyset, index: object, ad: bytes = b"") -> None:
    """Replace the index by a validly encrypted but hostile one (an insider with the key)."""
    data = json.dumps(index).encode()
    artifact = bytes.fromhex(json.loads((enc / directory.HEADER_NAME).read_text())["artifact"])
    ct = streaming.encrypt_bytes(
        ks.primary_streaming_key(keyset),
        data,
        associated_data=directory.index_associated_data(ad, artifact),
    )
    (enc / "index.enc").write_bytes(ct)


@pytest.mark.parametrize(
    "path",
    ["../escape", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\..\\b", "", "a/\x00b", ".."],
)
def test_unsafe_index_paths_are_refused(tmp_path: Path, small_keyset: ks.Keyset, path: str) -> None:
    src = tmp_path / "m"
    (src / "a").mkdir(parents=True)
    (src / "a" / "f").write_bytes(b"x")
    enc = tmp_path / "enc"
    api.encrypt(src, enc, keyset=small_keyset)
    forge_index(enc, small_keyset, {"files": [{"path": path, "size": 1}], "dirs": ["a"]})
    assert_fails_closed(tmp_path, enc, small_keyset, EnvelopeError)
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize(
    "index",
    [
        {"files": [{"path": "a/f", "size": 1}], "dirs": []},  # file outside listed dirs
        {"files": [{"path": "a", "size": 1}], "dirs": ["a"]},  # file/dir clash
        {"files": [{"path": "f", "size": 1}, {"path": "f", "size": 1}], "dirs": []},  # twice
        {"files": [{"path": "f", "size": -1}], "dirs": []},
        {"files": [{"path": "b/c", "size": 1}], "dirs": ["b/c/d", "b", "b/c"]},  # child first
        {"files": "nope", "dirs": []},
        [],
    ],
)
def test_inconsistent_indexes_are_refused(
    tmp_path: Path, small_keyset: ks.Keyset, index: object
) -> None:
    src = tmp_path / "m"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    enc = tmp_path / "enc"
    api.encrypt(src, enc, keyset=small_keyset)
    forge_index(enc, small_keyset, index)
    assert_fails_closed(tmp_path, enc, small_keyset, EnvelopeError)


def test_index_blob_count_mismatch(tmp_path: Path, small_keyset: ks.Keyset) -> None:
    src = tmp_path / "m"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    enc = tmp_path / "enc"
    api.encrypt(src, enc, keyset=small_keyset)
    forge_index(enc, small_keyset, {"files": [], "dirs": []})
    assert_fails_closed(tmp_path, enc, small_keyset, DecryptionError)


def test_symlinks_refused_on_encrypt_and_decrypt(
    tmp_path: Path, model: Path, small_keyset: ks.Keyset
) -> None:
    (model / "link").symlink_to(model / "config.json")
    with pytest.raises(InputError, match="symbolic link"):
        api.encrypt(model, tmp_path / "enc", keyset=small_keyset)
    assert not (tmp_path / "enc").exists() and leftovers(tmp_path) == []
    (model / "link").unlink()
    enc = encrypted_dir(tmp_path, model, small_keyset)
    blob = enc / "blobs" / "00000000.enc"
    shutil.move(blob, tmp_path / "elsewhere.enc")
    blob.symlink_to(tmp_path / "elsewhere.enc")
    assert_fails_closed(tmp_path, enc, small_keyset, InputError)


def test_not_an_encrypted_directory(tmp_path: Path, model: Path, small_keyset: ks.Keyset) -> None:
    assert_fails_closed(tmp_path, model, small_keyset, EnvelopeError)
    enc = encrypted_dir(tmp_path, model, small_keyset)
    (enc / api.HEADER_NAME).write_text('{"modelseal": "encrypted-directory/v9"}')
    assert_fails_closed(tmp_path, enc, small_keyset, EnvelopeError)


def test_output_rules(tmp_path: Path, model: Path, small_keyset: ks.Keyset) -> None:
    enc = encrypted_dir(tmp_path, model, small_keyset)
    with pytest.raises(OutputError, match="already exists"):
        api.encrypt(model, enc, keyset=small_keyset)
    api.encrypt(model, enc, keyset=small_keyset, overwrite=True)
    with pytest.raises(UsageError, match="inside the model"):
        api.encrypt(model, model / "enc", keyset=small_keyset)
    with pytest.raises(OutputError, match="does not exist"):
        api.encrypt(model / "config.json", tmp_path / "no" / "x.enc", keyset=small_keyset)
    with pytest.raises(InputError):
        api.encrypt(tmp_path / "missing", tmp_path / "x.enc", keyset=small_keyset)
    with pytest.raises(UsageError, match="exactly one"):
        api.encrypt(model, tmp_path / "x", keyset=None)
    api.decrypt(enc, tmp_path / "out", keyset=small_keyset)
    api.decrypt(enc, tmp_path / "out", keyset=small_keyset, overwrite=True)
    assert tree(tmp_path / "out") == tree(model)


def test_special_file_refused(tmp_path: Path, small_keyset: ks.Keyset) -> None:
    src = tmp_path / "m"
    src.mkdir()
    os.mkfifo(src / "fifo")
    with pytest.raises(InputError, match="not a regular file"):
        api.encrypt(src, tmp_path / "enc", keyset=small_keyset)
    with pytest.raises(InputError, match="not a regular file"):
        api.encrypt(src / "fifo", tmp_path / "f.enc", keyset=small_keyset)


def test_associated_data_is_canonical() -> None:
    a = api.associated_data(model_name="bert", version="3", manifest_digest="sha256:ab")
    assert a == b'{"manifest_digest":"sha256:ab","model":"bert","version":"3"}'
    assert a != api.associated_data(model_name="bert", version="4", manifest_digest="sha256:ab")


def test_streams_are_constant_memory(small_keyset: ks.Keyset) -> None:
    """The encrypt pipeline never holds more than a bounded window of segments."""

    class Counting(io.RawIOBase):
        def __init__(self, total: int) -> None:
            self.left = total
            self.max_read = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: WriteableBuffer, /) -> int:
            view = memoryview(buffer)
            size = len(view)
            assert size > 0  # never "read everything"
            self.max_read = max(self.max_read, size)
            n = min(size, self.left)
            self.left -= n
            view[:n] = b"\0" * n
            return n

    class Sink:
        written = 0

        def write(self, data: bytes | bytearray | memoryview, /) -> int:
            self.written += len(data)
            return len(data)

    src = Counting(5 << 20)
    sink = Sink()
    # A raw stream (short reads) where the API names BinaryIO, whose type has no short reads.
    streaming.encrypt_stream(ks.primary_streaming_key(small_keyset), cast(BinaryIO, src), sink)
    assert src.max_read <= 4096
    assert sink.written > 5 << 20


def test_io_errors_are_one_clear_error_and_leave_nothing(
    tmp_path: Path, small_keyset: ks.Keyset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E.g. a full disk, or two index paths that collide on a case-insensitive file system."""
    import errno

    src = tmp_path / "m"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(20_000))
    enc = tmp_path / "enc"
    api.encrypt(src, enc, keyset=small_keyset)
    api.encrypt(src / "f", tmp_path / "f.enc", keyset=small_keyset)

    real = streaming._write_all

    def full(dst: streaming.Writable, view: memoryview) -> None:
        if isinstance(dst, io.FileIO):  # only files on disk fill up
            raise OSError(errno.ENOSPC, "No space left on device")
        real(dst, view)

    monkeypatch.setattr(streaming, "_write_all", full)
    with pytest.raises(OutputError, match="No space left"):
        api.decrypt(enc, tmp_path / "out", keyset=small_keyset)
    with pytest.raises(OutputError, match="No space left"):
        api.decrypt(tmp_path / "f.enc", tmp_path / "f.out", keyset=small_keyset)
    assert not (tmp_path / "out").exists() and not (tmp_path / "f.out").exists()
    assert leftovers(tmp_path) == []
