"""The in-toto v1 statement OMS v1.0 signs: subject (model name, root digest) and predicate.

Building is canonical (sorted keys, compact JSON). Parsing is strict: anything a v1.0 signer
could not have produced is rejected with a precise reason instead of being guessed at.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import re
from typing import Any

from modelseal.errors import MalformedSignatureError, Reason, UnsupportedSignatureError
from modelseal.hashing.algorithms import DIGEST_SIZES
from modelseal.hashing.manifest import Manifest, ManifestItem, Serialization, root_digest

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
_HEX = re.compile(r"\A[0-9a-f]*\Z")
# A shard's name: its path, then its byte range as ASCII decimal numbers.
_SHARD_NAME = re.compile(r"\A(?P<path>.*):(?P<start>[0-9]+):(?P<end>[0-9]+)\Z", re.S)


@dataclasses.dataclass(frozen=True)
class SignedStatement:
    """What a verified payload says: the manifest, the subject, and predicate extensions."""

    manifest: Manifest
    subject_name: str
    extensions: dict[str, Any]


def build_payload(manifest: Manifest, *, extensions: dict[str, Any] | None = None) -> bytes:
    """The statement JSON for ``manifest``; ``extensions`` go into the predicate beside the
    v1.0 fields (v1.0 verifiers ignore unknown predicate fields)."""
    predicate: dict[str, Any] = dict(extensions or {})
    predicate["serialization"] = manifest.serialization.to_dict()
    predicate["resources"] = manifest.resources()
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": manifest.model_name, "digest": {"sha256": manifest.root_digest.hex()}}
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _malformed(message: str) -> MalformedSignatureError:
    return MalformedSignatureError(
        f"malformed signature payload: {message}",
        reasons=[Reason("malformed", message)],
        hint="the signature file is damaged or was not written by an OMS v1.0 signer",
    )


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _malformed(f"{where} has no {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _malformed(f"{where}.{key} has the wrong type")
    return value


def parse_payload(payload: bytes) -> SignedStatement:
    """Parse and check a signed statement. Raises :class:`MalformedSignatureError` (or
    :class:`UnsupportedSignatureError`) with the precise reason."""
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("payload is not JSON") from None
    if not isinstance(statement, dict):
        raise _malformed("payload is not a JSON object")
    if statement.get("_type") != STATEMENT_TYPE:
        raise _malformed(f"statement type is {statement.get('_type')!r}, expected {STATEMENT_TYPE}")
    predicate_type = statement.get("predicateType")
    if predicate_type != PREDICATE_TYPE:
        hint = (
            "re-sign the model with an OMS v1.0 signer"
            if predicate_type == _LEGACY_PREDICATE_TYPE
            else "this is not a model signature"
        )
        raise UnsupportedSignatureError(
            f"unsupported predicate type {predicate_type!r}",
            reasons=[Reason("unsupported-algorithm", f"predicate type {predicate_type!r}")],
            hint=hint,
        )
    subjects = _get(statement, "subject", list, "statement")
    if len(subjects) != 1:
        raise _malformed(f"expected exactly one subject, found {len(subjects)}")
    subject_name = _get(subjects[0], "name", str, "subject")
    subject_digest = _get(
        _get(subjects[0], "digest", dict, "subject"), "sha256", str, "subject.digest"
    )
    predicate = _get(statement, "predicate", dict, "statement")
    serialization = _parse_serialization(_get(predicate, "serialization", dict, "predicate"))
    resources = _get(predicate, "resources", list, "predicate")
    items = [_parse_resource(r, serialization, i) for i, r in enumerate(resources)]
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        raise _malformed("a resource is listed twice")
    _check_single_file(items)
    if serialization.method == "shards":
        assert serialization.shard_size is not None
        _check_tiling(items, serialization.shard_size)
    computed = root_digest(item.digest for item in items)
    if not hmac.compare_digest(computed.hex(), subject_digest.lower()):
        raise MalformedSignatureError(
            "signed manifest is inconsistent: its resources do not hash to its root digest",
            reasons=[
                Reason(
                    "inconsistent-manifest",
                    "resources do not hash to the subject digest",
                    expected=subject_digest,
                    actual=computed.hex(),
                )
            ],
            hint="the signer is faulty; do not trust this signature",
        )
    extensions = {k: v for k, v in predicate.items() if k not in ("serialization", "resources")}
    manifest = Manifest.build(subject_name, serialization, items)
    return SignedStatement(manifest, subject_name, extensions)


def _parse_serialization(raw: dict[str, Any]) -> Serialization:
    method = _get(raw, "method", str, "serialization")
    if method not in ("files", "shards"):
        raise UnsupportedSignatureError(
            f"unsupported serialization method {method!r}",
            reasons=[Reason("unsupported-algorithm", f"serialization method {method!r}")],
            hint="modelseal verifies the OMS 'files' and 'shards' methods",
        )
    hash_type = _get(raw, "hash_type", str, "serialization")
    if hash_type not in DIGEST_SIZES:
        raise UnsupportedSignatureError(
            f"unsupported hash algorithm {hash_type!r} in signature",
            reasons=[Reason("unsupported-algorithm", f"hash algorithm {hash_type!r}")],
            hint=f"modelseal verifies {', '.join(DIGEST_SIZES)}",
        )
    allow_symlinks = _get(raw, "allow_symlinks", bool, "serialization")
    shard_size: int | None = None
    if method == "shards":
        size = _get(raw, "shard_size", (int, float), "serialization")
        # model_signing stores numbers through protobuf Struct, i.e. as doubles (1000 -> 1000.0).
        if isinstance(size, bool) or size != int(size) or int(size) <= 0:
            raise _malformed("serialization.shard_size must be a positive integer")
        shard_size = int(size)
    ignore_raw = raw.get("ignore_paths", [])
    if not isinstance(ignore_raw, list) or not all(isinstance(p, str) for p in ignore_raw):
        raise _malformed("serialization.ignore_paths must be a list of strings")
    return Serialization(
        method=method,
        hash_type=hash_type,
        shard_size=shard_size,
        allow_symlinks=allow_symlinks,
        ignore_paths=tuple(ignore_raw),
    )


def _parse_resource(raw: Any, serialization: Serialization, index: int) -> ManifestItem:
    where = f"resources[{index}]"
    name = _get(raw, "name", str, where)
    algorithm = _get(raw, "algorithm", str, where)
    digest_hex = _get(raw, "digest", str, where).lower()
    if algorithm != serialization.resource_algorithm:
        raise _malformed(
            f"{where} uses algorithm {algorithm!r}, expected {serialization.resource_algorithm!r}"
        )
    size = DIGEST_SIZES[serialization.hash_type]
    if len(digest_hex) != 2 * size or not _HEX.match(digest_hex):
        raise _malformed(f"{where} digest is not {size} bytes of hex")
    digest = bytes.fromhex(digest_hex)
    if serialization.method == "files":
        return ManifestItem(_check_path(name, where), digest)
    match = _SHARD_NAME.match(name)
    if match is None:
        raise _malformed(f"{where} name {name!r} is not 'path:start:end'")
    path, start, end = match["path"], int(match["start"]), int(match["end"])
    if name != f"{path}:{start}:{end}":  # e.g. a leading zero: not the name OMS gives the range
        raise _inconsistent(
            f"{where} name {name!r} does not name its byte range {start}..{end}", name
        )
    assert serialization.shard_size is not None
    if (
        not start < end
        or end - start > serialization.shard_size
        or start % serialization.shard_size
    ):
        raise _malformed(
            f"{where} shard {name!r} does not fit shard size {serialization.shard_size}"
        )
    return ManifestItem(_check_path(path, where), digest, start, end)


def _check_path(path: str, where: str) -> str:
    """A resource path must be relative, normalized and free of ``..``; ``.`` is a single file."""
    if path == ".":
        return path
    parts = path.split("/")
    if (
        not path
        or "\x00" in path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise _malformed(f"{where} path {path!r} is not a normalized relative path")
    return path


def _inconsistent(message: str, path: str | None = None) -> MalformedSignatureError:
    return MalformedSignatureError(
        f"signed manifest is inconsistent: {message}",
        reasons=[Reason("inconsistent-manifest", message, path=path)],
        hint="the signer is faulty; do not trust this signature",
    )


def _check_tiling(items: list[ManifestItem], shard_size: int) -> None:
    """Each file's shards must cover it from byte 0 with no gap and no overlap, every one but
    the last exactly ``shard_size`` long: the only layout a signer hashing the file makes."""
    by_path: dict[str, list[ManifestItem]] = {}
    for item in items:
        by_path.setdefault(item.path, []).append(item)
    for path, shards in by_path.items():
        shards.sort(key=lambda i: (i.start or 0, i.end or 0))
        position = 0
        for index, shard in enumerate(shards):
            start, end = shard.start or 0, shard.end or 0
            if start != position:
                found = "overlaps the one before" if start < position else f"starts at {start}"
                raise _inconsistent(
                    f"the shards of {path!r} do not tile the file: the shard after byte "
                    f"{position} {found} ({shard.name!r})",
                    shard.name,
                )
            if end - start != shard_size and index != len(shards) - 1:
                raise _inconsistent(
                    f"the shards of {path!r} do not tile the file: {shard.name!r} is shorter "
                    f"than the shard size {shard_size} but is not the file's last shard",
                    shard.name,
                )
            position = end


def _check_single_file(items: list[ManifestItem]) -> None:
    if any(item.path == "." for item in items) and any(item.path != "." for item in items):
        raise _malformed("a single-file resource '.' is mixed with directory resources")
