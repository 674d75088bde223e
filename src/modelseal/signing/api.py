"""The public seal API: :func:`digest`, :func:`sign`, :func:`verify`.

Signatures are OpenSSF Model Signing v1.0 bundles: a sigstore bundle v0.3 whose DSSE envelope
carries an in-toto statement listing every file (or shard) digest of the model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from modelseal.errors import (
    IntegrityError,
    KeyFileError,
    ModelPathError,
    Reason,
    SignatureMismatchError,
    UsageError,
)
from modelseal.hashing.engine import (
    Buffer,
    HashOptions,
    HashOutcome,
    Progress,
    Reader,
    SharedRanges,
    hash_for_signing,
    hash_model,
    hash_model_lenient,
    raise_for_unhashable,
)
from modelseal.hashing.manifest import Manifest
from modelseal.hashing.walk import relative_inside
from modelseal.signing.bundle import OmsBundle, read_bundle
from modelseal.signing.dsse import IN_TOTO_PAYLOAD_TYPE, pae
from modelseal.signing.keys import (
    PrivateKey,
    PublicKey,
    describe,
    key_hint,
    load_private_key,
    load_public_key,
    sign_bytes,
    verify_bytes,
)
from modelseal.signing.statement import build_payload, parse_payload

if TYPE_CHECKING:
    from modelseal.signing.sigstore_keyless import SigstoreTrust

PathLike = str | os.PathLike[str]
# The predicate field where modelseal keeps what OMS v1.0 has no place for (ignored by others).
EXTENSION_KEY = "modelseal"


@runtime_checkable
class Signer(Protocol):
    """Anything that can sign bytes with a key modelseal verifies (a local key, an HSM key)."""

    def public_key(self) -> PublicKey:
        """The public key a verifier checks this signer's signatures with."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (the DSSE pre-authentication encoding) and return the raw signature."""
        ...


@dataclasses.dataclass(frozen=True)
class LocalKeySigner:
    """A :class:`Signer` over a private key held in memory."""

    key: PrivateKey

    def public_key(self) -> PublicKey:
        """The public half of :attr:`key`."""
        public: PublicKey = self.key.public_key()
        return public

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with :attr:`key` in the scheme of its type (see :func:`sign_bytes`)."""
        return sign_bytes(self.key, data)


@dataclasses.dataclass(frozen=True)
class SignResult:
    """What :func:`sign` produced."""

    bundle: OmsBundle
    manifest: Manifest
    signature_path: Path | None
    signer: str

    @property
    def root_digest(self) -> str:
        """The manifest's root digest, hex."""
        return self.manifest.root_digest.hex()

    def to_dict(self) -> dict[str, Any]:
        """What was signed, as a JSON-ready dict (signature path, signer, root digest, counts)."""
        return {
            "signed": True,
            "signature": str(self.signature_path) if self.signature_path else None,
            "signer": self.signer,
            "model_name": self.manifest.model_name,
            "root_digest": {"sha256": self.root_digest},
            "serialization": self.manifest.serialization.to_dict(),
            "resources": len(self.manifest.items),
        }


@dataclasses.dataclass(frozen=True)
class VerificationResult:
    """A successful verification: who signed, and exactly what was verified."""

    model_path: Path
    signer: str
    manifest: Manifest
    extensions: dict[str, Any]

    @property
    def root_digest(self) -> str:
        """The verified manifest's root digest, hex."""
        return self.manifest.root_digest.hex()

    def to_dict(self) -> dict[str, Any]:
        """What was verified, as a JSON-ready dict (signer, root digest, fingerprint, counts)."""
        return {
            "verified": True,
            "model_path": str(self.model_path),
            "signer": self.signer,
            "model_name": self.manifest.model_name,
            "root_digest": {"sha256": self.root_digest},
            "serialization": self.manifest.serialization.to_dict(),
            "resources": len(self.manifest.items),
            "fingerprint": self.fingerprint,
        }

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The weights fingerprint the signer recorded (checked by :func:`verify`), if any."""
        own = self.extensions.get(EXTENSION_KEY)
        claim = own.get("fingerprint") if isinstance(own, dict) else None
        return claim if isinstance(claim, dict) else None


def digest(
    model_path: PathLike,
    *,
    hash_type: str = "sha256",
    shard_size: int | None = None,
    ignore: Iterable[str] = (),
    ignore_git_paths: bool = True,
    allow_symlinks: bool = False,
    workers: int | None = None,
    reader: Reader = "read",
    progress: Progress | None = None,
) -> Manifest:
    """Hash a model (file or directory) into an OMS manifest, without signing it.

    The options are those of :class:`HashOptions`. A model that cannot be hashed safely (a
    refused symlink, a file that vanished or changed while read) is a
    :class:`modelseal.errors.ModelPathError`.
    """
    options = HashOptions(
        hash_type=hash_type,
        shard_size=shard_size,
        allow_symlinks=allow_symlinks,
        ignore=tuple(ignore),
        ignore_git_paths=ignore_git_paths,
        workers=workers,
        reader=reader,
    )
    return hash_model(model_path, options, progress=progress)


def _as_signer(
    private_key: PathLike | PrivateKey | Signer, passphrase: str | bytes | None
) -> Signer:
    if isinstance(private_key, str | os.PathLike):
        return LocalKeySigner(load_private_key(private_key, passphrase))
    if isinstance(private_key, PrivateKey):
        return LocalKeySigner(private_key)
    if isinstance(private_key, Signer):
        return private_key
    raise KeyFileError(
        f"cannot sign with a {type(private_key).__name__}",
        hint="pass a PEM key path, a cryptography private key, or a Signer",
    )


def sign(
    model_path: PathLike,
    *,
    private_key: PathLike | PrivateKey | Signer,
    signature: PathLike | None = None,
    passphrase: str | bytes | None = None,
    hash_type: str = "sha256",
    shard_size: int | None = None,
    ignore: Iterable[str] = (),
    ignore_git_paths: bool = True,
    allow_symlinks: bool = False,
    certificate: PathLike | None = None,
    certificate_chain: PathLike | Sequence[PathLike] = (),
    extensions: dict[str, Any] | None = None,
    fingerprint: bool = False,
    workers: int | None = None,
    reader: Reader = "read",
    progress: Progress | None = None,
) -> SignResult:
    """Hash ``model_path`` and sign its manifest; write the bundle to ``signature`` if given.

    ``private_key`` is a PEM path (``passphrase`` for encrypted keys), a key object, or a
    :class:`Signer`. With ``certificate`` (and ``certificate_chain``) the bundle carries the
    X.509 chain instead of a key hint. The signature file, if inside the model, is not hashed.
    With ``fingerprint`` the weights fingerprint is recorded in the signed predicate and checked
    by :func:`verify` (other OMS verifiers ignore it). Raises a
    :class:`modelseal.errors.ModelsealError` subclass (an unreadable key, a model that cannot be
    hashed safely or has nothing to sign); no signature file is written then. An existing
    ``signature`` file is replaced atomically.
    """
    signer = _as_signer(private_key, passphrase)
    options = HashOptions(
        hash_type=hash_type,
        shard_size=shard_size,
        allow_symlinks=allow_symlinks,
        ignore=tuple(ignore),
        ignore_git_paths=ignore_git_paths,
        workers=workers,
        reader=reader,
    )
    _identity(signer, certificate, certificate_chain)  # a bad certificate fails before hashing
    outcome = hash_for_signing(model_path, options, signature=signature, progress=progress)
    return sign_outcome(
        model_path,
        outcome,
        private_key=signer,
        signature=signature,
        certificate=certificate,
        certificate_chain=certificate_chain,
        extensions=extensions,
        fingerprint=fingerprint,
    )


def _identity(
    signer: Signer, certificate: PathLike | None, certificate_chain: PathLike | Sequence[PathLike]
) -> tuple[str, tuple[bytes, ...]]:
    public = signer.public_key()
    chain = _paths(certificate_chain)
    if chain and certificate is None:
        raise UsageError(
            "a certificate chain was given without a signing certificate",
            hint="give the signing (leaf) certificate as well",
            topic="certificate-chain-without-leaf",
        )
    if certificate is not None:
        certificates, identity = _signing_chain(public, certificate, chain)
        return identity, certificates
    return f"{describe(public)} key {key_hint(public)[:16]}", ()


def sign_outcome(
    model_path: PathLike,
    outcome: HashOutcome,
    *,
    private_key: PathLike | PrivateKey | Signer,
    signature: PathLike | None = None,
    passphrase: str | bytes | None = None,
    certificate: PathLike | None = None,
    certificate_chain: PathLike | Sequence[PathLike] = (),
    extensions: dict[str, Any] | None = None,
    fingerprint: bool = False,
) -> SignResult:
    """Sign what :func:`hash_for_signing` found for ``model_path`` (see :func:`sign`)."""
    signer = _as_signer(private_key, passphrase)
    identity, certificates = _identity(signer, certificate, certificate_chain)
    public = signer.public_key()
    raise_for_unhashable(outcome)
    manifest, empty_files = outcome.manifest, outcome.empty_files
    if not manifest.items:
        raise ModelPathError(
            f"nothing to sign in {str(model_path)!r}: no files (or all of them ignored)",
            hint="check the model path and the ignore patterns",
            topic="nothing-to-sign",
        )
    extensions = dict(extensions or {})
    own_ext = dict(extensions.get(EXTENSION_KEY, {}))
    if manifest.serialization.method == "shards":
        # OMS has no entry for an empty file in the shards method; record them ourselves.
        own_ext["empty_files"] = list(empty_files)
    if fingerprint:
        from modelseal.hashing.fingerprint import fingerprint as weights_fingerprint

        covered = {item.path for item in manifest.items}
        own_ext["fingerprint"] = weights_fingerprint(model_path, only=covered).to_dict()
    if own_ext:
        extensions[EXTENSION_KEY] = own_ext
    payload = build_payload(manifest, extensions=extensions)
    raw_signature = signer.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload))
    bundle = OmsBundle(
        payload=payload,
        payload_type=IN_TOTO_PAYLOAD_TYPE,
        signatures=(raw_signature,),
        key_hint=None if certificates else key_hint(public),
        certificates=certificates,
    )
    written: Path | None = None
    if signature is not None:
        from modelseal.fsutil import atomic_write

        atomic_write(signature, bundle.to_json().encode("utf-8"))
        written = Path(signature)
    return SignResult(bundle=bundle, manifest=manifest, signature_path=written, signer=identity)


def _signing_chain(
    public: PublicKey, certificate: PathLike, chain: Sequence[PathLike]
) -> tuple[tuple[bytes, ...], str]:
    from cryptography.hazmat.primitives.serialization import Encoding

    from modelseal.signing.keys import public_pem
    from modelseal.signing.trust import load_certificates

    leaf_certs = load_certificates([certificate], "certificate")
    if len(leaf_certs) != 1:
        raise KeyFileError(
            f"certificate file {str(certificate)!r} holds {len(leaf_certs)} certificates",
            hint="give the signing (leaf) certificate alone; the rest go in the certificate chain",
            topic="leaf-certificate-alone",
        )
    leaf = leaf_certs[0]
    if public_pem(leaf.public_key()) != public_pem(public):  # type: ignore[arg-type]
        raise KeyFileError(
            f"certificate {str(certificate)!r} does not belong to the private key",
            hint="give the certificate issued for this key",
        )
    now = dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise KeyFileError(
            f"certificate {str(certificate)!r} is not valid now "
            f"({leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})",
            hint="renew the signing certificate",
        )
    rest = load_certificates(chain, "certificate chain") if chain else []
    ders = tuple(c.public_bytes(Encoding.DER) for c in [leaf, *rest])
    return ders, f"certificate {leaf.subject.rfc4514_string()}"


def verify(
    model_path: PathLike,
    *,
    signature: PathLike | OmsBundle,
    public_key: PathLike | PublicKey | None = None,
    trust_anchors: PathLike | Sequence[PathLike] = (),
    sigstore: SigstoreTrust | None = None,
    at: dt.datetime | None = None,
    workers: int | None = None,
    reader: Reader = "read",
    progress: Progress | None = None,
) -> VerificationResult:
    """Verify ``model_path`` against an OMS bundle, failing closed.

    Key-based bundles need ``public_key``; certificate-based bundles need ``trust_anchors``
    (the chain is validated at ``at``, default now); Sigstore keyless bundles need
    ``sigstore`` (a :class:`~modelseal.signing.sigstore_keyless.SigstoreTrust`: a trusted root
    file and the identities accepted; verified offline, the certificate at the time the
    transparency log recorded the signature). Returns a :class:`VerificationResult`; raises a
    :class:`modelseal.errors.VerificationError` subclass carrying every reason found.
    """
    result, _ = verify_outcome(
        model_path,
        signature=signature,
        public_key=public_key,
        trust_anchors=trust_anchors,
        sigstore=sigstore,
        at=at,
        workers=workers,
        reader=reader,
        progress=progress,
    )
    return result


def verify_outcome(
    model_path: PathLike,
    *,
    signature: PathLike | OmsBundle,
    public_key: PathLike | PublicKey | None = None,
    trust_anchors: PathLike | Sequence[PathLike] = (),
    sigstore: SigstoreTrust | None = None,
    at: dt.datetime | None = None,
    workers: int | None = None,
    reader: Reader = "read",
    progress: Progress | None = None,
    allow_unsigned_files: bool = False,
    contents: Mapping[str, Buffer | bytes] | None = None,
    shared_ranges: SharedRanges | None = None,
) -> tuple[VerificationResult, HashOutcome]:
    """:func:`verify`, also returning what hashing found (with ``reader="capture"``: the
    verified bytes of every file, for verified loading). With ``allow_unsigned_files`` files the
    signature does not cover are tolerated (and left out of the outcome's captured bytes).

    With ``contents`` (relative name -> bytes; ``"."`` for a single file) the model is hashed
    from memory and ``model_path`` only names it: nothing is read from disk but the bundle.
    ``shared_ranges`` goes with ``reader="map"`` (see :data:`modelseal.hashing.engine.Reader`).
    """
    bundle = signature if isinstance(signature, OmsBundle) else read_bundle(signature)
    signer = authenticate(
        bundle, public_key=public_key, trust_anchors=trust_anchors, sigstore=sigstore, at=at
    )
    statement = parse_payload(bundle.payload)
    expected = statement.manifest
    serialization = expected.serialization
    options = HashOptions(
        hash_type=serialization.hash_type,
        shard_size=serialization.shard_size,
        allow_symlinks=serialization.allow_symlinks,
        ignore_git_paths=False,
        workers=workers,
        reader=reader,
        shared_ranges=shared_ranges,
    )
    ignores = list(serialization.ignore_paths)
    if contents is not None:
        from modelseal.hashing.memory import hash_buffers, model_name_of

        outcome = hash_buffers(
            contents,
            options,
            model_name=model_name_of(Path(model_path)),
            extra_ignore_paths=ignores,
        )
    else:
        own = None if isinstance(signature, OmsBundle) else relative_inside(signature, model_path)
        if own:
            ignores.append(own)
        outcome = hash_model_lenient(
            model_path, options, extra_ignore_paths=ignores, progress=progress
        )
    from modelseal.signing.compare import diff_manifests

    reasons = diff_manifests(
        expected, outcome, signed_empty_files=_signed_empty_files(statement.extensions)
    )
    covered = {item.path for item in expected.items} | set(
        _signed_empty_files(statement.extensions) or ()
    )
    if allow_unsigned_files:
        reasons = [r for r in reasons if r.code != "extra"]
        for name in [n for n in outcome.captured if n not in covered]:
            del outcome.captured[name]
    if not reasons:
        reasons = _check_fingerprint(model_path, statement.extensions, covered, outcome)
    if reasons:
        count = len(reasons)
        raise IntegrityError(
            f"model does not match its signature: {count} difference{'s' if count > 1 else ''} "
            f"({reasons[0].message}{'; ...' if count > 1 else ''})",
            reasons=reasons,
            hint="do not use this model; restore the signed files or re-sign deliberately",
        )
    result = VerificationResult(
        model_path=Path(model_path),
        signer=signer,
        manifest=expected,
        extensions=statement.extensions,
    )
    return result, outcome


def _check_fingerprint(
    model_path: PathLike, extensions: dict[str, Any], covered: set[str], outcome: HashOutcome
) -> list[Reason]:
    """Recompute a signed weights fingerprint (only after every file matched its digest)."""
    own = extensions.get(EXTENSION_KEY)
    claim = own.get("fingerprint") if isinstance(own, dict) else None
    if claim is None:
        return []
    if not isinstance(claim, dict) or not isinstance(claim.get("digest"), str):
        return [Reason("malformed", "the signed weights fingerprint is not well-formed")]
    from modelseal.hashing.fingerprint import SCHEME, fingerprint_buffers
    from modelseal.hashing.fingerprint import fingerprint as weights_fingerprint

    if claim.get("scheme") != SCHEME:
        return [Reason("unsupported-algorithm", f"fingerprint scheme {claim.get('scheme')!r}")]
    ignore_names = bool(claim.get("ignore_names"))
    if outcome.captured:  # the verified bytes themselves, never a second read of the files
        actual = fingerprint_buffers(outcome.captured, ignore_names=ignore_names)
    else:
        actual = weights_fingerprint(model_path, ignore_names=ignore_names, only=covered)
    if not hmac.compare_digest(actual.digest, claim["digest"]):
        message = "the weights do not match the signed fingerprint"
        return [
            Reason("fingerprint-mismatch", message, expected=claim["digest"], actual=actual.digest)
        ]
    return []


def _signed_empty_files(extensions: dict[str, Any]) -> list[str] | None:
    own = extensions.get(EXTENSION_KEY)
    empty = own.get("empty_files") if isinstance(own, dict) else None
    if isinstance(empty, list) and all(isinstance(p, str) for p in empty):
        return empty
    return None


def _load_key(public_key: PathLike | PublicKey) -> PublicKey:
    return load_public_key(public_key) if isinstance(public_key, str | os.PathLike) else public_key


def _paths(value: PathLike | Sequence[PathLike]) -> tuple[PathLike, ...]:
    """One path or several: a lone ``str``/``PathLike`` is not a sequence of characters."""
    if isinstance(value, str | os.PathLike):
        return (value,)
    return tuple(value)


def authenticate(
    bundle: OmsBundle,
    *,
    public_key: PathLike | PublicKey | None = None,
    trust_anchors: PathLike | Sequence[PathLike] = (),
    sigstore: SigstoreTrust | None = None,
    at: dt.datetime | None = None,
) -> str:
    """Check a bundle's DSSE signature with ``public_key``, a certificate chain built to
    ``trust_anchors`` (validated at ``at``, default now) or Sigstore keyless verification
    under ``sigstore``; return who signed. Only the signature over the statement is checked
    here, not the model's files."""
    if sigstore is not None:
        if public_key is not None or _paths(trust_anchors):
            raise UsageError(
                "a Sigstore keyless signature is verified with a trusted root and identities alone",
                hint="give either Sigstore trust, or a public key / trust anchors, not both",
                topic="verify-sigstore-alone",
            )
        from modelseal.signing.sigstore_keyless import authenticate_sigstore

        return authenticate_sigstore(bundle, sigstore)
    return _authenticate(bundle, public_key, _paths(trust_anchors), at)


def _authenticate(
    bundle: OmsBundle,
    public_key: PathLike | PublicKey | None,
    trust_anchors: Sequence[PathLike],
    at: dt.datetime | None,
) -> str:
    if bundle.certificates:
        if not trust_anchors:
            raise UsageError(
                "this signature is certificate-based",
                hint="verify it with trust anchors: the CA certificates its chain must lead to",
                topic="verify-with-trust-anchor",
            )
        from modelseal.signing.trust import (
            load_certificates,
            parse_bundle_certificates,
            verify_chain,
        )

        anchors = load_certificates(trust_anchors, "trust anchor")
        trusted = verify_chain(parse_bundle_certificates(bundle.certificates), anchors, at=at)
        key: PublicKey = trusted.public_key
        identity = f"certificate {trusted.subject}"
        if public_key is not None:  # a pinned key must be the certificate's key as well
            pinned = _load_key(public_key)
            if key_hint(pinned) != key_hint(key):
                message = f"signature was made with another key ({identity}), not the given key"
                raise SignatureMismatchError(
                    message,
                    reasons=[
                        Reason(
                            "wrong-key", message, expected=key_hint(key), actual=key_hint(pinned)
                        )
                    ],
                    hint="verify with the signer's public key, or do not trust this model",
                )
    else:
        if public_key is None:
            raise UsageError(
                "this signature is key-based",
                hint="verify it with the signer's public key",
                topic="verify-with-public-key",
            )
        if trust_anchors:
            raise UsageError(
                "this signature is key-based: trust anchors cannot vouch for it",
                hint="verify it with the signer's public key alone",
                topic="verify-with-public-key-alone",
            )
        key = _load_key(public_key)
        identity = f"{describe(key)} key {key_hint(key)[:16]}"
    signed = pae(bundle.payload_type, bundle.payload)
    if not any(verify_bytes(key, sig, signed) for sig in bundle.signatures):
        if bundle.key_hint and bundle.key_hint != key_hint(key):
            message = (
                f"signature was made with another key (key id {bundle.key_hint[:16]}), "
                f"not {identity}"
            )
            raise SignatureMismatchError(
                message,
                reasons=[
                    Reason("wrong-key", message, expected=bundle.key_hint, actual=key_hint(key))
                ],
                hint="verify with the signer's public key, or do not trust this model",
            )
        message = (
            "signature does not verify: the signed payload or the signature bytes were altered"
        )
        raise SignatureMismatchError(
            message, reasons=[Reason("bad-signature", message)], hint="do not use this model"
        )
    if bundle.key_hint and bundle.key_hint != key_hint(key):
        message = "the bundle's public-key hint does not match the key that signed it"
        raise SignatureMismatchError(
            message,
            reasons=[
                Reason("key-hint-mismatch", message, expected=key_hint(key), actual=bundle.key_hint)
            ],
            hint="the signature file was edited; do not use this model",
        )
    return identity
