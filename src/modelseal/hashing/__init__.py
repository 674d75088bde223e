"""Hashing engine: walk a model, hash files or shards in parallel, build an OMS manifest.

Also the weights fingerprint (:mod:`modelseal.hashing.fingerprint`): a digest of the tensors
themselves, read by the non-executing readers of :mod:`modelseal.hashing.tensors`.
"""

from modelseal.hashing.algorithms import HASH_NAMES, canonical_hash_name
from modelseal.hashing.engine import HashOptions, hash_model, hash_model_lenient
from modelseal.hashing.manifest import Manifest, ManifestItem, Serialization, root_digest

__all__ = [
    "HASH_NAMES",
    "HashOptions",
    "Manifest",
    "ManifestItem",
    "Serialization",
    "canonical_hash_name",
    "hash_model",
    "hash_model_lenient",
    "root_digest",
]
