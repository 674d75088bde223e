"""Sigstore keyless signatures, verified offline against a trusted root the caller gives.

A keyless OMS bundle carries a short-lived Fulcio certificate (the signer's OIDC identity in its
subject alternative name, the OIDC issuer in an extension) and a Rekor transparency-log entry.
The ``sigstore`` library checks, from the trusted root file alone (no TUF refresh, no Rekor or
Fulcio request): the certificate chain to the root's Fulcio CAs at the time the log recorded the
signature, the certificate's SCT against the root's CT logs, the log entry's inclusion proof,
checkpoint and signed entry timestamp against the root's Rekor keys, the entry's consistency
with the envelope, and the DSSE signature. On top of it modelseal checks that the signer is one
of the given identities (the issuer exact, the identity exact or a regular expression matching
all of it), and that the trusted root's Fulcio CA, Rekor key and CT log were each valid at the
signing time (``sigstore`` only refuses keys whose validity starts in the future). The model's
files are then compared with the signed manifest by the caller, as for any signature.

The certificate lived minutes; it is judged at the time the log recorded the signature, so an
old bundle still verifies offline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from modelseal.errors import (
    CertificateError,
    InputError,
    MalformedSignatureError,
    Reason,
    SignatureMismatchError,
    UsageError,
)
from modelseal.signing.bundle import OmsBundle
from modelseal.signing.dsse import IN_TOTO_PAYLOAD_TYPE
from modelseal.signing.sigstore_root import check_root_validity, read_trusted_root

PathLike = str | os.PathLike[str]
# Fulcio's OIDC issuer extensions: the raw value (v1) and a DER UTF8String (v2).
_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_SAN_OTHERNAME = "1.3.6.1.4.1.57264.1.7"
_INSTALL = "install it: pip install 'modelseal[sigstore]'"


@dataclasses.dataclass(frozen=True)
class SigstoreIdentity:
    """A signer trusted by its OIDC identity: ``issuer`` (exact) and either ``identity`` (the
    certificate's subject alternative name, exact) or ``identity_pattern`` (a Python regular
    expression that must match the whole name, as :func:`re.fullmatch`)."""

    issuer: str
    identity: str | None = None
    identity_pattern: str | None = None

    def __post_init__(self) -> None:
        if (self.identity is None) == (self.identity_pattern is None):
            raise UsageError(
                "a Sigstore identity needs exactly one of an identity and an identity pattern",
                hint="give the exact identity (e-mail, URI) or a regular expression for it",
            )
        if not self.issuer:
            raise UsageError(
                "a Sigstore identity needs its OIDC issuer",
                hint="give the issuer URL, e.g. https://token.actions.githubusercontent.com",
            )
        if self.identity_pattern is not None:
            try:
                re.compile(self.identity_pattern)
            except re.error as exc:
                raise UsageError(
                    f"identity pattern {self.identity_pattern!r} is not a regular expression "
                    f"({exc})",
                    hint="fix the pattern (Python re syntax, matched against the whole identity)",
                ) from None

    def matches(self, names: Iterable[str], issuer: str | None) -> str | None:
        """The first of ``names`` this identity accepts under ``issuer``, or ``None``."""
        if issuer != self.issuer:
            return None
        for name in names:
            if self.identity is not None and name == self.identity:
                return name
            if self.identity_pattern is not None and re.fullmatch(self.identity_pattern, name):
                return name
        return None

    def describe(self) -> str:
        """The identity as a user reads it in a message."""
        if self.identity is not None:
            return f"{self.identity!r} from {self.issuer}"
        return f"an identity matching /{self.identity_pattern}/ from {self.issuer}"


@dataclasses.dataclass(frozen=True)
class SigstoreTrust:
    """How to verify a keyless bundle: the trusted root file and the identities accepted
    (any one of them)."""

    trusted_root: PathLike
    identities: tuple[SigstoreIdentity, ...]

    def __post_init__(self) -> None:
        if not self.identities:
            raise UsageError(
                "Sigstore verification needs at least one trusted identity",
                hint="give the signer's identity and OIDC issuer",
            )


def require_sigstore() -> Any:
    """The ``sigstore`` package, imported on first use; not installed -> :class:`UsageError`
    naming the extra that installs it."""
    try:
        import sigstore.errors
        import sigstore.models
        import sigstore.verify
    except ModuleNotFoundError:
        raise UsageError(
            "Sigstore verification needs the sigstore package",
            hint=_INSTALL,
        ) from None
    return sigstore


def _verifier(path: PathLike) -> Any:
    """A ``sigstore`` verifier over the trusted root at ``path`` (read by
    :func:`read_trusted_root` first, for its size cap and one-line errors)."""
    sigstore = require_sigstore()
    try:
        root = sigstore.models.TrustedRoot.from_file(os.fspath(path))
        return sigstore.verify.Verifier(trusted_root=root)
    except (sigstore.errors.Error, ValueError, TypeError, KeyError, OSError) as exc:
        raise InputError(
            f"trusted root {str(path)!r} cannot be used: {_one_line(exc)}",
            hint="give a complete Sigstore trusted_root.json (Fulcio CAs, Rekor and CT logs)",
        ) from None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _malformed(message: str) -> MalformedSignatureError:
    return MalformedSignatureError(
        f"malformed signature: {message}",
        reasons=[Reason("malformed", message)],
        hint="the signature file is damaged or is not a Sigstore bundle",
    )


def _fail(code: str, message: str, hint: str) -> CertificateError:
    return CertificateError(message, reasons=[Reason(code, message)], hint=hint)


class _IdentityPolicy:
    """A ``sigstore`` verification policy accepting any of ``identities`` (it runs after the
    chain and SCT checks: a certificate it sees is genuine)."""

    def __init__(self, identities: Sequence[SigstoreIdentity]) -> None:
        self.identities = identities
        self.signer: str | None = None
        self.refused: str | None = None

    def verify(self, cert: Any) -> None:
        names, issuer = certificate_identity(cert)
        for trusted in self.identities:
            name = trusted.matches(names, issuer)
            if name is not None:
                self.signer = f"{name} from issuer {issuer}"
                return
        shown = ", ".join(repr(n) for n in names) or "no identity"
        self.refused = (
            f"Sigstore signer {shown} from issuer {issuer!r} is not trusted "
            f"(trusted: {', '.join(t.describe() for t in self.identities)})"
        )
        raise require_sigstore().errors.VerificationError(self.refused)


def certificate_identity(cert: Any) -> tuple[list[str], str | None]:
    """A Fulcio certificate's identities (e-mail, URI and Sigstore other-name SANs) and its
    OIDC issuer (``None`` if absent; both extensions must agree when both are present)."""
    from cryptography import x509

    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        names += san.get_values_for_type(x509.RFC822Name)
        names += san.get_values_for_type(x509.UniformResourceIdentifier)
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id.dotted_string == _SAN_OTHERNAME:
                names.append(_der_utf8(other.value) or other.value.decode("utf-8", "replace"))
    found: set[str] = set()
    for ext in cert.extensions:
        value = getattr(ext.value, "value", None)
        if not isinstance(value, bytes):
            continue
        if ext.oid.dotted_string == _ISSUER_V1:
            found.add(value.decode("utf-8", "replace"))
        elif ext.oid.dotted_string == _ISSUER_V2:
            found.add(_der_utf8(value) or "")
    return names, (found.pop() if len(found) == 1 else None)


def _der_utf8(value: bytes) -> str | None:
    """A DER UTF8String's text (``None`` if ``value`` is not exactly one)."""
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, start = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count:
            return None
        length, start = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    if len(value) != start + length:
        return None
    try:
        return value[start:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def authenticate_sigstore(bundle: OmsBundle, trust: SigstoreTrust) -> str:
    """Verify a keyless bundle's certificate, transparency-log entry and DSSE signature
    offline against ``trust`` (see the module docstring) and return who signed.

    A missing or unusable trusted root is an :class:`InputError`; a bundle that is not a
    Sigstore keyless bundle a :class:`UsageError` or :class:`MalformedSignatureError` (exit
    2); an untrusted chain, a bad log entry, an identity the trust does not accept or a bad
    signature a :class:`CertificateError` or :class:`SignatureMismatchError` (exit 1).
    """
    root_bytes = read_trusted_root(trust.trusted_root)
    if not bundle.certificates:
        raise UsageError(
            "this signature is key-based, not Sigstore keyless",
            hint="verify it with the signer's public key",
            topic="verify-with-public-key",
        )
    raw = _bundle_json(bundle)
    entries = raw.get("verificationMaterial", {}).get("tlogEntries")
    if not entries:
        raise UsageError(
            "this certificate-based signature has no transparency log entry: it is not a "
            "Sigstore keyless signature",
            hint="verify it with trust anchors: the CA certificates its chain must lead to",
            topic="sigstore-not-keyless",
        )
    verifier = _verifier(trust.trusted_root)
    sigstore = require_sigstore()
    try:
        parsed = sigstore.models.Bundle.from_json(bundle.source)
    except (sigstore.errors.Error, ValueError, TypeError, KeyError, IndexError) as exc:
        raise _malformed(f"not a valid Sigstore bundle ({_one_line(exc)})") from None
    policy = _IdentityPolicy(trust.identities)
    try:
        payload_type, payload = verifier.verify_dsse(parsed, policy)
    except sigstore.errors.VerificationError as exc:
        raise _verification_failure(exc, policy, trust.trusted_root) from None
    except (sigstore.errors.Error, ValueError, TypeError, KeyError, IndexError) as exc:
        raise _malformed(f"the Sigstore bundle cannot be verified ({_one_line(exc)})") from None
    # Fail closed should the two parsers ever read the envelope differently.
    if payload_type != IN_TOTO_PAYLOAD_TYPE or payload != bundle.payload:
        raise _malformed("the Sigstore-verified payload is not the bundle's statement")
    check_root_validity(root_bytes, raw, bundle.certificates[0], trust.trusted_root)
    if policy.signer is None:  # verify_dsse returns only after the policy accepted a signer
        raise _malformed("the Sigstore verifier did not check the signer's identity")
    return f"sigstore {policy.signer}"


def _bundle_json(bundle: OmsBundle) -> dict[str, Any]:
    if not bundle.source:
        raise UsageError(
            "a Sigstore bundle must be verified from the JSON it was read from",
            hint="pass the signature file's path (or a bundle parsed from its bytes)",
        )
    try:
        # A key given twice could be read one way here and another way by sigstore's parser.
        raw = json.loads(bundle.source, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _malformed(_one_line(exc)) from None
    material = raw.get("verificationMaterial") if isinstance(raw, dict) else None
    if not isinstance(material, dict):
        raise _malformed("no verificationMaterial")
    return dict(raw)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicated = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"the bundle gives the field {duplicated!r} twice")
    return dict(pairs)


def _verification_failure(
    exc: BaseException, policy: _IdentityPolicy, root: PathLike
) -> CertificateError | SignatureMismatchError:
    if policy.refused is not None:
        return _fail(
            "identity-mismatch",
            policy.refused,
            "verify with the identity and issuer that signed, or do not trust this model",
        )
    text = _one_line(exc)
    where = f"trusted root {str(root)!r}"
    other_root = "give the trusted root of the Sigstore instance that signed, or do not trust it"
    # sigstore's messages, most specific first ("SCT" and "SET" messages mention timestamps).
    failures = [
        (
            "certificate chain" in text,
            "certificate-untrusted",
            f"Sigstore certificate does not chain to a Fulcio CA of {where} at signing time",
            other_root,
        ),
        (
            "SCT" in text,
            "sct-invalid",
            f"Sigstore certificate's timestamp (SCT) does not verify against {where}",
            other_root,
        ),
        (
            "log entry" in text or "checkpoint" in text or "inclusion" in text,
            "tlog-invalid",
            f"Sigstore transparency log entry does not verify against {where}",
            "the bundle was altered or comes from another log; do not use this model",
        ),
        (
            "expired at time of signing" in text,
            "certificate-expired",
            "Sigstore certificate was not valid when the signature was made",
            "do not use this model",
        ),
        (
            "verified time" in text or "timestamp" in text.lower(),
            "timestamp-untrusted",
            f"the Sigstore signing time cannot be established from {where}: no timestamp in "
            "the bundle verifies against it",
            other_root,
        ),
    ]
    for matched, code, message, hint in failures:
        if matched:
            return _fail(code, f"{message} ({text})", hint)
    message = f"Sigstore signature does not verify: {text}"
    return SignatureMismatchError(
        message, reasons=[Reason("bad-signature", message)], hint="do not use this model"
    )
