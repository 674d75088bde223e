"""X.509 trust: build the chain from a bundle's leaf to the user's trust anchors.

Chain building and path validation (signatures, validity, CA constraints, path length) are done by
``cryptography``'s verifier; on top of it the leaf must be allowed to sign code: key usage, if
present, includes digitalSignature; extended key usage, if present, includes codeSigning; at least
one of the two is present. Validity is checked at verification time for every certificate of the
path (certificates in the bundle that the path does not use are ignored).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import warnings
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

from modelseal.errors import CertificateError, InputError, MalformedSignatureError, Reason
from modelseal.fsinput import NOT_REGULAR, NotRegularFileError, read_regular
from modelseal.signing.keys import PublicKey, check_supported

_ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")
MAX_CHAIN_DEPTH = 8


@dataclasses.dataclass(frozen=True)
class TrustedSigner:
    """The validated leaf: its public key, subject and the chain that anchors it."""

    public_key: PublicKey
    subject: str
    chain_subjects: tuple[str, ...]
    fingerprint_sha256: str


def load_certificates(paths: Iterable[str | os.PathLike[str]], what: str) -> list[x509.Certificate]:
    """Read PEM (or DER) certificates from files; every file must hold at least one.

    Trust-anchor files are often CA bundles (e.g. /etc/ssl/certs/ca-certificates.crt) holding
    a few certificates that ``cryptography`` deprecates or refuses (a non-positive serial
    number): those are skipped rather than failing the whole file (one anchor fewer can only
    make verification stricter), and the deprecation warning is not printed. Every other
    certificate file must parse completely.
    """
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            data = read_regular(path, 16 << 20)
        except NotRegularFileError:
            raise InputError(
                f"{what} {str(path)!r} is {NOT_REGULAR}", hint="give a PEM certificate file"
            ) from None
        except OSError as exc:
            raise InputError(
                f"cannot read {what} {str(path)!r}: {exc.strerror}", hint="check the path"
            ) from None
        found = _parse_certificates(data, skip_bad=what == "trust anchor")
        if found is None:
            raise InputError(
                f"{what} {str(path)!r} holds no X.509 certificate",
                hint="give PEM certificates (-----BEGIN CERTIFICATE-----)",
            )
        if isinstance(found, int):
            raise InputError(
                f"{what} {str(path)!r}: certificate #{found + 1} in the file cannot be parsed",
                hint="give well-formed PEM certificates (-----BEGIN CERTIFICATE-----)",
            )
        certs.extend(found)
    return certs


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def _parse_certificates(data: bytes, *, skip_bad: bool) -> list[x509.Certificate] | int | None:
    """The certificates in ``data``; ``None`` if there are none, or the index of the first
    block that does not parse (unless ``skip_bad``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        if b"-----BEGIN" not in data:
            try:
                return [x509.load_der_x509_certificate(data)]
            except ValueError:
                return None
        certs: list[x509.Certificate] = []
        for index, block in enumerate(_PEM_CERTIFICATE.findall(data)):
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                if not skip_bad:
                    return index
        return certs or None


def parse_bundle_certificates(ders: Sequence[bytes]) -> list[x509.Certificate]:
    """Parse a bundle's DER certificates, in order.

    One that is not valid DER is a :class:`MalformedSignatureError`.
    """
    try:
        return [x509.load_der_x509_certificate(d) for d in ders]
    except ValueError:
        raise MalformedSignatureError(
            "malformed signature: a certificate in the bundle is not valid DER",
            reasons=[Reason("malformed", "certificate in bundle is not valid DER")],
            hint="the signature file is damaged",
        ) from None


def _fail(code: str, message: str, hint: str, topic: str = "") -> CertificateError:
    return CertificateError(message, reasons=[Reason(code, message)], hint=hint, topic=topic)


def verify_chain(
    bundle_certs: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    at: dt.datetime | None = None,
) -> TrustedSigner:
    """Validate ``bundle_certs`` (leaf first) against ``anchors`` at time ``at`` (default now)."""
    from cryptography.x509.verification import (
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    when = _aware(at) if at is not None else dt.datetime.now(dt.UTC)
    leaf, intermediates = bundle_certs[0], list(bundle_certs[1:])
    _check_validity(leaf, when)
    _check_code_signing(leaf)
    verifier = (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(when)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        # A CA certificate (from the bundle or the anchors) that issued part of the chain but is
        # out of its validity period is an expired certificate, not an unknown signer. Stray
        # certificates the path does not need (an old cross-signed root, say) do not matter
        # when a valid path exists.
        for ca in [*intermediates, *anchors]:
            if _issues_any(ca, bundle_certs):
                _check_validity(ca, when)
        raise _fail(
            "certificate-untrusted",
            f"signing certificate {leaf.subject.rfc4514_string()!r} does not chain to a trust "
            f"anchor ({exc})",
            "give the issuing CA as a trust anchor, or do not trust this signer",
            topic="untrusted-chain",
        ) from None
    from cryptography.hazmat.primitives import hashes

    return TrustedSigner(
        public_key=check_supported(leaf.public_key()),
        subject=leaf.subject.rfc4514_string(),
        chain_subjects=tuple(c.subject.rfc4514_string() for c in verified.chain),
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
    )


def _aware(when: dt.datetime) -> dt.datetime:
    """A naive time is UTC (as X.509 times and ``cryptography`` read it)."""
    if when.tzinfo is None or when.utcoffset() is None:
        return when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _check_validity(cert: x509.Certificate, when: dt.datetime) -> None:
    if when < cert.not_valid_before_utc:
        raise _fail(
            "certificate-expired",
            f"certificate {cert.subject.rfc4514_string()!r} is not valid before "
            f"{cert.not_valid_before_utc.isoformat()}",
            "check the machine's clock or the signer's certificate",
        )
    if when > cert.not_valid_after_utc:
        raise _fail(
            "certificate-expired",
            f"certificate {cert.subject.rfc4514_string()!r} expired on "
            f"{cert.not_valid_after_utc.isoformat()}",
            "ask the signer to re-sign the model with a valid certificate",
        )


def _issues_any(issuer: x509.Certificate, certs: Sequence[x509.Certificate]) -> bool:
    """Whether ``issuer`` signed one of ``certs`` (other than itself)."""
    for cert in certs:
        if cert == issuer or cert.issuer != issuer.subject:
            continue
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def _check_code_signing(leaf: x509.Certificate) -> None:
    subject = leaf.subject.rfc4514_string()
    try:
        ku: x509.KeyUsage | None = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    try:
        eku: x509.ExtendedKeyUsage | None = leaf.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage
        ).value
    except x509.ExtensionNotFound:
        eku = None
    hint = "use a certificate issued for code signing (keyUsage digitalSignature, EKU codeSigning)"
    if ku is None and eku is None:
        raise _fail(
            "certificate-usage", f"certificate {subject!r} states no key usage for signing", hint
        )
    if ku is not None and not ku.digital_signature:
        raise _fail(
            "certificate-usage",
            f"certificate {subject!r} key usage excludes digitalSignature",
            hint,
        )
    if eku is not None and ExtendedKeyUsageOID.CODE_SIGNING not in eku and _ANY_EKU not in eku:
        raise _fail(
            "certificate-usage",
            f"certificate {subject!r} extended key usage does not include codeSigning",
            hint,
        )
    try:
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is not None and bc.ca:
        raise _fail("certificate-usage", f"certificate {subject!r} is a CA, not a signer", hint)
