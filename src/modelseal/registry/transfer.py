"""Client-side halves of push and pull, shared by the embedded store and the HTTP client.

Push reads exactly the files the signature lists, from inside the model path. Pull writes into a
hidden staging path beside the destination, verifies the result against the version's signature
(the registry's recorded key, or one the caller pins), and only then renames it into place.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from modelseal.errors import InputError, OutputError
from modelseal.fsinput import open_regular
from modelseal.registry.views import FileView, VersionView

CHUNK = 1 << 20


def model_file(model_path: Path, relpath: str) -> Path:
    """The file for manifest path ``relpath`` (``.`` is a single-file model), never outside."""
    if relpath == ".":
        return model_path
    target = model_path / relpath
    root = model_path.resolve()
    try:
        target.resolve().relative_to(root)
    except ValueError:
        raise InputError(
            f"{relpath!r} points outside the model directory", hint="remove the symlink"
        ) from None
    return target


def read_chunks(path: Path, chunk: int = CHUNK) -> Iterator[bytes]:
    """The bytes of ``path`` in chunks; :class:`InputError` if it cannot be read."""
    try:
        handle = os.fdopen(open_regular(path), "rb")
    except OSError as exc:
        raise InputError(
            f"cannot read {str(path)!r}: {exc.strerror}", hint="check the model files"
        ) from None
    with handle:
        while data := handle.read(chunk):
            yield data


def safe_destination(root: Path, relpath: str) -> Path:
    """Where a downloaded file goes: inside ``root`` whatever the (server-given) path says."""
    if relpath == ".":
        return root
    parts = relpath.split("/")
    if (
        not relpath
        or relpath.startswith("/")
        or "\x00" in relpath
        or "\\" in relpath
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise InputError(f"refusing unsafe file path {relpath!r} from the registry", hint="")
    return root.joinpath(*parts)


def pull_into(
    info: VersionView,
    dest: Path,
    fetch: Callable[[str], Iterable[bytes]],
    *,
    public_key: str | os.PathLike[str] | None = None,
    trust_anchors: Sequence[str | os.PathLike[str]] = (),
    write: Callable[[FileView, BinaryIO], None] | None = None,
    private: bool = False,
    overwrite: bool = False,
) -> Path:
    """Download ``info``'s files with ``fetch(path)``, verify them, move them to ``dest``.

    ``write(entry, out)`` replaces the plain copy (an encrypted version decrypts there);
    ``private`` makes the staging files 0600 and directories 0700 (decrypted models);
    ``overwrite`` replaces an existing ``dest``, only once the new copy has verified."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from modelseal.signing.api import verify
    from modelseal.signing.bundle import parse_bundle
    from modelseal.signing.keys import check_supported

    if not overwrite and dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise OutputError(
            f"{str(dest)!r} already exists", hint="choose a new destination or replace it"
        )
    single = [f.path for f in info.files] == ["."]
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"directory {str(parent)!r} does not exist", hint="create it first")
    staging = parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
    holder = None
    if single and private:  # decrypted: never a plaintext file beside dest, only in a 0700 dir
        holder, staging = staging, staging / dest.name
        holder.mkdir(mode=0o700)
    try:
        if not single:
            staging.mkdir(mode=0o700 if private else 0o777)
        for entry in info.files:
            target = safe_destination(staging, entry.path)
            target.parent.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            with os.fdopen(os.open(target, flags, 0o600 if private else 0o666), "wb") as out:
                if write is not None:
                    write(entry, out)
                else:
                    for chunk in fetch(entry.path):
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        bundle = parse_bundle((info.bundle or "").encode("utf-8"))
        key: object
        if public_key is not None:
            key = public_key
        elif info.public_key is not None:
            key = check_supported(load_pem_public_key(info.public_key.encode("ascii")))
        else:
            key = None
        if bundle.certificates:
            if not trust_anchors:
                raise InputError(
                    "this version is certificate-signed", hint="pull with --trust-anchor CA.pem"
                )
            verify(staging, signature=bundle, trust_anchors=trust_anchors)
        else:
            verify(staging, signature=bundle, public_key=key)
        _move_into_place(staging, dest)
        if holder is not None:
            holder.rmdir()
    except BaseException:
        with contextlib.suppress(OSError):
            if holder is not None:
                shutil.rmtree(holder)
            elif staging.is_dir():
                shutil.rmtree(staging)
            else:
                staging.unlink()
        raise
    return dest


def _move_into_place(staging: Path, dest: Path) -> None:
    """Rename the verified ``staging`` to ``dest``; an existing ``dest`` is moved aside first
    and removed only after the new one is in place (a crash leaves one or the other)."""
    if not dest.exists() and not dest.is_symlink():
        os.rename(staging, dest)
        return
    if dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir()):
        dest.rmdir()
        os.rename(staging, dest)
        return
    aside = dest.parent / f".{dest.name}.replaced-{secrets.token_hex(4)}"
    os.rename(dest, aside)
    try:
        os.rename(staging, dest)
    except BaseException:
        os.rename(aside, dest)
        raise
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside)
    else:
        aside.unlink()
