"""Walk a model root and open its files without ever leaving it.

Listing uses ``os.scandir`` without following links. Files are later opened component by component
from a descriptor of the root with ``O_NOFOLLOW``, so a directory or file swapped for a symlink
between listing and reading is refused instead of followed out of the model.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from modelseal.errors import ModelPathError
from modelseal.fsinput import NOT_REGULAR, NotRegularFileError, open_regular

# Ignored at the model root unless the signer opts out (OMS / model_signing defaults).
DEFAULT_IGNORES: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """A regular file to hash: ``name`` as it appears in the manifest, ``source`` as it is opened.

    ``source`` differs from ``name`` only for an allowed symlink, where it is the link target's
    path relative to the real model root. ``name`` is ``"."`` when the model is a single file.
    """

    name: str
    source: str
    size: int


@dataclasses.dataclass(frozen=True)
class Refusal:
    """An entry that may not be hashed: a symlink, a special file, an unreadable directory."""

    name: str
    code: str  # "symlink" | "special" | "unreadable" | "encoding"
    message: str


@dataclasses.dataclass(frozen=True)
class Listing:
    """What walking a model found: the files to hash and the entries refused."""

    root: Path
    is_file: bool
    files: tuple[FileEntry, ...]
    refusals: tuple[Refusal, ...]


class IgnoreRules:
    """Which relative paths to skip: literal paths (a directory covers its children) and globs."""

    def __init__(self, paths: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self.paths = frozenset(normalize_relpath(p) for p in paths if normalize_relpath(p))
        self.patterns = tuple(patterns)

    def literal_match(self, rel: str) -> bool:
        """Whether ``rel`` or a directory above it is one of the ignored paths."""
        parts = rel.split("/")
        return any("/".join(parts[:i]) in self.paths for i in range(1, len(parts) + 1))

    def pattern_match(self, rel: str) -> bool:
        """Whether ``rel`` or its base name matches one of the ignore patterns."""
        base = rel.rsplit("/", 1)[-1]
        return any(
            fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(base, p) for p in self.patterns
        )


def normalize_relpath(path: str) -> str:
    """A relative path as POSIX components without ``.`` or empty parts (``""`` for the root)."""
    parts = [p for p in str(path).replace(os.sep, "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


def list_model(
    root: Path, *, allow_symlinks: bool, ignore: IgnoreRules
) -> tuple[Listing, tuple[str, ...]]:
    """List the files under ``root`` to hash, and the paths that ignore patterns matched.

    Raises :class:`ModelPathError` when ``root`` itself is missing or not a file or directory.
    Entries that cannot be hashed are returned as refusals; the caller decides if that is an
    input error (signing) or a verification failure.
    """
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise ModelPathError(
            f"model path {str(root)!r} does not exist", hint="check the path and try again"
        ) from None
    except OSError as exc:
        raise ModelPathError(
            f"cannot read model path {str(root)!r}: {exc.strerror}",
            hint="check the path and its permissions",
        ) from None
    if stat.S_ISREG(st.st_mode):
        entry = FileEntry(name=".", source="", size=st.st_size)
        return Listing(root, True, (entry,), ()), ()
    if not stat.S_ISDIR(st.st_mode):
        raise ModelPathError(
            f"model path {str(root)!r} is neither a file nor a directory",
            hint="point at a model file or a model directory",
        )
    real_root = os.path.realpath(root)
    files: list[FileEntry] = []
    refusals: list[Refusal] = []
    matched: list[str] = []
    stack: list[str] = [""]
    while stack:
        rel_dir = stack.pop()
        full_dir = os.path.join(root, rel_dir) if rel_dir else str(root)
        try:
            with os.scandir(full_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            refusals.append(
                Refusal(rel_dir, "unreadable", f"cannot list directory: {exc.strerror}")
            )
            continue
        for dir_entry in entries:
            rel = f"{rel_dir}/{dir_entry.name}" if rel_dir else dir_entry.name
            if not _is_utf8(rel):
                refusals.append(Refusal(rel, "encoding", "file name is not valid UTF-8"))
                continue
            if ignore.literal_match(rel):
                continue
            if ignore.pattern_match(rel):
                matched.append(rel)
                continue
            _classify(dir_entry, rel, real_root, allow_symlinks, files, refusals, stack)
    return Listing(root, False, tuple(files), tuple(refusals)), tuple(matched)


def _classify(
    entry: os.DirEntry[str],
    rel: str,
    real_root: str,
    allow_symlinks: bool,
    files: list[FileEntry],
    refusals: list[Refusal],
    stack: list[str],
) -> None:
    try:
        if entry.is_symlink():
            if not allow_symlinks:
                refusals.append(Refusal(rel, "symlink", "is a symbolic link (not allowed)"))
                return
            target = os.path.realpath(entry.path)
            inside = os.path.commonpath([real_root, target]) == real_root and target != real_root
            if not inside:
                refusals.append(Refusal(rel, "symlink", "symbolic link points outside the model"))
                return
            tst = os.stat(target, follow_symlinks=False)
            if not stat.S_ISREG(tst.st_mode):
                refusals.append(Refusal(rel, "symlink", "symbolic link does not point to a file"))
                return
            source = os.path.relpath(target, real_root).replace(os.sep, "/")
            files.append(FileEntry(rel, source, tst.st_size))
            return
        lst = entry.stat(follow_symlinks=False)
    except OSError as exc:
        refusals.append(Refusal(rel, "unreadable", f"cannot inspect: {exc.strerror}"))
        return
    if stat.S_ISDIR(lst.st_mode):
        stack.append(rel)
    elif stat.S_ISREG(lst.st_mode):
        files.append(FileEntry(rel, rel, lst.st_size))
    else:
        refusals.append(Refusal(rel, "special", f"is {NOT_REGULAR}"))


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def open_root(root: Path, is_file: bool) -> int:
    """A descriptor for the model root (its directory, or the model file itself), opened without
    blocking: a root that is no longer a regular file (or a directory) is a ModelPathError."""
    flags = os.O_RDONLY | (0 if is_file else _O_DIRECTORY)
    try:
        return open_regular(root, flags, directory_ok=not is_file)
    except NotRegularFileError:
        raise ModelPathError(
            f"cannot open model path {str(root)!r}: {NOT_REGULAR}",
            hint="point at a model file or a model directory",
        ) from None
    except OSError as exc:
        raise ModelPathError(
            f"cannot open model path {str(root)!r}: {exc.strerror}",
            hint="check the path and its permissions",
        ) from None


def open_beneath(root_fd: int, relpath: str) -> int:
    """Open ``relpath`` read-only below ``root_fd`` without following any symlink on the way and
    without blocking; anything but a regular file is a :class:`NotRegularFileError`."""
    parts: Sequence[str] = relpath.split("/")
    dir_fd = root_fd
    opened: list[int] = []
    try:
        for part in parts[:-1]:
            if part in ("", ".", ".."):
                raise OSError(0, f"invalid path component {part!r}")
            dir_fd = os.open(
                part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd
            )
            opened.append(dir_fd)
        last = parts[-1]
        if last in ("", ".", ".."):
            raise OSError(0, f"invalid path component {last!r}")
        # Non-blocking: a FIFO swapped in since the listing must not hang the open.
        return open_regular(last, os.O_RDONLY | _O_NOFOLLOW, dir_fd=dir_fd)
    finally:
        for d in opened:
            os.close(d)


def relative_inside(
    path: str | os.PathLike[str] | None, root: str | os.PathLike[str]
) -> str | None:
    """``path`` relative to the model directory ``root`` if it lies inside it, else ``None``."""
    if path is None:
        return None
    root_abs = Path(root).resolve()
    if not root_abs.is_dir():
        return None
    try:
        return Path(path).resolve().relative_to(root_abs).as_posix()
    except ValueError:
        return None
