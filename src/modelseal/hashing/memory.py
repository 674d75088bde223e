"""Hash a model that exists only in memory (e.g. decrypted from an encrypted artifact).

The rules are the on-disk ones: the same names (POSIX, relative, no ``.``/``..``, UTF-8), the same
ignore rules, the same shard layout and manifest; so a model signed on disk verifies from memory
and the other way round. ``"."`` names a single-file model, as in :mod:`modelseal.hashing.walk`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from modelseal.errors import ModelPathError
from modelseal.hashing.algorithms import new_hasher
from modelseal.hashing.engine import (
    Buffer,
    HashOptions,
    HashOutcome,
    Task,
    ignore_rules,
    plan,
    serialization_for,
)
from modelseal.hashing.manifest import Manifest, ManifestItem
from modelseal.hashing.parallel import ordered_map
from modelseal.hashing.walk import FileEntry, IgnoreRules, Listing, normalize_relpath

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
    rules = ignore_rules(opts, extra_ignore_paths)
    kept: dict[str, Buffer | bytes] = {}
    matched: set[str] = set()
    for name in sorted(files):
        if single or not _ignored(name, rules, matched):
            kept[name] = files[name]
    serialization = serialization_for(opts, rules, matched, is_file=single)
    entries = tuple(FileEntry(name, name, len(data)) for name, data in kept.items())
    listing = Listing(Path(model_name), single, entries, ())
    tasks = plan(listing, serialization.method, serialization.shard_size)

    def run(task: Task) -> ManifestItem:
        view = memoryview(kept[task.entry.name])
        hasher = new_hasher(opts.hash_type)
        try:
            for offset in range(task.start, task.end, _STEP):
                hasher.update(view[offset : min(offset + _STEP, task.end)])
        finally:
            view.release()
        shard = (None, None) if task.whole else (task.start, task.end)
        return ManifestItem(task.entry.name, hasher.digest(), *shard)

    workers = max(1, min(opts.workers or os.cpu_count() or 1, len(tasks) or 1))
    items = ordered_map(run, tasks, workers)
    manifest = Manifest.build(model_name, serialization, items)
    captured: dict[str, Buffer] = dict(kept)  # type: ignore[arg-type]  # read-only use
    return HashOutcome(manifest, entries, (), (), captured, {})


def model_name_of(path: Path) -> str:
    """The informative OMS model name of an encrypted artifact (without a ``.enc`` suffix)."""
    name = path.name
    return name[:-4] if name.endswith(".enc") and len(name) > 4 else name
