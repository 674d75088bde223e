"""modelseal: keep machine-learning models authentic and safe.

The public API (imported lazily so ``import modelseal`` stays cheap):

* :func:`sign` -- hash a model and write an OpenSSF Model Signing (OMS) bundle.
* :func:`verify` -- check a model against a bundle; returns a result or raises
  :class:`modelseal.errors.VerificationError` with every reason found.
* :func:`digest` -- hash a model into an OMS manifest without signing.
* :func:`generate_key` -- make a signing key pair.
* :func:`load` -- verify, scan, then load from exactly the verified bytes; :class:`VerifiedModel`
  keeps checking the files on disk for a long-running process.
* :func:`fingerprint` -- a digest of the weights themselves, the same in every format.
* :func:`encrypt`, :func:`decrypt`, :func:`decrypt_to_memory` -- encryption at rest (Tink
  streaming AEAD, envelope keys from a provider); more in :mod:`modelseal.crypto`.
* :func:`gate` -- judge a model against a policy (signature, scan, metrics, environment,
  rules); returns a :class:`GateDecision`, signed as evidence by ``modelseal gate --attest``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "sign": "modelseal.signing.api",
    "verify": "modelseal.signing.api",
    "digest": "modelseal.signing.api",
    "SignResult": "modelseal.signing.api",
    "VerificationResult": "modelseal.signing.api",
    "generate_key": "modelseal.signing.keys",
    "HashOptions": "modelseal.hashing.engine",
    "Manifest": "modelseal.hashing.manifest",
    "scan": "modelseal.scanning",
    "fingerprint": "modelseal.hashing.fingerprint",
    "load": "modelseal.loading.verified",
    "VerifiedModel": "modelseal.loading.verified",
    "encrypt": "modelseal.crypto.api",
    "decrypt": "modelseal.crypto.api",
    "decrypt_to_memory": "modelseal.crypto.api",
    "gate": "modelseal.policy.gate",
    "GateDecision": "modelseal.policy.decision",
}

__all__ = [
    "GateDecision",
    "HashOptions",
    "Manifest",
    "SignResult",
    "VerificationResult",
    "VerifiedModel",
    "decrypt",
    "decrypt_to_memory",
    "digest",
    "encrypt",
    "fingerprint",
    "gate",
    "generate_key",
    "load",
    "scan",
    "sign",
    "verify",
]

if TYPE_CHECKING:
    from modelseal.crypto.api import decrypt, decrypt_to_memory, encrypt
    from modelseal.hashing.engine import HashOptions
    from modelseal.hashing.fingerprint import fingerprint
    from modelseal.hashing.manifest import Manifest
    from modelseal.loading.verified import VerifiedModel, load
    from modelseal.policy.decision import GateDecision
    from modelseal.policy.gate import gate
    from modelseal.signing.api import SignResult, VerificationResult, digest, sign, verify
    from modelseal.signing.keys import generate_key


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelseal' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
