"""Hash a model that exists only in memory (e.g. decrypted from an encrypted artifact).

The rules are the on-disk ones: the same names (POSIX, relative, no ``.``/``..``, UTF-8), the same
ignore rules, the same shard layout and manifest; so a model signed on disk verifies from memory
and the other way round. ``"."`` names a single-file model, as in :mod:`modelseal.hashing.walk`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelseal.errors import ModelPathError
from modelseal.hashing.algorithms import new_hasher
from modelseal.hashing.engine import Buffer, HashOptions, HashOutcome
from modelseal.hashing.manifest import Manifest, ManifestItem, Serialization
from modelseal.hashing.walk import DEFAULT_IGNORES, FileEntry, IgnoreRules, normalize_relpath

_STEP = 1 << 23  # bytes per hasher update (keeps BLAKE3's threads busy on large buffers)


def _check_name(name: str) -> None:
    if name == ".":
        return
    parts = name.split("/")
    if normalize_relpath(name) != name or any(p in ("", ".", "..") for p in parts):
        raise ModelPathError(
            f"in-memory file name {name!r} is not a plain relative POSIX path",
            hint="do not use this artifact: its file names were tampered with",
        )


def _ignored(name: str, rules: IgnoreRules, matched: set[str]) -> bool:
    """Whether the walk on disk would skip ``name``: it tests each directory on the way down,
    then the file; the first ignored component hides everything beneath it."""
    parts = name.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if rules.literal_match(prefix):
            return True
        if rules.pattern_match(prefix):
            matched.add(prefix)
            return True
    return False


def hash_buffers(
    files: Mapping[str, Buffer | bytes],
    options: HashOptions | None = None,
    *,
    model_name: str,
    extra_ignore_paths: Iterable[str] = (),
) -> HashOutcome:
    """Hash ``files`` (relative name -> bytes) into a manifest, as :func:`hash_model_lenient`
    would hash the same files on disk. The outcome's ``captured`` holds the buffers hashed
    (ignored files are left out); ``identities`` is empty since nothing is on disk."""
    opts = (options or HashOptions()).normalized()
    for name in files:
        _check_name(name)
    single = set(files) == {"."}
    if "." in files and not single:
        raise ModelPathError(
            "an in-memory model is either one file ('.') or named files, not both",
            hint="do not use this artifact",
        )
    literal: list[str] = []
    patterns: list[str] = []
    for raw in opts.ignore:
        norm = normalize_relpath(raw)
        if norm:
            (patterns if any(c in norm for c in "*?[") else literal).append(norm)
    if opts.ignore_git_paths:
        literal.extend(DEFAULT_IGNORES)
    literal.extend(normalize_relpath(p) for p in extra_ignore_paths)
    rules = IgnoreRules(literal, patterns)
    kept: dict[str, Buffer | bytes] = {}
    matched: set[str] = set()
    for name in sorted(files):
        if single or not _ignored(name, rules, matched):
            kept[name] = files[name]
    recorded = sorted({p for p in (*rules.paths, *matched) if p})
    serialization = Serialization(
        method="shards" if opts.shard_size else "files",
        hash_type=opts.hash_type,
        shard_size=opts.shard_size,
        allow_symlinks=opts.allow_symlinks,
        ignore_paths=() if single else tuple(recorded),
    )
    regions: list[tuple[str, int, int, bool]] = []
    for name, data in kept.items():
        size = len(data)
        if opts.shard_size is None:
            regions.append((name, 0, size, True))
            continue
        regions.extend(
            (name, start, min(start + opts.shard_size, size), False)
            for start in range(0, size, opts.shard_size)
        )

    def run(region: tuple[str, int, int, bool]) -> ManifestItem:
        name, start, end, whole = region
        view = memoryview(kept[name])
        hasher = new_hasher(opts.hash_type)
        try:
            for offset in range(start, end, _STEP):
                hasher.update(view[offset : min(offset + _STEP, end)])
        finally:
            view.release()
        shard = (None, None) if whole else (start, end)
        return ManifestItem(name, hasher.digest(), *shard)

    workers = max(1, min(opts.workers or os.cpu_count() or 1, len(regions) or 1))
    if workers == 1:
        items = [run(r) for r in regions]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelseal-hash") as ex:
            items = list(ex.map(run, regions))
    manifest = Manifest.build(model_name, serialization, items)
    entries = tuple(FileEntry(name, name, len(data)) for name, data in kept.items())
    captured: dict[str, Buffer] = dict(kept)  # type: ignore[arg-type]  # read-only use
    return HashOutcome(manifest, entries, (), (), captured, {})


def model_name_of(path: Path) -> str:
    """The informative OMS model name of an encrypted artifact (without a ``.enc`` suffix)."""
    name = path.name
    return name[:-4] if name.endswith(".enc") and len(name) > 4 else name
