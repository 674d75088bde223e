"""A small X.509 PKI built at run time: root CA -> intermediate CA -> code-signing leaf.

Every certificate is a real one made with ``cryptography``; the knobs (validity window, key usage,
extended key usage, CA flag) exist so tests can build exactly the broken certificate they need.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelseal.signing.keys import PrivateKey, generate_key

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


@dataclasses.dataclass
class Issued:
    """A certificate with its private key, and where both were written (PEM)."""

    name: str
    key: PrivateKey
    cert: x509.Certificate
    cert_path: Path
    key_path: Path

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelseal tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


_UNSET = object()


def issue(
    directory: Path,
    name: str,
    *,
    issuer: Issued | None = None,
    key: PrivateKey | None = None,
    algorithm: str = "ecdsa-p256",
    ca: bool = False,
    path_length: int | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    digital_signature: bool | None = True,
    eku: Sequence[x509.ObjectIdentifier] | object | None = _UNSET,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """Issue (or self-sign, without ``issuer``) a certificate and write ``NAME.pem``/``NAME.key``.

    ``digital_signature=None`` leaves out the key-usage extension of a leaf; ``eku=None`` leaves
    out its extended key usage (default: codeSigning). ``extra`` adds (extension, critical) pairs.
    """
    key = key if key is not None else generate_key(algorithm)
    subject = _name(name)
    signer_key = issuer.key if issuer is not None else key
    issuer_name = issuer.cert.subject if issuer is not None else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 30 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=path_length), critical=True
        ).add_extension(_key_usage(cert_sign=True, digital_signature=True), critical=True)
    else:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if digital_signature is not None:
            builder = builder.add_extension(
                _key_usage(digital_signature=digital_signature), critical=True
            )
        usages = [ExtendedKeyUsageOID.CODE_SIGNING] if eku is _UNSET else eku
        if isinstance(usages, Sequence):
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    # Ed25519 signs without a separate digest; EC and RSA CAs use SHA-256.
    digest = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = builder.sign(signer_key, digest)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(name, key, cert, cert_path, key_path)


@dataclasses.dataclass
class Pki:
    """root -> intermediate -> leaf, all valid now."""

    root: Issued
    intermediate: Issued
    leaf: Issued


def build_pki(directory: Path, *, leaf_algorithm: str = "ecdsa-p256", prefix: str = "") -> Pki:
    root = issue(
        directory, f"{prefix}root", ca=True, not_before=NOW - 10 * DAY, not_after=NOW + 3650 * DAY
    )
    intermediate = issue(
        directory,
        f"{prefix}intermediate",
        issuer=root,
        ca=True,
        path_length=0,
        not_before=NOW - 5 * DAY,
        not_after=NOW + 365 * DAY,
    )
    leaf = issue(directory, f"{prefix}leaf", issuer=intermediate, algorithm=leaf_algorithm)
    return Pki(root, intermediate, leaf)


def concat(path: Path, *certs: Issued) -> Path:
    """Write several certificates into one PEM file."""
    path.write_bytes(b"".join(c.pem for c in certs))
    return path
