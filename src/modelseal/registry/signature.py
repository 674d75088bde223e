"""Check a pushed OMS bundle before any byte is accepted: it parses, and its DSSE signature
verifies under the pusher's public key (or, for certificate bundles, a chain to the registry's
trust anchors). When the registry has trusted keys, the key must be one of them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modelseal.errors import KeyFileError, Reason, SignatureMismatchError, UsageError
from modelseal.signing.bundle import OmsBundle, parse_bundle
from modelseal.signing.statement import SignedStatement, parse_payload

if TYPE_CHECKING:
    from modelseal.signing.keys import PublicKey


@dataclasses.dataclass(frozen=True)
class CheckedSignature:
    """A push's signature, verified: the statement, signer and key."""

    bundle: OmsBundle
    statement: SignedStatement
    signer: str
    public_key_pem: str | None


@dataclasses.dataclass(frozen=True)
class Trust:
    """Trusted signer keys (PEM files) and certificate trust anchors; both optional."""

    keys_dir: Path | None = None
    anchors: tuple[Path, ...] = ()
    pinned: tuple[bytes, ...] = ()  # keys added through the registry (database)

    def trusted_pems(self) -> list[bytes]:
        """Every PEM key the trust accepts (pinned and from the keys folder)."""
        found = list(self.pinned)
        if self.keys_dir is not None and self.keys_dir.is_dir():
            found += [p.read_bytes() for p in sorted(self.keys_dir.glob("*.pub"))]
        return found


def check_signature(
    bundle_bytes: bytes, public_key_pem: bytes | None, trust: Trust
) -> CheckedSignature:
    """Parse the bundle and check its DSSE signature (the registry's own preconditions first:
    trust anchors for certificates, a public key for keys, and the trusted-key pin)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from modelseal.signing.api import authenticate
    from modelseal.signing.keys import check_supported, key_hint, public_pem

    bundle = parse_bundle(bundle_bytes)
    statement = parse_payload(bundle.payload)
    if bundle.certificates:
        if not trust.anchors:
            raise UsageError(
                "this registry has no certificate trust anchors for a certificate-based signature",
                hint="sign with a key, or configure trust anchors on the registry",
            )
        identity = authenticate(bundle, trust_anchors=trust.anchors)
        return CheckedSignature(bundle, statement, identity, None)
    if public_key_pem is None:
        raise UsageError(
            "a key-based signature needs the signer's public key",
            hint="pass --public-key KEY.pub",
        )
    try:
        key = check_supported(load_pem_public_key(public_key_pem))
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            "the public key is not a PEM public key",
            hint="give a PEM public key (-----BEGIN PUBLIC KEY-----)",
        ) from None
    pinned = trust.trusted_pems()
    if pinned and public_pem(key) not in {public_pem(_load(p)) for p in pinned}:
        message = f"signer key {key_hint(key)[:16]} is not trusted by this registry"
        raise SignatureMismatchError(
            message,
            reasons=[Reason("key-untrusted", message)],
            hint="ask a security engineer to add the key to the registry's trusted keys",
        )
    identity = authenticate(bundle, public_key=key)
    return CheckedSignature(bundle, statement, identity, public_pem(key).decode("ascii"))


def _load(pem: bytes) -> PublicKey:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from modelseal.signing.keys import check_supported

    return check_supported(load_pem_public_key(pem))


def empty_files(statement: SignedStatement) -> Sequence[str]:
    """Empty files a shards-method signature lists in its modelseal extension."""
    own = statement.extensions.get("modelseal")
    empty = own.get("empty_files") if isinstance(own, dict) else None
    if isinstance(empty, list) and all(isinstance(p, str) for p in empty):
        return list(empty)
    return []


def now() -> dt.datetime:
    """The current time (UTC), for certificate validity checks."""
    return dt.datetime.now(dt.UTC)
