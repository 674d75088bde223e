"""Compare the signed manifest with the model on disk and say precisely what differs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from modelseal.errors import Reason
from modelseal.hashing.engine import HashOutcome, shown_name
from modelseal.hashing.manifest import Manifest, ManifestItem


def _by_file(manifest: Manifest) -> dict[str, list[ManifestItem]]:
    files: dict[str, list[ManifestItem]] = defaultdict(list)
    for item in manifest.items:
        files[item.path].append(item)
    return files


def _fingerprint(items: Sequence[ManifestItem]) -> tuple[tuple[int | None, int | None, bytes], ...]:
    return tuple((i.start, i.end, i.digest) for i in items)


def _size(items: Sequence[ManifestItem]) -> int:
    return max((i.end or 0) for i in items) if items else 0


def diff_manifests(
    expected: Manifest, outcome: HashOutcome, *, signed_empty_files: Sequence[str] | None = None
) -> list[Reason]:
    """Every difference between ``expected`` (signed) and ``outcome`` (on disk), file by file.

    ``signed_empty_files`` lists the empty files a ``shards`` signature covered (modelseal
    records them; OMS itself has no entry for an empty file in that method). A reason's
    ``path`` is the resource path as signed (``"."`` for a single file); its message names the
    file as it is on disk.
    """
    reasons: list[Reason] = []
    actual = outcome.manifest
    exp, act = _by_file(expected), _by_file(actual)
    present = {f.name: f.size for f in outcome.files}
    blocked = {r.name for r in outcome.refusals} | {f.name for f in outcome.failures}
    for refusal in outcome.refusals:
        shown = shown_name(refusal.name, outcome)
        reasons.append(Reason(refusal.code, f"{shown}: {refusal.message}", path=refusal.name))
    for failure in outcome.failures:
        shown = shown_name(failure.name, outcome)
        reasons.append(Reason("unreadable", f"{shown}: {failure.message}", path=failure.name))
    if set(exp) == {"."} and "." not in present and present:
        reasons.append(
            Reason(
                "missing", "the signature covers a single file, but the model path is a directory"
            )
        )
        return reasons
    if "." in present and "." not in exp and exp:
        reasons.append(
            Reason(
                "missing", "the signature covers a directory, but the model path is a single file"
            )
        )
        return reasons
    empty = set(signed_empty_files or ())
    for path in sorted(empty):  # signed as empty: must still exist and be empty
        if path in blocked:
            continue
        if path not in present:
            exp.setdefault(path, [])
        elif present[path] != 0:
            reasons.append(_size_changed(path, shown_name(path, outcome), 0, present[path]))
    missing = sorted(p for p in exp if p not in present and p not in blocked)
    extra = sorted(p for p in act if p not in exp and p not in empty)
    if signed_empty_files is not None:
        extra = sorted(
            {*extra, *(p for p, size in present.items() if size == 0 and p not in exp)} - empty
        )
    renamed_from: dict[str, str] = {}
    extra_by_content = {_fingerprint(act.get(p, [])): p for p in extra}
    for path in missing:
        target = extra_by_content.pop(_fingerprint(exp[path]), None)
        if target is not None:
            renamed_from[target] = path
    for path in missing:
        if path in renamed_from.values():
            continue
        reasons.append(Reason("missing", f"{path}: signed file is missing", path=path))
    for path in extra:
        if path in renamed_from:
            old = renamed_from[path]
            reasons.append(
                Reason("renamed", f"{old}: renamed to {path}", path=old, expected=old, actual=path)
            )
            continue
        reasons.append(Reason("extra", f"{path}: file is not covered by the signature", path=path))
    sharded = expected.serialization.method == "shards"
    for path in sorted(p for p in exp if p in present and p not in blocked and p not in empty):
        shown = shown_name(path, outcome)
        reason = _compare_file(path, shown, exp[path], act.get(path, []), sharded)
        if reason is not None:
            reasons.append(reason)
    return reasons


def _size_changed(path: str, shown: str, old: int, new: int) -> Reason:
    return Reason(
        "modified",
        f"{shown}: size changed from {old} to {new} bytes",
        path=path,
        expected=str(old),
        actual=str(new),
    )


def _compare_file(
    path: str, shown: str, expected: list[ManifestItem], actual: list[ManifestItem], sharded: bool
) -> Reason | None:
    if _fingerprint(expected) == _fingerprint(actual):
        return None
    if not sharded:
        return Reason(
            "modified",
            f"{shown}: content changed",
            path=path,
            expected=expected[0].digest.hex(),
            actual=actual[0].digest.hex(),
        )
    old_size, new_size = _size(expected), _size(actual)
    if old_size != new_size:
        return _size_changed(path, shown, old_size, new_size)
    for old, new in zip(expected, actual, strict=True):
        if old.digest != new.digest:
            return Reason(
                "modified",
                f"{shown}: content changed in bytes {old.start}..{old.end}",
                path=old.name,
                expected=old.digest.hex(),
                actual=new.digest.hex(),
            )
    return None  # pragma: no cover - fingerprints differ only through a digest
