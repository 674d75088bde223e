"""Encrypt and decrypt model files and directories, with a Tink keyset or a KEK provider.

* A **file** encrypts to one Tink streaming-AEAD ciphertext (``tink`` decrypts it with the same
  keyset and associated data).
* A **directory** encrypts to a directory (see docs/crypto.md)::

      OUT/modelseal-encrypted.json   plaintext header: format marker (+ envelope, if any)
      OUT/index.enc                  the encrypted index: every file's path and size, every dir
      OUT/blobs/00000000.enc ...     file i of the index, each its own streaming ciphertext

  The index and each blob are bound to the artifact's associated data *and* to their role,
  position and path (:func:`part_associated_data`), so blobs cannot be swapped, renamed,
  dropped or added unnoticed; file names are not revealed.
* With a **provider** (envelope encryption) a fresh data key is made per artifact and wrapped;
  the envelope sits in ``FILE.envelope.json`` beside a file, or in a directory's header.

Decryption fails closed: everything goes to a temporary file or directory beside the target
(mode 0600/0700) that is renamed into place only after the last segment of the last file
authenticated, and removed otherwise. Paths from the index are never trusted: absolute paths,
``..``, empty or ``.`` components, backslashes, NULs, duplicates and file/dir clashes are
rejected, and files are created with ``O_EXCL | O_NOFOLLOW`` inside a directory we created.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from modelseal.crypto import envelope as env
from modelseal.crypto import keyset as ks
from modelseal.crypto import streaming
from modelseal.crypto.providers import KeyProvider
from modelseal.errors import DecryptionError, EnvelopeError, InputError, OutputError, UsageError

PathLike = str | os.PathLike[str]
HEADER_NAME = "modelseal-encrypted.json"
INDEX_NAME = "index.enc"
BLOBS_DIR = "blobs"
ENVELOPE_SUFFIX = ".envelope.json"
DIR_FORMAT = "encrypted-directory/v1"
PART_LABEL = b"modelseal/encrypted-directory/v1"
MAX_INDEX_BYTES = 64 << 20
MAX_PATH_BYTES = 4096
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def associated_data(*, model_name: str, version: str, manifest_digest: str) -> bytes:
    """The associated data that binds a ciphertext to one model version and its manifest.

    Canonical JSON (sorted keys, no spaces, UTF-8), e.g.
    ``{"manifest_digest":"sha256:ab..","model":"bert","version":"3"}``.
    """
    doc = {"manifest_digest": manifest_digest, "model": model_name, "version": version}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def part_associated_data(associated: bytes, *parts: bytes) -> bytes:
    """Associated data of one part of an encrypted directory: a length-prefixed list
    ``PART_LABEL, associated, *parts`` (each as 8-byte big-endian length || bytes)."""
    return b"".join(len(p).to_bytes(8, "big") + p for p in (PART_LABEL, associated, *parts))


@dataclasses.dataclass(frozen=True)
class CryptoResult:
    """What :func:`encrypt` or :func:`decrypt` did."""

    operation: str
    kind: str
    source: Path
    output: Path
    files: int
    plaintext_bytes: int
    envelope: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """This result as a JSON-ready dict (paths as strings; ``envelope`` may be ``None``)."""
        return {
            "operation": self.operation,
            "kind": self.kind,
            "source": str(self.source),
            "output": str(self.output),
            "files": self.files,
            "plaintext_bytes": self.plaintext_bytes,
            "envelope": str(self.envelope) if self.envelope else None,
        }


# --- key resolution ---------------------------------------------------------------------------


def _check_choice(keyset: ks.Keyset | None, provider: KeyProvider | None) -> None:
    if (keyset is None) == (provider is None):
        raise UsageError(
            "give exactly one of a keyset and a key provider",
            hint="use --keyset KEYSET, or --kek URI for envelope encryption",
        )


def _decryption_keys(
    keyset: ks.Keyset | None,
    provider: KeyProvider | None,
    envelope: env.Envelope | None,
    associated: bytes,
    where: str,
) -> tuple[ks.StreamingKey, ...]:
    _check_choice(keyset, provider)
    if provider is not None:
        if envelope is None:
            raise UsageError(
                f"{where} has no envelope: it was encrypted with a keyset, not a provider",
                hint="decrypt it with --keyset",
            )
        return ks.decryption_keys(env.open_envelope(envelope, provider, associated_data=associated))
    if envelope is not None:
        raise UsageError(
            f"{where} is envelope-encrypted (its data key is wrapped by a "
            f"{envelope.wrapped.provider!r} key-encryption key)",
            hint=f"decrypt it with --kek {envelope.wrapped.provider}:...",
        )
    assert keyset is not None
    return ks.decryption_keys(keyset)


# --- temporary outputs ------------------------------------------------------------------------


def _check_target(dst: Path, overwrite: bool) -> None:
    if os.path.lexists(dst) and not overwrite:
        raise OutputError(
            f"{str(dst)!r} already exists", hint="choose another path or pass --force"
        )
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(
            f"cannot write {str(dst)!r}: directory {str(parent)!r} does not exist",
            hint="create the directory first",
        )


def _temp_name(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.{secrets.token_hex(6)}.partial"


def _anonymous_file(directory: Path, mode: int) -> int | None:
    """An unnamed file in ``directory`` (Linux ``O_TMPFILE``): a kill leaves nothing behind."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return None
    try:
        return os.open(directory, flag | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError:  # a file system or kernel without O_TMPFILE: use a named temporary file
        return None


def _link_anonymous(fd: int, dst: Path, overwrite: bool) -> None:
    """Give the unnamed file ``fd`` the name ``dst`` (only once it is complete)."""
    # linkat(/proc/self/fd/N, AT_SYMLINK_FOLLOW): os.link passes the flag only with a dir_fd.
    fds = os.open("/proc/self/fd", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if not overwrite:
            try:
                os.link(str(fd), dst, src_dir_fd=fds, follow_symlinks=True)
            except FileExistsError:
                raise OutputError(
                    f"{str(dst)!r} already exists", hint="choose another path or pass --force"
                ) from None
            return
        tmp = _temp_name(dst)
        os.link(str(fd), tmp, src_dir_fd=fds, follow_symlinks=True)
        try:
            _install(tmp, dst, overwrite)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    finally:
        os.close(fds)


@contextlib.contextmanager
def _temp_file(dst: Path, overwrite: bool, mode: int) -> Iterator[BinaryIO]:
    """A new file for ``dst``, named ``dst`` only if the block finishes.

    It is an unnamed file (``O_TMPFILE``) where the file system allows it, so nothing of a
    partial output (a plaintext being decrypted) is ever visible or survives a ``kill -9``;
    elsewhere a ``.partial`` file beside ``dst``, removed on every exit path Python controls.
    """
    _check_target(dst, overwrite)
    anonymous = _anonymous_file(dst.parent if str(dst.parent) else Path("."), mode)
    if anonymous is not None:
        try:
            os.fchmod(anonymous, mode)
            with os.fdopen(anonymous, "wb", buffering=0, closefd=False) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            _link_anonymous(anonymous, dst, overwrite)
        except OSError as exc:
            raise _io_failure(dst, exc) from None
        finally:
            os.close(anonymous)
        return
    tmp = _temp_name(dst)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    except OSError as exc:
        raise OutputError(
            f"cannot write {str(dst)!r}: {exc.strerror}", hint="check the path"
        ) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", buffering=0) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _install(tmp, dst, overwrite)
    except OSError as exc:  # e.g. no space left: one clear line, and no partial output
        raise _io_failure(dst, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _io_failure(dst: Path, exc: OSError) -> OutputError:
    name = f" ({exc.filename!s})" if exc.filename else ""
    return OutputError(
        f"I/O error while writing {str(dst)!r}{name}: {exc.strerror or exc}",
        hint="check free space, permissions and the file system (nothing was kept)",
    )


def _install(tmp: Path, dst: Path, overwrite: bool) -> None:
    try:
        if overwrite:
            if os.path.isdir(dst) and not os.path.islink(dst):
                raise OutputError(f"{str(dst)!r} is a directory", hint="choose a file path")
            os.replace(tmp, dst)
        else:
            os.link(tmp, dst)  # fails if something appeared at dst meanwhile
            os.unlink(tmp)
    except FileExistsError:
        raise OutputError(
            f"{str(dst)!r} already exists", hint="choose another path or pass --force"
        ) from None


@contextlib.contextmanager
def _temp_dir(dst: Path, overwrite: bool) -> Iterator[Path]:
    """A new private directory beside ``dst``; renamed onto ``dst`` only if the block finishes."""
    _check_target(dst, overwrite)
    tmp = _temp_name(dst)
    try:
        os.mkdir(tmp, 0o700)
    except OSError as exc:
        raise OutputError(
            f"cannot write {str(dst)!r}: {exc.strerror}", hint="check the path"
        ) from None
    try:
        try:
            yield tmp
        except OSError as exc:
            raise _io_failure(dst, exc) from None
        old = None
        if os.path.lexists(dst):  # only with overwrite (checked above)
            if not os.path.isdir(dst) or os.path.islink(dst):
                raise OutputError(f"{str(dst)!r} is not a directory", hint="choose another path")
            old = _temp_name(dst)
            os.rename(dst, old)
        try:
            os.rename(tmp, dst)
        except OSError as exc:
            if old is not None:
                os.rename(old, dst)
            raise OutputError(
                f"cannot write {str(dst)!r}: {exc.strerror}", hint="check the path"
            ) from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


# --- walking a plaintext directory -------------------------------------------------------------


def _walk(root: Path) -> tuple[list[str], list[str]]:
    """Every regular file and directory under ``root`` (POSIX relative paths, sorted).

    Symlinks and special files are refused: they have no safe encrypted form.
    """
    files: list[str] = []
    dirs: list[str] = []

    def visit(directory: Path, rel: str) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(
                f"cannot read {str(directory)!r}: {exc.strerror}", hint="check permissions"
            ) from None
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise InputError(
                    f"{path!r} in {str(root)!r} is a symbolic link",
                    hint="replace links by the files they point to before encrypting",
                )
            if stat.S_ISDIR(mode):
                dirs.append(path)
                visit(Path(entry.path), path)
            elif stat.S_ISREG(mode):
                files.append(path)
            else:
                raise InputError(
                    f"{path!r} in {str(root)!r} is not a regular file", hint="remove it"
                )
            _check_path(path, str(root))

    visit(root, "")
    return files, dirs


def _check_path(path: Any, where: str) -> str:
    """``path`` if it is a safe relative POSIX path, else :class:`EnvelopeError`."""
    ok = isinstance(path, str) and 0 < len(path.encode("utf-8", "surrogatepass")) <= MAX_PATH_BYTES
    if ok:
        assert isinstance(path, str)
        parts = path.split("/")
        ok = (
            not path.startswith("/")
            and "\\" not in path
            and "\x00" not in path
            and all(p not in ("", ".", "..") for p in parts)
        )
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            ok = False
    if not ok:
        raise EnvelopeError(
            f"unsafe path {path!r} in {where}",
            hint="refusing to write outside the output directory; do not trust this artifact",
        )
    assert isinstance(path, str)
    return path


# --- files --------------------------------------------------------------------------------------


def _open_input(path: Path) -> BinaryIO:
    try:
        # O_NONBLOCK: opening a FIFO must not hang; it has no effect on regular files.
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InputError(
            f"cannot read {str(path)!r}: {exc.strerror}", hint="check the path"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{str(path)!r} is not a regular file", hint="give a file or a directory")
    return os.fdopen(fd, "rb", buffering=0)


def _read_envelope_file(path: Path) -> env.Envelope | None:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EnvelopeError(
            f"cannot read {str(path)!r}: {exc.strerror}", hint="check the path"
        ) from None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(1 << 20)
    return env.from_json(data, where=f"envelope {str(path)!r}")


def encrypt(
    src: PathLike,
    dst: PathLike,
    *,
    keyset: ks.Keyset | None = None,
    provider: KeyProvider | None = None,
    associated_data: bytes = b"",
    overwrite: bool = False,
    workers: int = streaming.DEFAULT_WORKERS,
) -> CryptoResult:
    """Encrypt a file or directory into ``dst`` (Tink streaming AEAD).

    Give exactly one of ``keyset`` (its primary key encrypts) or ``provider`` (a fresh data key
    encrypts, wrapped by the provider's current KEK into an envelope next to the output).
    ``associated_data`` is bound to every file and must be given again to decrypt. Never leaves
    a partial output behind; an existing ``dst`` is refused unless ``overwrite``. Raises a
    :class:`modelseal.errors.ModelsealError` subclass (input, usage, output or provider error).
    """
    _check_choice(keyset, provider)
    source, target = Path(src), Path(dst)
    try:
        st = os.lstat(source)
    except OSError as exc:
        raise InputError(
            f"cannot read {str(source)!r}: {exc.strerror}", hint="check the path"
        ) from None
    envelope: env.Envelope | None = None
    if provider is not None:
        data_keyset, envelope = env.seal(provider, associated_data=associated_data)
    else:
        assert keyset is not None
        data_keyset = keyset
    key = ks.primary_streaming_key(data_keyset)
    if stat.S_ISDIR(st.st_mode):
        if target.resolve().is_relative_to(source.resolve()):
            raise UsageError(
                "the output directory is inside the model directory", hint="write it elsewhere"
            )
        files, total = _encrypt_dir(
            source, target, key, envelope, associated_data, overwrite, workers
        )
        return CryptoResult("encrypt", "directory", source, target, files, total)
    with _open_input(source) as fh:
        envelope_path = target.with_name(target.name + ENVELOPE_SUFFIX) if envelope else None
        with _temp_file(target, overwrite, 0o644) as out:
            total = streaming.encrypt_stream(
                key, fh, out, associated_data=associated_data, workers=workers
            )
        if envelope is not None and envelope_path is not None:
            from modelseal.fsutil import atomic_write

            atomic_write(envelope_path, envelope.to_json(), mode=0o644)
    return CryptoResult("encrypt", "file", source, target, 1, total, envelope_path)


def _encrypt_dir(
    source: Path,
    target: Path,
    key: ks.StreamingKey,
    envelope: env.Envelope | None,
    associated: bytes,
    overwrite: bool,
    workers: int,
) -> tuple[int, int]:
    files, dirs = _walk(source)
    total = 0
    sizes: list[int] = []
    with _temp_dir(target, overwrite) as tmp:
        os.mkdir(tmp / BLOBS_DIR, 0o755)
        for i, rel in enumerate(files):
            with (
                _open_input(source / rel) as fh,
                open(tmp / BLOBS_DIR / _blob_name(i), "xb") as out,
            ):
                size = streaming.encrypt_stream(
                    key,
                    fh,
                    out,
                    associated_data=part_associated_data(
                        associated, b"file", str(i).encode(), rel.encode()
                    ),
                    workers=workers,
                )
                out.flush()
                os.fsync(out.fileno())
            sizes.append(size)
            total += size
        index = {
            "files": [{"path": p, "size": s} for p, s in zip(files, sizes, strict=True)],
            "dirs": dirs,
        }
        index_bytes = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
        with open(tmp / INDEX_NAME, "xb") as out:
            streaming.encrypt_stream(
                key,
                io.BytesIO(index_bytes),
                out,
                associated_data=part_associated_data(associated, b"index"),
            )
        header: dict[str, Any] = {"modelseal": DIR_FORMAT}
        if envelope is not None:
            header["envelope"] = envelope.to_dict()
        (tmp / HEADER_NAME).write_bytes(
            (json.dumps(header, indent=2, sort_keys=True) + "\n").encode()
        )
        os.chmod(tmp, 0o755)  # noqa: S103 - ciphertext is not secret; readable like its source
    return len(files), total


def _blob_name(index: int) -> str:
    return f"{index:08d}.enc"


def decrypt(
    src: PathLike,
    dst: PathLike,
    *,
    keyset: ks.Keyset | None = None,
    provider: KeyProvider | None = None,
    associated_data: bytes = b"",
    overwrite: bool = False,
    workers: int = streaming.DEFAULT_WORKERS,
) -> CryptoResult:
    """Decrypt a file or directory made by :func:`encrypt` (or a Tink ciphertext file).

    Raises :class:`DecryptionError` (wrong key, wrong associated data, any tampering) and leaves
    no output at all in that case; plaintext files are created 0600, directories 0700.
    """
    source, target = Path(src), Path(dst)
    try:
        st = os.lstat(source)
    except OSError as exc:
        raise InputError(
            f"cannot read {str(source)!r}: {exc.strerror}", hint="check the path"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        layout = _read_layout(source)
        keys = _decryption_keys(
            keyset, provider, layout.envelope, associated_data, f"{str(source)!r}"
        )
        index = _read_index(layout, keys, associated_data)
        total = 0
        with _temp_dir(target, overwrite) as tmp:
            for d in index.dirs:
                os.mkdir(tmp / d, 0o700)
            for i, (rel, size) in enumerate(index.files):
                with _open_input(layout.blob(i)) as fh:
                    fd = os.open(tmp / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
                    with os.fdopen(fd, "wb", buffering=0) as out:
                        got = _decrypt_part(keys, fh, out, associated_data, i, rel, workers)
                        os.fsync(out.fileno())  # durable before the directory is renamed in
                if got != size:
                    raise DecryptionError(
                        f"file {i} decrypted to {got} bytes, the index says {size}",
                        hint="do not use this artifact",
                    )
                total += got
        return CryptoResult("decrypt", "directory", source, target, len(index.files), total)
    envelope = _read_envelope_file(source.with_name(source.name + ENVELOPE_SUFFIX))
    keys = _decryption_keys(keyset, provider, envelope, associated_data, f"{str(source)!r}")
    with _open_input(source) as fh, _temp_file(target, overwrite, 0o600) as out:
        total = streaming.decrypt_stream(
            keys, fh, out, associated_data=associated_data, workers=workers
        )
    return CryptoResult("decrypt", "file", source, target, 1, total)


def _decrypt_part(
    keys: tuple[ks.StreamingKey, ...],
    src: BinaryIO,
    dst: streaming.Writable,
    associated: bytes,
    i: int,
    rel: str,
    workers: int,
) -> int:
    ad = part_associated_data(associated, b"file", str(i).encode(), rel.encode())
    try:
        return streaming.decrypt_stream(keys, src, dst, associated_data=ad, workers=workers)
    except DecryptionError as exc:
        raise DecryptionError(
            f"{rel!r} (blob {i}): {exc.message}",
            hint="the encrypted directory was modified; do not use it",
        ) from None


@dataclasses.dataclass(frozen=True)
class _Layout:
    root: Path
    envelope: env.Envelope | None
    blob_count: int

    def blob(self, i: int) -> Path:
        return self.root / BLOBS_DIR / _blob_name(i)


@dataclasses.dataclass(frozen=True)
class _Index:
    files: tuple[tuple[str, int], ...]
    dirs: tuple[str, ...]


def _read_layout(root: Path) -> _Layout:
    where = f"encrypted directory {str(root)!r}"
    try:
        with _open_input(root / HEADER_NAME) as fh:
            header = json.loads(fh.read(1 << 20))
    except (InputError, ValueError):
        raise EnvelopeError(
            f"{str(root)!r} is not an encrypted model directory (no valid {HEADER_NAME})",
            hint="give a directory made by 'modelseal encrypt'",
        ) from None
    if not isinstance(header, dict) or header.get("modelseal") != DIR_FORMAT:
        raise EnvelopeError(f"{where} has an unknown format", hint="upgrade modelseal")
    envelope = None
    if "envelope" in header:
        envelope = env.from_dict(header["envelope"], where=f"the envelope of {where}")
    top = set(os.listdir(root))
    extra = top - {HEADER_NAME, INDEX_NAME, BLOBS_DIR}
    if extra or INDEX_NAME not in top or BLOBS_DIR not in top:
        what = f"unexpected entries {sorted(extra)}" if extra else "missing entries"
        raise DecryptionError(
            f"{where} has {what}", hint="the directory was modified; do not use it"
        )
    blobs = root / BLOBS_DIR
    if os.path.islink(blobs) or not blobs.is_dir():
        raise DecryptionError(f"{where}: {BLOBS_DIR} is not a directory", hint="do not use it")
    names = sorted(os.listdir(blobs))
    if names != [_blob_name(i) for i in range(len(names))]:
        raise DecryptionError(
            f"{where}: the blobs are not numbered 0..{len(names) - 1} without gaps",
            hint="the directory was modified; do not use it",
        )
    return _Layout(root, envelope, len(names))


def _read_index(layout: _Layout, keys: tuple[ks.StreamingKey, ...], associated: bytes) -> _Index:
    where = f"the index of {str(layout.root)!r}"
    with _open_input(layout.root / INDEX_NAME) as fh:
        ciphertext = fh.read(MAX_INDEX_BYTES + 1)
    if len(ciphertext) > MAX_INDEX_BYTES:
        raise EnvelopeError(f"{where} is too large", hint="do not use this artifact")
    plain = streaming.decrypt_bytes(
        keys, ciphertext, associated_data=part_associated_data(associated, b"index")
    )
    try:
        doc = json.loads(plain)
        files = tuple((_check_path(f["path"], where), _size(f["size"])) for f in doc["files"])
        dirs = tuple(_check_path(d, where) for d in doc["dirs"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EnvelopeError(
            f"{where} is malformed ({exc})", hint="do not use this artifact"
        ) from None
    # Directories must be listed parents-first, once; files must land in listed directories.
    seen_dirs: set[str] = set()
    for d in dirs:
        parent = d.rsplit("/", 1)[0] if "/" in d else ""
        if d in seen_dirs or (parent and parent not in seen_dirs):
            raise EnvelopeError(
                f"{where} lists directory {d!r} out of order or twice", hint="do not use it"
            )
        seen_dirs.add(d)
    seen_files: set[str] = set()
    for path, _ in files:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if path in seen_files or path in seen_dirs or (parent and parent not in seen_dirs):
            raise EnvelopeError(
                f"{where} lists {path!r} twice or outside its directories", hint="do not use it"
            )
        seen_files.add(path)
    if len(files) != layout.blob_count:
        raise DecryptionError(
            f"{str(layout.root)!r} holds {layout.blob_count} blobs "
            f"but its index lists {len(files)} files",
            hint="blobs were added or removed; do not use this artifact",
        )
    return _Index(files, dirs)


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("sizes are non-negative integers")
    return value


def decrypt_to_memory(
    src: PathLike,
    *,
    keyset: ks.Keyset | None = None,
    provider: KeyProvider | None = None,
    associated_data: bytes = b"",
    workers: int = streaming.DEFAULT_WORKERS,
) -> dict[str, bytes]:
    """Decrypt a file or directory into memory only; nothing is written to disk.

    Returns ``{relative path: plaintext}`` (for a single file, one entry named after the
    ciphertext file without a trailing ``.enc``). Returns only once every file authenticated.
    """
    source = Path(src)
    try:
        st = os.lstat(source)
    except OSError as exc:
        raise InputError(
            f"cannot read {str(source)!r}: {exc.strerror}", hint="check the path"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        layout = _read_layout(source)
        keys = _decryption_keys(
            keyset, provider, layout.envelope, associated_data, f"{str(source)!r}"
        )
        index = _read_index(layout, keys, associated_data)
        out: dict[str, bytes] = {}
        for i, (rel, size) in enumerate(index.files):
            buffer = io.BytesIO()
            with _open_input(layout.blob(i)) as fh:
                _decrypt_part(keys, fh, buffer, associated_data, i, rel, workers)
            if buffer.tell() != size:
                raise DecryptionError(
                    f"file {i} has the wrong size", hint="do not use this artifact"
                )
            out[rel] = buffer.getvalue()
        return out
    envelope = _read_envelope_file(source.with_name(source.name + ENVELOPE_SUFFIX))
    keys = _decryption_keys(keyset, provider, envelope, associated_data, f"{str(source)!r}")
    buffer = io.BytesIO()
    with _open_input(source) as fh:
        streaming.decrypt_stream(keys, fh, buffer, associated_data=associated_data, workers=workers)
    name = (
        source.name[: -len(".enc")]
        if source.name.endswith(".enc") and len(source.name) > 4
        else source.name
    )
    return {name: buffer.getvalue()}


def read_envelope(src: PathLike) -> tuple[Path, env.Envelope]:
    """Where the envelope of an encrypted file or directory lives, and what it holds."""
    source = Path(src)
    if source.is_dir() and not source.is_symlink():
        layout = _read_layout(source)
        if layout.envelope is None:
            raise UsageError(
                f"{str(source)!r} was encrypted with a keyset, not a provider",
                hint="nothing to rotate",
            )
        return source / HEADER_NAME, layout.envelope
    path = source.with_name(source.name + ENVELOPE_SUFFIX)
    found = _read_envelope_file(path)
    if found is None:
        raise UsageError(f"{str(source)!r} has no envelope ({path.name})", hint="nothing to rotate")
    return path, found


def write_envelope(path: Path, envelope: env.Envelope) -> None:
    """Replace the envelope at ``path`` atomically (a sidecar file or a directory header)."""
    from modelseal.fsutil import atomic_write

    if path.name == HEADER_NAME:
        data = (
            json.dumps(
                {"modelseal": DIR_FORMAT, "envelope": envelope.to_dict()}, indent=2, sort_keys=True
            )
            + "\n"
        ).encode()
    else:
        data = envelope.to_json()
    atomic_write(path, data, mode=0o644)
