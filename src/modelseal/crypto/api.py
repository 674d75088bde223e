"""Encrypt and decrypt model files and directories, with a Tink keyset or a KEK provider.

* A **file** encrypts to one Tink streaming-AEAD ciphertext (``tink`` decrypts it with the same
  keyset and associated data).
* A **directory** encrypts to a directory (:mod:`.directory`, docs/crypto.md): an encrypted
  index and one ciphertext per file, each bound to the artifact's associated data, a random
  artifact id, and its position, path and size, so nothing can be swapped, renamed, dropped,
  added or mixed with another artifact unnoticed; file names are not revealed.
* With a **provider** (envelope encryption) a fresh data key is made per artifact and wrapped;
  the envelope sits in ``FILE.envelope.json`` beside a file, or in a directory's header.

Decryption fails closed and leaves no plaintext behind (:mod:`.outputs`): a file is written
unnamed and gets its name only after the whole stream authenticated; a directory is built in a
private directory (0700) whose files are named only once every file authenticated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from modelseal.crypto import directory, outputs, streaming
from modelseal.crypto import envelope as env
from modelseal.crypto import keyset as ks
from modelseal.crypto.providers import KeyProvider
from modelseal.errors import EnvelopeError, InputError, UsageError
from modelseal.fsinput import open_regular

PathLike = str | os.PathLike[str]
ENVELOPE_SUFFIX = ".envelope.json"
HEADER_NAME = directory.HEADER_NAME
DIR_FORMAT = directory.DIR_FORMAT
_NOFOLLOW = outputs.NOFOLLOW


def associated_data(*, model_name: str, version: str, manifest_digest: str) -> bytes:
    """The associated data that binds a ciphertext to one model version and its manifest.

    Canonical JSON (sorted keys, no spaces, UTF-8), e.g.
    ``{"manifest_digest":"sha256:ab..","model":"bert","version":"3"}``.
    """
    doc = {"manifest_digest": manifest_digest, "model": model_name, "version": version}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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
        fd = open_regular(path, os.O_RDONLY | _NOFOLLOW)  # never waits on a FIFO
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
    st = _lstat(source)
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
        with _new_dir(target, overwrite) as tmp:
            files, total = directory.encrypt_dir(
                source, tmp, key, envelope, associated_data, workers, _open_input
            )
        return CryptoResult("encrypt", "directory", source, target, files, total)
    with _open_input(source) as fh:
        envelope_path = target.with_name(target.name + ENVELOPE_SUFFIX) if envelope else None
        with outputs.complete_file(target, overwrite, 0o644) as out:
            total = streaming.encrypt_stream(
                key, fh, out, associated_data=associated_data, workers=workers
            )
        if envelope is not None and envelope_path is not None:
            from modelseal.fsutil import atomic_write

            atomic_write(envelope_path, envelope.to_json(), mode=0o644)
    return CryptoResult("encrypt", "file", source, target, 1, total, envelope_path)


def _lstat(source: Path) -> os.stat_result:
    try:
        return os.lstat(source)
    except OSError as exc:
        raise InputError(
            f"cannot read {str(source)!r}: {exc.strerror}", hint="check the path"
        ) from None


@contextlib.contextmanager
def _new_dir(dst: Path, overwrite: bool) -> Iterator[Path]:
    """A private directory beside ``dst``, renamed onto it only if the block finishes."""
    outputs.check_target(dst, overwrite)
    with outputs.private_dir(dst) as tmp:
        try:
            yield tmp
        except OSError as exc:
            raise outputs.io_failure(dst, exc) from None
        directory.replace_dir(tmp, dst)


def _open_directory(
    source: Path,
    keyset: ks.Keyset | None,
    provider: KeyProvider | None,
    associated: bytes,
    allow_v1: bool,
) -> tuple[directory.Layout, directory.Index, tuple[ks.StreamingKey, ...]]:
    layout = directory.read_layout(source, _open_input, allow_v1=allow_v1)
    keys = _decryption_keys(keyset, provider, layout.envelope, associated, f"{str(source)!r}")
    return layout, directory.read_index(layout, keys, associated, _open_input), keys


def decrypt(
    src: PathLike,
    dst: PathLike,
    *,
    keyset: ks.Keyset | None = None,
    provider: KeyProvider | None = None,
    associated_data: bytes = b"",
    overwrite: bool = False,
    workers: int = streaming.DEFAULT_WORKERS,
    allow_v1: bool = False,
) -> CryptoResult:
    """Decrypt a file or directory made by :func:`encrypt` (or a Tink ciphertext file).

    Raises :class:`DecryptionError` (wrong key, wrong associated data, any tampering) and leaves
    no output at all in that case; plaintext files are created 0600, directories 0700. No
    plaintext file exists under any name before the whole input authenticated. A directory in
    the old v1 format (whose files can be mixed between artifacts) is refused unless
    ``allow_v1``, meant only to decrypt it once and encrypt it again.
    """
    source, target = Path(src), Path(dst)
    st = _lstat(source)
    if stat.S_ISDIR(st.st_mode):
        layout, index, keys = _open_directory(source, keyset, provider, associated_data, allow_v1)
        with _new_dir(target, overwrite) as tmp:
            total = directory.decrypt_into(
                layout, index, keys, tmp, associated_data, workers, _open_input
            )
        return CryptoResult("decrypt", "directory", source, target, len(index.files), total)
    envelope = _read_envelope_file(source.with_name(source.name + ENVELOPE_SUFFIX))
    keys = _decryption_keys(keyset, provider, envelope, associated_data, f"{str(source)!r}")
    with _open_input(source) as fh, outputs.complete_file(target, overwrite, 0o600) as out:
        total = streaming.decrypt_stream(
            keys, fh, out, associated_data=associated_data, workers=workers
        )
    return CryptoResult("decrypt", "file", source, target, 1, total)


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
    Directories in the old v1 format are refused (re-encrypt them, see :func:`decrypt`).
    """
    source = Path(src)
    st = _lstat(source)
    if stat.S_ISDIR(st.st_mode):
        layout, index, keys = _open_directory(source, keyset, provider, associated_data, False)
        return directory.decrypt_to_buffers(
            layout, index, keys, associated_data, workers, _open_input
        )
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
        layout = directory.read_layout(source, _open_input, allow_v1=True)
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
        header = json.loads(path.read_bytes())  # keep the format and artifact id as they are
        header["envelope"] = envelope.to_dict()
        data = (json.dumps(header, indent=2, sort_keys=True) + "\n").encode()
    else:
        data = envelope.to_json()
    atomic_write(path, data, mode=0o644)
