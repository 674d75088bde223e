"""Encrypted model directories (format ``encrypted-directory/v2``, see docs/crypto.md)::

    OUT/modelseal-encrypted.json   plaintext header: format, artifact id (+ envelope, if any)
    OUT/index.enc                  the encrypted index: every file's path and size, every dir
    OUT/blobs/00000000.enc ...     file i of the index, each its own streaming ciphertext

Every part is bound (streaming-AEAD associated data) to the artifact's associated data (the
model identity, when given), to a random **artifact id** made for this encryption, and to its
role; each blob also to its position, path and size. So a blob cannot be moved to another
position, path or artifact - even one encrypted with the same key and associated data - and
an index only opens with the blobs it was written with. File names are not revealed.

Paths from the index are never trusted: absolute paths, ``..``, empty or ``.`` components,
backslashes, NULs, duplicates and file/dir clashes are refused before a byte is written.

The previous format (``v1``) bound parts only to the associated data, position and path: blobs
of two artifacts encrypted with one key and the same associated data could be mixed. It is
read only when the caller asks for it explicitly (``allow_v1``), to re-encrypt it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from modelseal.crypto import envelope as env
from modelseal.crypto import keyset as ks
from modelseal.crypto import outputs, streaming
from modelseal.errors import DecryptionError, EnvelopeError, InputError, OutputError

HEADER_NAME = "modelseal-encrypted.json"
INDEX_NAME = "index.enc"
BLOBS_DIR = "blobs"
DIR_FORMAT = "encrypted-directory/v2"
V1_FORMAT = "encrypted-directory/v1"
PART_LABEL = b"modelseal/encrypted-directory/v2"
V1_PART_LABEL = b"modelseal/encrypted-directory/v1"
ARTIFACT_ID_BYTES = 32
MAX_INDEX_BYTES = 64 << 20
MAX_PATH_BYTES = 4096


def _lp(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(8, "big") + p for p in parts)


def index_associated_data(associated: bytes, artifact: bytes) -> bytes:
    """Associated data of a v2 index: ``PART_LABEL, associated, artifact id, "index"``, each as
    8-byte big-endian length || bytes."""
    return _lp(PART_LABEL, associated, artifact, b"index")


def blob_associated_data(
    associated: bytes, artifact: bytes, position: int, path: str, size: int
) -> bytes:
    """Associated data of v2 blob ``position``: ``PART_LABEL, associated, artifact id, "file",
    position, path, size`` (decimal ASCII numbers, UTF-8 path; length-prefixed as above)."""
    return _lp(
        PART_LABEL,
        associated,
        artifact,
        b"file",
        str(position).encode(),
        path.encode(),
        str(size).encode(),
    )


def v1_part_associated_data(associated: bytes, *parts: bytes) -> bytes:
    """Associated data of a part in the old v1 format (``V1_PART_LABEL, associated, *parts``)."""
    return _lp(V1_PART_LABEL, associated, *parts)


@dataclasses.dataclass(frozen=True)
class Layout:
    """What an encrypted directory's plaintext parts say (nothing here is authenticated yet)."""

    root: Path
    envelope: env.Envelope | None
    blob_count: int
    artifact: bytes | None  # None: the v1 format

    def blob(self, i: int) -> Path:
        """The path of blob ``i``."""
        return self.root / BLOBS_DIR / blob_name(i)

    def blob_ad(self, associated: bytes, i: int, rel: str, size: int) -> bytes:
        """The associated data blob ``i`` must have been sealed with."""
        if self.artifact is None:
            return v1_part_associated_data(associated, b"file", str(i).encode(), rel.encode())
        return blob_associated_data(associated, self.artifact, i, rel, size)

    def index_ad(self, associated: bytes) -> bytes:
        """The associated data the index must have been sealed with."""
        if self.artifact is None:
            return v1_part_associated_data(associated, b"index")
        return index_associated_data(associated, self.artifact)


@dataclasses.dataclass(frozen=True)
class Index:
    """The authenticated index: files (path, size) in blob order, and directories."""

    files: tuple[tuple[str, int], ...]
    dirs: tuple[str, ...]


def blob_name(index: int) -> str:
    """The file name of blob ``index``."""
    return f"{index:08d}.enc"


# --- walking a plaintext directory -------------------------------------------------------------


def walk(root: Path) -> tuple[list[str], list[str]]:
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
            _check_name(path, root)

    visit(root, "")
    return files, dirs


def _check_name(path: str, root: Path) -> None:
    try:
        check_path(path, str(root))
    except EnvelopeError:
        raise InputError(
            f"{path!r} in {str(root)!r} cannot be stored (not UTF-8, or too long)",
            hint="rename it before encrypting",
        ) from None


def check_path(path: Any, where: str) -> str:
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


# --- encryption ---------------------------------------------------------------------------------


def encrypt_dir(
    source: Path,
    tmp: Path,
    key: ks.StreamingKey,
    envelope: env.Envelope | None,
    associated: bytes,
    workers: int,
    open_input: Any,
) -> tuple[int, int]:
    """Encrypt the directory ``source`` into the new empty directory ``tmp``."""
    files, dirs = walk(source)
    artifact = secrets.token_bytes(ARTIFACT_ID_BYTES)
    total = 0
    sizes: list[int] = []
    os.mkdir(tmp / BLOBS_DIR, 0o755)
    for i, rel in enumerate(files):
        with open_input(source / rel) as fh:
            size = os.fstat(fh.fileno()).st_size
            with open(tmp / BLOBS_DIR / blob_name(i), "xb") as out:
                done = streaming.encrypt_stream(
                    key,
                    fh,
                    out,
                    associated_data=blob_associated_data(associated, artifact, i, rel, size),
                    workers=workers,
                )
                out.flush()
                os.fsync(out.fileno())
        if done != size:
            raise InputError(
                f"{str(source / rel)!r} changed size while it was encrypted",
                hint="encrypt a model that is not being written to",
            )
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
            associated_data=index_associated_data(associated, artifact),
        )
    header: dict[str, Any] = {"modelseal": DIR_FORMAT, "artifact": artifact.hex()}
    if envelope is not None:
        header["envelope"] = envelope.to_dict()
    (tmp / HEADER_NAME).write_bytes((json.dumps(header, indent=2, sort_keys=True) + "\n").encode())
    os.chmod(tmp, 0o755)  # noqa: S103 - ciphertext is not secret; readable like its source
    return len(files), total


# --- decryption ---------------------------------------------------------------------------------


def read_layout(root: Path, open_input: Any, *, allow_v1: bool = False) -> Layout:
    """The plaintext parts of an encrypted directory, checked for shape (not authenticity)."""
    where = f"encrypted directory {str(root)!r}"
    try:
        with open_input(root / HEADER_NAME) as fh:
            header = json.loads(fh.read(1 << 20))
    except (InputError, ValueError, RecursionError):
        raise EnvelopeError(
            f"{str(root)!r} is not an encrypted model directory (no valid {HEADER_NAME})",
            hint="give a directory made by 'modelseal encrypt'",
        ) from None
    if not isinstance(header, dict) or header.get("modelseal") not in (DIR_FORMAT, V1_FORMAT):
        raise EnvelopeError(f"{where} has an unknown format", hint="upgrade modelseal")
    artifact: bytes | None = None
    if header["modelseal"] == V1_FORMAT:
        if not allow_v1:
            raise EnvelopeError(
                f"{where} uses the old {V1_FORMAT} format, whose files can be swapped with "
                "those of another artifact under the same key unnoticed",
                hint="if you trust where it was kept, decrypt it once with allow_v1=True and "
                "encrypt it again",
                topic="directory-v1",
            )
    else:
        value = header.get("artifact")
        try:
            artifact = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            artifact = b""
        if len(artifact) != ARTIFACT_ID_BYTES:
            raise EnvelopeError(f"{where} has no valid artifact id", hint="do not use it")
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
    if names != [blob_name(i) for i in range(len(names))]:
        raise DecryptionError(
            f"{where}: the blobs are not numbered 0..{len(names) - 1} without gaps",
            hint="the directory was modified; do not use it",
        )
    return Layout(root, envelope, len(names), artifact)


def read_index(
    layout: Layout, keys: tuple[ks.StreamingKey, ...], associated: bytes, open_input: Any
) -> Index:
    """The authenticated index, checked for safe paths and for matching the blobs."""
    where = f"the index of {str(layout.root)!r}"
    with open_input(layout.root / INDEX_NAME) as fh:
        ciphertext = fh.read(MAX_INDEX_BYTES + 1)
    if len(ciphertext) > MAX_INDEX_BYTES:
        raise EnvelopeError(f"{where} is too large", hint="do not use this artifact")
    try:
        plain = streaming.decrypt_bytes(
            keys, ciphertext, associated_data=layout.index_ad(associated)
        )
    except DecryptionError as exc:
        raise DecryptionError(
            f"{where}: {exc.message}",
            hint="wrong key or associated data, or the index belongs to another artifact",
        ) from None
    try:
        doc = json.loads(plain)
        files = tuple((check_path(f["path"], where), _size(f["size"])) for f in doc["files"])
        dirs = tuple(check_path(d, where) for d in doc["dirs"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise EnvelopeError(
            f"{where} is malformed ({type(exc).__name__})", hint="do not use this artifact"
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
    return Index(files, dirs)


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("sizes are non-negative integers")
    return value


def decrypt_part(
    layout: Layout,
    keys: tuple[ks.StreamingKey, ...],
    dst: streaming.Writable,
    associated: bytes,
    i: int,
    rel: str,
    size: int,
    workers: int,
    open_input: Any,
) -> int:
    """Decrypt blob ``i`` (file ``rel`` of ``size`` bytes) into ``dst``; its byte count."""
    try:
        with open_input(layout.blob(i)) as fh:
            got = streaming.decrypt_stream(
                keys,
                fh,
                dst,
                associated_data=layout.blob_ad(associated, i, rel, size),
                workers=workers,
            )
    except DecryptionError as exc:
        raise DecryptionError(
            f"{rel!r} (blob {i}): {exc.message}",
            hint="the encrypted directory was modified or mixed with another; do not use it",
        ) from None
    if got != size:
        raise DecryptionError(
            f"{rel!r} (blob {i}) decrypted to {got} bytes, the index says {size}",
            hint="do not use this artifact",
        )
    return got


def decrypt_into(
    layout: Layout,
    index: Index,
    keys: tuple[ks.StreamingKey, ...],
    tmp: Path,
    associated: bytes,
    workers: int,
    open_input: Any,
) -> int:
    """Decrypt every file into the private directory ``tmp``; files get their names only once
    every one of them authenticated (see :mod:`.outputs`). The plaintext byte count."""
    total = 0
    for d in index.dirs:
        os.mkdir(tmp / d, 0o700)
    with outputs.UnnamedTree(tmp) as tree:
        for i, (rel, size) in enumerate(index.files):
            with tree.file(rel, 0o600) as out:
                total += decrypt_part(
                    layout, keys, out, associated, i, rel, size, workers, open_input
                )
        tree.name_all()
    return total


def decrypt_to_buffers(
    layout: Layout,
    index: Index,
    keys: tuple[ks.StreamingKey, ...],
    associated: bytes,
    workers: int,
    open_input: Any,
) -> dict[str, bytes]:
    """Every file in memory, returned only once all authenticated."""
    out: dict[str, bytes] = {}
    for i, (rel, size) in enumerate(index.files):
        buffer = io.BytesIO()
        decrypt_part(layout, keys, buffer, associated, i, rel, size, workers, open_input)
        out[rel] = buffer.getvalue()
    return out


def replace_dir(tmp: Path, dst: Path) -> None:
    """Rename the finished directory ``tmp`` onto ``dst`` (an existing directory is replaced
    only once the new one is in place)."""
    old = None
    if os.path.lexists(dst):  # only with overwrite (checked before)
        if not os.path.isdir(dst) or os.path.islink(dst):
            raise OutputError(f"{str(dst)!r} is not a directory", hint="choose another path")
        old = outputs.temp_name(dst)
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
