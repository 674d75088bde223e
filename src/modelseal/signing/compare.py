"""Compare the signed manifest with the model on disk and say precisely what differs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from modelseal.errors import Reason
from modelseal.hashing.engine import HashFailure
from modelseal.hashing.manifest import Manifest, ManifestItem
from modelseal.hashing.walk import Refusal


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
    expected: Manifest,
    actual: Manifest,
    refusals: Sequence[Refusal] = (),
    failures: Sequence[HashFailure] = (),
) -> list[Reason]:
    """Every difference between ``expected`` (signed) and ``actual`` (on disk), file by file."""
    reasons: list[Reason] = []
    exp, act = _by_file(expected), _by_file(actual)
    blocked = {r.name for r in refusals} | {f.name for f in failures}
    for refusal in refusals:
        reasons.append(Reason(refusal.code, f"{refusal.name}: {refusal.message}", path=refusal.name))
    for failure in failures:
        reasons.append(Reason("unreadable", f"{failure.name}: {failure.message}", path=failure.name))
    if set(exp) == {"."} and "." not in act and act:
        reasons.append(
            Reason("missing", "the signature covers a single file, but the model path is a directory")
        )
        return reasons
    if "." in act and "." not in exp and exp:
        reasons.append(
            Reason("missing", "the signature covers a directory, but the model path is a single file")
        )
        return reasons
    missing = sorted(p for p in exp if p not in act and p not in blocked)
    extra = sorted(p for p in act if p not in exp)
    renamed_from: dict[str, str] = {}
    extra_by_content = {_fingerprint(act[p]): p for p in extra}
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
    for path in sorted(p for p in exp if p in act):
        reason = _compare_file(path, exp[path], act[path], expected.serialization.method == "shards")
        if reason is not None:
            reasons.append(reason)
    return reasons


def _compare_file(
    path: str, expected: list[ManifestItem], actual: list[ManifestItem], sharded: bool
) -> Reason | None:
    if _fingerprint(expected) == _fingerprint(actual):
        return None
    if not sharded:
        return Reason(
            "modified",
            f"{path}: content changed",
            path=path,
            expected=expected[0].digest.hex(),
            actual=actual[0].digest.hex(),
        )
    old_size, new_size = _size(expected), _size(actual)
    if old_size != new_size:
        return Reason(
            "modified",
            f"{path}: size changed from {old_size} to {new_size} bytes",
            path=path,
            expected=str(old_size),
            actual=str(new_size),
        )
    for old, new in zip(expected, actual, strict=True):
        if old.digest != new.digest:
            return Reason(
                "modified",
                f"{path}: content changed in bytes {old.start}..{old.end}",
                path=old.name,
                expected=old.digest.hex(),
                actual=new.digest.hex(),
            )
    return None  # pragma: no cover - fingerprints differ only through a digest
