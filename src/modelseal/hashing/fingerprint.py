"""A digest of a model's weights themselves, independent of the container they are saved in.

Canonical form (``modelseal/weights/v1``), documented in docs/loading.md:

* each tensor's bytes in C order, little-endian, cut into 16 MiB chunks; its *data digest* is
  SHA-256 over the SHA-256 of every chunk in order (a tree, so large tensors hash on every core);
* its *tensor digest* is SHA-256 over ``b"modelseal/tensor/v1\\0"``, the UTF-8 name (length as
  u32 LE, empty with ``ignore_names``), the dtype name (length as u8), the rank (u32 LE), each
  dimension (u64 LE), the byte length (u64 LE) and the data digest;
* the fingerprint is SHA-256 over ``b"modelseal/weights/v1\\0"``, the tensor count (u64 LE) and
  the tensor digests ordered by name (by digest with ``ignore_names``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelseal.errors import InputError, TensorFormatError, UnsupportedAlgorithmError
from modelseal.hashing.tensors import Tensor, detect, read_tensors, weights_kind
from modelseal.hashing.walk import DEFAULT_IGNORES, IgnoreRules, list_model

CHUNK = 16 << 20
SCHEME = "modelseal/weights/v1"


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """The weights digest and what it covers."""

    digest: str  # "sha256:<hex>"
    scheme: str
    tensors: int
    parameters: int
    ignore_names: bool

    def to_dict(self) -> dict[str, object]:
        """This fingerprint as a JSON-ready dict (what a signature's extension records)."""
        return dataclasses.asdict(self)


def _chunks(tensor: Tensor) -> list[memoryview]:
    view = memoryview(tensor.data).cast("B")
    return [view[i : i + CHUNK] for i in range(0, len(view), CHUNK)] or [view[:0]]


def fingerprint_tensors(
    tensors: Sequence[Tensor], *, ignore_names: bool = False, workers: int | None = None
) -> Fingerprint:
    """Fingerprint already-read tensors (see the module docstring for the canonical form)."""
    jobs = [(i, chunk) for i, t in enumerate(tensors) for chunk in _chunks(t)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        digests = list(pool.map(lambda job: hashlib.sha256(job[1]).digest(), jobs))
    per_tensor: list[hashlib._Hash] = [hashlib.sha256() for _ in tensors]
    for (index, _), digest in zip(jobs, digests, strict=True):
        per_tensor[index].update(digest)
    records: list[tuple[str, bytes]] = []
    for tensor, data_digest in zip(tensors, per_tensor, strict=True):
        name = b"" if ignore_names else tensor.name.encode("utf-8")
        dtype = tensor.dtype.encode("ascii")
        header = b"modelseal/tensor/v1\0" + struct.pack("<I", len(name)) + name
        header += struct.pack("<B", len(dtype)) + dtype + struct.pack("<I", len(tensor.shape))
        header += b"".join(struct.pack("<Q", d) for d in tensor.shape)
        header += struct.pack("<Q", memoryview(tensor.data).nbytes) + data_digest.digest()
        records.append((tensor.name, hashlib.sha256(header).digest()))
    ordered = sorted(r[1] for r in records) if ignore_names else [d for _, d in sorted(records)]
    root = hashlib.sha256(SCHEME.encode() + b"\0" + struct.pack("<Q", len(ordered)))
    for digest in ordered:
        root.update(digest)
    return Fingerprint(
        digest=f"sha256:{root.hexdigest()}",
        scheme=SCHEME,
        tensors=len(tensors),
        parameters=sum(t.numel for t in tensors),
        ignore_names=ignore_names,
    )


def weight_files(
    path: str | os.PathLike[str], *, only: Collection[str] | None = None
) -> list[Path]:
    """The weights files of a model: the file itself, or every file of a directory whose content
    is a weights format (configs, tokenizers and the like are skipped), limited to the relative
    paths in ``only`` when given (e.g. the files a signature covers). Links are not followed."""
    root = Path(path)
    if root.is_file():
        return [root]
    listing, _ = list_model(root, allow_symlinks=False, ignore=IgnoreRules(DEFAULT_IGNORES))
    found: list[Path] = []
    for entry in sorted(listing.files, key=lambda e: e.name):
        if only is not None and entry.name not in only:
            continue
        candidate = root / entry.name
        if weights_kind(candidate) is not None:
            found.append(candidate)
    if not found:
        raise InputError(
            f"no weights file found in {str(root)!r}",
            hint="point at a safetensors, .npy/.npz, PyTorch or ONNX file",
        )
    return found


def _unique(tensors: Sequence[Tensor], where: str) -> None:
    seen: set[str] = set()
    for tensor in tensors:
        if tensor.name in seen:
            raise InputError(
                f"tensor {tensor.name!r} occurs twice in {where!r}",
                hint="fingerprint the files one by one, or count tensors by content alone",
                topic="duplicate-tensor-names",
            )
        seen.add(tensor.name)


def fingerprint_buffers(buffers: Mapping[str, Any], *, ignore_names: bool = False) -> Fingerprint:
    """Fingerprint the weights among in-memory files (name -> bytes); other files are skipped."""
    tensors: list[Tensor] = []
    for name in sorted(buffers):
        view = memoryview(buffers[name])
        try:
            detect(name, view)
        except (TensorFormatError, UnsupportedAlgorithmError):
            continue
        tensors.extend(read_tensors(name, data=view))
    if not ignore_names:
        _unique(tensors, "the model")
    return fingerprint_tensors(tensors, ignore_names=ignore_names)


def fingerprint(
    path: str | os.PathLike[str],
    *,
    ignore_names: bool = False,
    only: Collection[str] | None = None,
    workers: int | None = None,
) -> Fingerprint:
    """A digest of the weights at ``path``, the same whatever format holds them.

    ``path`` is one file (safetensors, .npy/.npz, PyTorch zip checkpoint, ONNX) or a directory,
    whose weights files all count (e.g. sharded safetensors; ``only`` limits them to these
    relative paths). With ``ignore_names`` tensors count by content alone.

    Nothing in the files is executed: PyTorch pickles go through an unpickler whose only
    resolvable names are inert stand-ins. Raises :class:`modelseal.errors.InputError` for
    unreadable or malformed files and for tensor names that occur twice.
    """
    tensors = [t for f in weight_files(path, only=only) for t in read_tensors(f)]
    if not ignore_names:
        _unique(tensors, str(path))
    return fingerprint_tensors(tensors, ignore_names=ignore_names, workers=workers)
