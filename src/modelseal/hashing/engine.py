"""The hashing engine: a model on disk to a :class:`Manifest`, in parallel, in bounded memory.

Work is split into one task per file (``files``) or per shard (``shards``) and spread over a
thread pool; hashlib and blake3 release the GIL, so threads use every core. Each worker reads
with ``pread`` into one small reused buffer (or, on request, maps the file read-only). Memory
stays bounded: nothing holds more than one buffer or mapped region per worker, except the
``capture`` and ``map`` readers, which keep every file's bytes for the caller.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from modelseal.errors import ModelPathError, UsageError
from modelseal.fsinput import NOT_REGULAR, NotRegularFileError
from modelseal.hashing.algorithms import canonical_hash_name, new_hasher
from modelseal.hashing.manifest import Manifest, ManifestItem, Method, Serialization
from modelseal.hashing.parallel import ordered_map
from modelseal.hashing.walk import (
    DEFAULT_IGNORES,
    FileEntry,
    IgnoreRules,
    Listing,
    Refusal,
    list_model,
    normalize_relpath,
    open_beneath,
    open_root,
    relative_inside,
)

# "read" (default): pread into a small buffer (a concurrent truncation is an error); "mmap": hash
# through a read-only mapping (a concurrent truncation is SIGBUS); "capture": read every file once
# into fresh memory and hash those bytes, which the caller then parses (verified loading: the
# bytes checked are the bytes used); "map": like "capture", but where ``shared_ranges`` names
# regions of raw values (tensor data), the file stays a private mapping: those regions keep
# sharing the page cache (no copy; an in-place write to the file by another process can show
# through later), every other page is made private before hashing. Other files are copied.
Reader = Literal["mmap", "read", "capture", "map"]
# Captured file contents: writable, so frameworks can wrap them without copying.
Buffer = bytearray | mmap.mmap
Progress = Callable[[int], None]
SharedRanges = Callable[[memoryview], "list[tuple[int, int]] | None"]

_SMALL = 1 << 20  # below this, pread beats setting up a mapping
_STEP = 1 << 23  # bytes fed to the hasher per call (progress granularity)
_READ_BUFFER = 1 << 19  # stays in the core's cache between the copy and the hashing
_WINDOW = 1 << 26  # bytes mapped at once per worker
_CAPTURE_STEP = 1 << 20  # read then hash while it is still in cache
_MIN_SHARD = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class HashOptions:
    """How to hash a model.

    ``shard_size`` switches from the ``files`` to the ``shards`` method; ``hash_type`` is an
    OMS hash name or alias; ``reader`` says how bytes are read (see :data:`Reader`).
    """

    hash_type: str = "sha256"
    shard_size: int | None = None
    allow_symlinks: bool = False
    ignore: tuple[str, ...] = ()
    ignore_git_paths: bool = True
    workers: int | None = None
    reader: Reader = "read"
    # reader="map": the byte ranges of a file's contents that may stay shared (see Reader).
    shared_ranges: SharedRanges | None = None

    def normalized(self) -> HashOptions:
        """These options checked, with the hash name in its OMS spelling.

        A shard size below the minimum or an unknown reader is a :class:`UsageError`; an unknown
        hash an :class:`UnsupportedAlgorithmError`.
        """
        if self.shard_size is not None and self.shard_size < _MIN_SHARD:
            raise UsageError(
                f"shard size {self.shard_size} is too small",
                hint="use a positive shard size (e.g. 256 MiB)",
                topic="shard-size",
            )
        if self.reader not in ("mmap", "read", "capture", "map"):
            raise UsageError(
                f"unknown reader {self.reader!r}", hint="use 'read', 'mmap', 'capture' or 'map'"
            )
        return dataclasses.replace(self, hash_type=canonical_hash_name(self.hash_type))


@dataclasses.dataclass(frozen=True)
class FileIdentity:
    """What a file was when it was read: a later difference means it was replaced or edited."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        """The identity of the file ``st`` describes."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclasses.dataclass(frozen=True)
class HashOutcome:
    """Everything one pass over a model found: the manifest, the files listed (with sizes, so
    empty files are known even where the ``shards`` method records nothing for them), the
    entries refused and the files that could not be read."""

    manifest: Manifest
    files: tuple[FileEntry, ...]
    refusals: tuple[Refusal, ...]
    failures: tuple[HashFailure, ...]
    # With reader="capture" or "map": each file's bytes as hashed, and its identity when read.
    captured: dict[str, Buffer] = dataclasses.field(default_factory=dict)
    identities: dict[str, FileIdentity] = dataclasses.field(default_factory=dict)

    @property
    def empty_files(self) -> tuple[str, ...]:
        """The names of the listed files that were empty, sorted."""
        return tuple(sorted(f.name for f in self.files if f.size == 0))


class HashFailure(Exception):
    """A file could not be read while hashing (vanished, changed size, became a symlink)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of hashing work: bytes ``[start, end)`` of one listed file."""

    entry: FileEntry
    start: int
    end: int
    whole: bool  # files method: the item is the whole file, read to its current size


def hash_model(
    model_path: str | os.PathLike[str],
    options: HashOptions = HashOptions(),
    *,
    extra_ignore_paths: Iterable[str] = (),
    progress: Progress | None = None,
) -> Manifest:
    """Hash the model at ``model_path`` into a manifest; refuse symlinks and special files.

    Raises :class:`ModelPathError` for anything that cannot be hashed.
    """
    outcome = hash_model_lenient(
        model_path, options, extra_ignore_paths=extra_ignore_paths, progress=progress
    )
    raise_for_unhashable(outcome)
    return outcome.manifest


def shown_name(name: str, outcome: HashOutcome) -> str:
    """``name`` as messages show it: a single-file model's ``"."`` is the file's own name."""
    return outcome.manifest.model_name if name == "." else name


def raise_for_unhashable(outcome: HashOutcome) -> None:
    """Raise :class:`ModelPathError` for the first entry that could not be hashed."""
    refusals, failures = outcome.refusals, outcome.failures
    if refusals:
        first = refusals[0]
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        if first.code == "symlink" and "not allowed" in first.message:
            hint, topic = "allow symbolic links that stay inside the model", "symlinks"
        else:
            hint, topic = "remove it from the model or ignore it", "unhashable"
        raise ModelPathError(
            f"cannot hash {shown_name(first.name, outcome)!r}: {first.message}{more}",
            hint=hint,
            topic=topic,
        )
    if failures:
        first_failure = failures[0]
        raise ModelPathError(
            f"cannot hash {shown_name(first_failure.name, outcome)!r}: {first_failure.message}",
            hint="make sure nothing modifies the model while it is hashed",
        )


def hash_model_lenient(
    model_path: str | os.PathLike[str],
    options: HashOptions = HashOptions(),
    *,
    extra_ignore_paths: Iterable[str] = (),
    progress: Progress | None = None,
) -> HashOutcome:
    """Hash what can be hashed; return refused entries and read failures instead of raising.

    Verification uses this so that one symlink does not hide every other difference.
    """
    opts = options.normalized()
    root = Path(model_path)
    rules = ignore_rules(opts, extra_ignore_paths)
    listing, matched = list_model(root, allow_symlinks=opts.allow_symlinks, ignore=rules)
    serialization = serialization_for(opts, rules, matched, is_file=listing.is_file)
    captured: dict[str, Buffer] = {}
    identities: dict[str, FileIdentity] = {}
    unmapped: list[HashFailure] = []
    mapped: frozenset[str] = frozenset()
    if opts.reader == "capture":
        captured = {entry.name: new_buffer(entry.size) for entry in listing.files}
    elif opts.reader == "map":
        unmapped, mapped = _map_files(listing, captured, identities, opts.shared_ranges)
    items, failures = _hash_listing(
        listing, serialization, opts, progress, captured, identities, mapped
    )
    if unmapped:
        failures = tuple(sorted((*failures, *unmapped), key=lambda f: f.name))
    manifest = Manifest.build(model_name(root), serialization, items)
    return HashOutcome(manifest, listing.files, listing.refusals, failures, captured, identities)


def hash_for_signing(
    model_path: str | os.PathLike[str],
    options: HashOptions,
    *,
    signature: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> HashOutcome:
    """Hash ``model_path`` for signing: leave out ``signature`` if it lies inside the model.
    With :func:`modelseal.signing.api.sign_outcome` this splits signing in two, so that a caller
    can hash while it does other work (the CLI loads the key meanwhile)."""
    own = relative_inside(signature, model_path)
    return hash_model_lenient(
        model_path, options, extra_ignore_paths=[own] if own else [], progress=progress
    )


def model_name(root: Path) -> str:
    """The informative model name OMS records: the last path component."""
    name = root.name
    if not name or name == "..":
        name = os.path.basename(os.path.realpath(root))
    return name


def ignore_rules(opts: HashOptions, extra_ignore_paths: Iterable[str] = ()) -> IgnoreRules:
    """What ``opts`` (and the caller's extra literal paths) leave out of a model."""
    literal_ignores, patterns = _split_ignores(opts.ignore)
    if opts.ignore_git_paths:
        literal_ignores.extend(DEFAULT_IGNORES)
    literal_ignores.extend(normalize_relpath(p) for p in extra_ignore_paths)
    return IgnoreRules(literal_ignores, patterns)


def serialization_for(
    opts: HashOptions, rules: IgnoreRules, matched: Iterable[str], *, is_file: bool
) -> Serialization:
    """The OMS serialization of a model hashed with ``opts``: the ignore rules' literal paths
    and the paths their patterns matched are recorded (not for a single file)."""
    recorded = sorted({p for p in (*rules.paths, *matched) if p})
    return Serialization(
        method="shards" if opts.shard_size else "files",
        hash_type=opts.hash_type,
        shard_size=opts.shard_size,
        allow_symlinks=opts.allow_symlinks,
        ignore_paths=() if is_file else tuple(recorded),
    )


def _split_ignores(ignore: Iterable[str]) -> tuple[list[str], list[str]]:
    literal: list[str] = []
    patterns: list[str] = []
    for raw in ignore:
        norm = normalize_relpath(raw)
        if not norm:
            continue
        (patterns if any(c in norm for c in "*?[") else literal).append(norm)
    return literal, patterns


def plan(listing: Listing, method: Method, shard_size: int | None) -> list[Task]:
    """One task per file (``files``) or per shard (``shards``), largest first."""
    tasks: list[Task] = []
    for entry in listing.files:
        if method == "files":
            tasks.append(Task(entry, 0, entry.size, True))
            continue
        assert shard_size is not None
        # OMS: an empty file has no shards; the last shard may be short.
        start = 0
        while start < entry.size:
            end = min(start + shard_size, entry.size)
            tasks.append(Task(entry, start, end, False))
            start = end
    # Largest first keeps all workers busy until the end.
    tasks.sort(key=lambda t: t.end - t.start, reverse=True)
    return tasks


def _hash_listing(
    listing: Listing,
    serialization: Serialization,
    opts: HashOptions,
    progress: Progress | None,
    captured: dict[str, Buffer],
    identities: dict[str, FileIdentity],
    mapped: frozenset[str] = frozenset(),
) -> tuple[list[ManifestItem], tuple[HashFailure, ...]]:
    tasks = plan(listing, serialization.method, serialization.shard_size)
    if not tasks:
        return [], ()
    workers = max(1, min(opts.workers or os.cpu_count() or 1, len(tasks)))
    root_fd = open_root(listing.root, listing.is_file)
    failures: list[HashFailure] = []
    lock = threading.Lock()
    # BLAKE3 can split one large buffer over cores by itself; let it when files are few.
    blake3_threads = (os.cpu_count() or 1) if len(tasks) < workers * 2 else 1

    def run(task: Task) -> ManifestItem | None:
        if opts.reader == "map" and task.entry.name not in captured:
            return None  # could not be opened: already a failure
        if task.entry.name in mapped:
            digest = _hash_mapped(captured[task.entry.name], task, opts, blake3_threads, progress)
            shard = (None, None) if task.whole else (task.start, task.end)
            return ManifestItem(task.entry.name, digest, *shard)
        try:
            buffer = captured.get(task.entry.name) if captured else None
            digest, identity = _hash_region(
                root_fd, listing.is_file, task, opts, blake3_threads, progress, buffer
            )
            if buffer is not None:
                with lock:
                    identities.setdefault(task.entry.name, identity)
        except HashFailure as failure:
            with lock:
                failures.append(failure)
            return None
        shard = (None, None) if task.whole else (task.start, task.end)
        return ManifestItem(task.entry.name, digest, *shard)

    try:
        results = ordered_map(run, tasks, workers)
    finally:
        os.close(root_fd)
    # One failure per file, however many of its shards failed.
    first_failures: dict[str, HashFailure] = {}
    for failure in sorted(failures, key=lambda f: f.name):
        first_failures.setdefault(failure.name, failure)
    return [r for r in results if r is not None], tuple(first_failures.values())


def _hash_region(
    root_fd: int,
    is_file: bool,
    task: Task,
    opts: HashOptions,
    blake3_threads: int,
    progress: Progress | None,
    buffer: Buffer | None = None,
) -> tuple[bytes, FileIdentity]:
    name = task.entry.name
    try:
        fd = os.dup(root_fd) if is_file else open_beneath(root_fd, task.entry.source)
    except FileNotFoundError:
        raise HashFailure(name, "disappeared while hashing") from None
    except NotRegularFileError:
        raise HashFailure(name, f"is {NOT_REGULAR}") from None
    except OSError as exc:
        raise HashFailure(name, f"cannot open safely ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        size = st.st_size
        if task.whole and buffer is None:
            start, end = 0, size
        else:
            start, end = task.start, task.end
            if size != task.entry.size:
                raise HashFailure(name, "changed size while hashing")
        threads = blake3_threads if end - start > _SMALL else 1
        hasher = new_hasher(opts.hash_type, threads=threads)
        if buffer is not None:
            _capture(fd, start, end, memoryview(buffer)[start:end], hasher, progress, name)
        elif end - start >= _SMALL and opts.reader == "mmap":
            _feed_mmap(fd, start, end, hasher, progress)
        else:
            # A hasher that splits its input over threads needs large pieces to do so.
            size = _READ_BUFFER if threads == 1 else _STEP
            _feed_pread(fd, start, end, hasher, progress, name, size)
        return hasher.digest(), FileIdentity.of(st)
    except OSError as exc:
        raise HashFailure(name, f"read error ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _map_files(
    listing: Listing,
    mapped: dict[str, Buffer],
    identities: dict[str, FileIdentity],
    shared_ranges: SharedRanges | None,
) -> tuple[list[HashFailure], frozenset[str]]:
    """Open each listed file (below the root, no symlink followed) and keep it as a private
    mapping whose pages outside ``shared_ranges`` are copied now (see ``Reader``), recording its
    identity; any other file gets a fresh buffer, which the hashing workers fill as in
    ``capture``. Returns the files that could not be opened and the names of those mapped."""
    failures: list[HashFailure] = []
    kept: set[str] = set()
    root_fd = open_root(listing.root, listing.is_file)
    try:
        for entry in listing.files:
            name = entry.name
            try:
                fd = os.dup(root_fd) if listing.is_file else open_beneath(root_fd, entry.source)
            except FileNotFoundError:
                failures.append(HashFailure(name, "disappeared while hashing"))
                continue
            except NotRegularFileError:
                failures.append(HashFailure(name, f"is {NOT_REGULAR}"))
                continue
            except OSError as exc:
                failures.append(HashFailure(name, f"cannot open safely ({exc.strerror or exc})"))
                continue
            try:
                st = os.fstat(fd)
                if st.st_size != entry.size:
                    failures.append(HashFailure(name, "changed size while hashing"))
                    continue
                # Private: a framework that writes into a tensor changes its own copy, never
                # the file. An empty file cannot be mapped.
                view = None
                if st.st_size and shared_ranges is not None:
                    view = mmap.mmap(fd, st.st_size, access=mmap.ACCESS_COPY)
                    if not _privatize_structure(view, shared_ranges):
                        view.close()
                        view = None
                if view is None:  # the hashing workers fill it, as with reader="capture"
                    mapped[name] = new_buffer(entry.size)
                else:
                    mapped[name] = view
                    identities[name] = FileIdentity.of(st)
                    kept.add(name)
            except OSError as exc:
                failures.append(HashFailure(name, f"read error ({exc.strerror or exc})"))
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
    return failures, frozenset(kept)


def _privatize_structure(data: mmap.mmap, shared_ranges: SharedRanges) -> bool:
    """Make every page of the private mapping ``data`` that is not wholly inside a shared range
    a private copy (one write per page), so that it no longer follows the file. Returns False,
    touching nothing, when the file is not worth mapping (no ranges, or under half shared)."""
    view = memoryview(data)
    try:
        ranges = shared_ranges(view)
    finally:
        view.release()
    size = len(data)
    if not ranges or any(not 0 <= a <= b <= size for a, b in ranges):
        return False
    shared = sum(b - a for a, b in ranges)
    if shared == 0 or 2 * shared < size:
        return False
    page = mmap.PAGESIZE
    position = 0  # pages before this offset are settled
    for start, end in [*sorted(ranges), (size, size)]:
        first_shared = -(-start // page) * page
        for offset in range(position - position % page, min(first_shared, size), page):
            data[offset] = data[offset]  # a write fault: the kernel copies the page
        position = max(position, end - end % page)
    return True


def _hash_mapped(
    mapped: Buffer, task: Task, opts: HashOptions, blake3_threads: int, progress: Progress | None
) -> bytes:
    start, end = (0, len(mapped)) if task.whole else (task.start, task.end)
    hasher = new_hasher(opts.hash_type, threads=blake3_threads if end - start > _SMALL else 1)
    _feed_view(mapped, start, end, hasher, progress)
    return hasher.digest()


def _feed_view(
    buffer: Buffer, start: int, end: int, hasher: object, progress: Progress | None
) -> None:
    """Hash ``buffer[start:end]`` in ``_STEP`` pieces, without copying; release every view (a
    mapping cannot be closed while one is left)."""
    update = hasher.update  # type: ignore[attr-defined]
    view = memoryview(buffer)
    try:
        for off in range(start, end, _STEP):
            chunk = view[off : min(off + _STEP, end)]
            update(chunk)
            chunk.release()
            if progress is not None:
                progress(min(_STEP, end - off))
    finally:
        view.release()


def _feed_mmap(fd: int, start: int, end: int, hasher: object, progress: Progress | None) -> None:
    # Map one window at a time so resident memory stays bounded by workers x window.
    position = start
    while position < end:
        aligned = position - position % mmap.ALLOCATIONGRANULARITY
        length = min(end, aligned + _WINDOW) - aligned
        with mmap.mmap(fd, length, offset=aligned, access=mmap.ACCESS_READ) as mapped:
            if hasattr(mapped, "madvise"):
                mapped.madvise(mmap.MADV_SEQUENTIAL)
            _feed_view(mapped, position - aligned, length, hasher, progress)
        position = aligned + length


def new_buffer(size: int) -> Buffer:
    """Writable memory for ``size`` bytes. Large buffers are anonymous mappings: the kernel hands
    out zeroed pages as they are first written, so nothing is cleared twice.

    No transparent-huge-page advice: on a virtual machine a fresh 2 MiB page may first have to be
    backed by the host, and capturing 1 GiB then took 0.8-1.1 s instead of 0.22 s with 4 KiB
    pages (measured; it helped only while recently freed huge pages were at hand).
    """
    if size < _SMALL:
        return bytearray(size)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def _capture(
    fd: int,
    start: int,
    end: int,
    target: memoryview,
    hasher: object,
    progress: Progress | None,
    name: str,
) -> None:
    """Read ``[start, end)`` into ``target`` exactly once, hashing what was read."""
    update = hasher.update  # type: ignore[attr-defined]
    done = 0
    while done < end - start:
        got = os.preadv(fd, [target[done : done + _CAPTURE_STEP]], start + done)
        if got == 0:
            raise HashFailure(name, "was truncated while hashing")
        update(target[done : done + got])
        done += got
        if progress is not None:
            progress(got)


def _feed_pread(
    fd: int,
    start: int,
    end: int,
    hasher: object,
    progress: Progress | None,
    name: str,
    buffer_size: int = _READ_BUFFER,
) -> None:
    buf = bytearray(min(buffer_size, max(end - start, 1)))
    view = memoryview(buf)
    update = hasher.update  # type: ignore[attr-defined]
    offset = start
    while offset < end:
        want = min(len(buf), end - offset)
        got = os.preadv(fd, [view[:want]], offset)
        if got == 0:
            raise HashFailure(name, "was truncated while hashing")
        update(view[:got])
        offset += got
        if progress is not None:
            progress(got)
