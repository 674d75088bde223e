"""Key pairs: generation, PEM files (private keys passphrase-protected PKCS#8, mode 0600), and the
signature scheme each key type uses.

Schemes: ECDSA P-256/P-384/P-521 with SHA-256/384/512 (the OMS set), Ed25519, and RSA-PSS
(MGF1-SHA-256, salt length 32) with SHA-256 for RSA keys of at least 3072 bits.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from modelseal.errors import KeyFileError, PassphraseError, UnsupportedAlgorithmError
from modelseal.fsinput import NOT_REGULAR, NotRegularFileError, read_regular
from modelseal.fsutil import atomic_write

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

ALGORITHMS: tuple[str, ...] = (
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "ed25519",
    "rsa-pss-3072",
    "rsa-pss-4096",
)
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
_EC_HASH: dict[int, type[hashes.HashAlgorithm]] = {
    256: hashes.SHA256,
    384: hashes.SHA384,
    521: hashes.SHA512,
}
MIN_RSA_BITS = 3072
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def generate_key(algorithm: str = "ecdsa-p256") -> PrivateKey:
    """A new private key for one of :data:`ALGORITHMS`.

    Any other name is an :class:`UnsupportedAlgorithmError`.
    """
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm.startswith("ecdsa-p"):
        curve = _CURVES.get(
            {"256": "secp256r1", "384": "secp384r1", "521": "secp521r1"}.get(algorithm[7:], "")
        )
        if curve is not None:
            return ec.generate_private_key(curve())
    if algorithm in ("rsa-pss-3072", "rsa-pss-4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[-4:]))
    raise UnsupportedAlgorithmError(
        f"unknown key algorithm {algorithm!r}", hint=f"use one of: {', '.join(ALGORITHMS)}"
    )


def describe(key: PrivateKey | PublicKey) -> str:
    """The algorithm name of a key, in :data:`ALGORITHMS` spelling where it is one of ours."""
    public = key.public_key() if not isinstance(key, PublicKey) else key
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"ecdsa-p{public.curve.key_size}"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    return f"rsa-pss-{public.key_size}"


def check_supported(key: object) -> PublicKey:
    """Return the public key if its type, curve and size are ones modelseal signs with."""
    public = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name not in _CURVES:
            raise UnsupportedAlgorithmError(
                f"unsupported elliptic curve {public.curve.name}",
                hint="use an ECDSA key on P-256, P-384 or P-521",
            )
        return public
    if isinstance(public, ed25519.Ed25519PublicKey):
        return public
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < MIN_RSA_BITS:
            raise UnsupportedAlgorithmError(
                f"RSA key of {public.key_size} bits is too small",
                hint=f"use an RSA key of at least {MIN_RSA_BITS} bits, or ECDSA/Ed25519",
            )
        return public
    raise UnsupportedAlgorithmError(
        f"unsupported key type {type(public).__name__}",
        hint=f"use one of: {', '.join(ALGORITHMS)}",
    )


def sign_bytes(key: PrivateKey, data: bytes) -> bytes:
    """Sign ``data`` with the scheme that belongs to ``key``'s type."""
    check_supported(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(_EC_HASH[key.curve.key_size]()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, _PSS, hashes.SHA256())


def verify_bytes(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` over ``data`` verifies under ``key``'s scheme."""
    check_supported(key)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_EC_HASH[key.curve.key_size]()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, _PSS, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def public_pem(key: PrivateKey | PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of ``key`` (of its public half for a private key)."""
    public = key.public_key() if not isinstance(key, PublicKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint(key: PrivateKey | PublicKey) -> str:
    """The bundle's public-key hint: hex SHA-256 of the PEM SubjectPublicKeyInfo (as OMS does)."""
    return hashlib.sha256(public_pem(key)).hexdigest()


# OpenSSL's PEM encryption refuses longer passphrases.
MAX_PEM_PASSPHRASE = 1023


def write_key_pair(
    key: PrivateKey,
    private_path: str | os.PathLike[str],
    public_path: str | os.PathLike[str],
    *,
    passphrase: str | bytes | None,
    overwrite: bool = False,
) -> None:
    """Write the private key (PKCS#8 PEM, encrypted when ``passphrase`` is given: str as UTF-8,
    or bytes; mode 0600) and the public key beside it; both atomically."""
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if passphrase is not None and not passphrase:
        raise PassphraseError(
            "empty passphrase",
            hint="give a passphrase, or none to write the key unencrypted",
            topic="new-key-passphrase",
        )
    if passphrase is not None and len(passphrase) > MAX_PEM_PASSPHRASE:
        raise PassphraseError(
            f"the passphrase is {len(passphrase)} bytes; an encrypted PEM private key takes "
            f"at most {MAX_PEM_PASSPHRASE}",
            hint="use a shorter passphrase",
        )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    if Path(private_path).resolve() == Path(public_path).resolve():
        raise KeyFileError(
            "private and public key paths are the same", hint="give two different paths"
        )
    atomic_write(private_path, pem, mode=0o600, overwrite=overwrite)
    atomic_write(public_path, public_pem(key), mode=0o644, overwrite=overwrite)


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return read_regular(path, 1 << 20)
    except FileNotFoundError:
        raise KeyFileError(f"{what} {str(path)!r} does not exist", hint="check the path") from None
    except IsADirectoryError:
        raise KeyFileError(f"{what} {str(path)!r} is a directory", hint="give a PEM file") from None
    except NotRegularFileError:
        raise KeyFileError(
            f"{what} {str(path)!r} is {NOT_REGULAR}", hint="give a PEM file"
        ) from None
    except OSError as exc:
        raise KeyFileError(
            f"cannot read {what} {str(path)!r}: {exc.strerror}", hint="check its permissions"
        ) from None


def load_private_key(
    path: str | os.PathLike[str], passphrase: str | bytes | None = None
) -> PrivateKey:
    """Load a PEM private key. Encrypted keys need ``passphrase`` (str as UTF-8, or bytes);
    errors say which is wrong."""
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        if passphrase is not None:
            return load_private_key(path, None)  # a passphrase for a plain key does no harm
        raise PassphraseError(
            f"private key {str(path)!r} is passphrase-protected",
            hint="give the key's passphrase",
            topic="key-passphrase",
        ) from None
    except ValueError as exc:
        text = str(exc).lower()
        # A wrong passphrase usually fails the padding check ("incorrect password"), but about
        # one in 256 decrypts to well-padded garbage that then fails to parse: for an encrypted
        # PEM, any failure with a passphrase given is reported as the passphrase.
        if passphrase is not None and (
            _encrypted_pem(data) or "password" in text or "decrypt" in text
        ):
            raise PassphraseError(
                f"wrong passphrase for private key {str(path)!r}",
                hint="check the passphrase (or that the key file is undamaged)",
            ) from None
        raise KeyFileError(
            f"{str(path)!r} is not a PEM private key", hint="give a PKCS#8 or PKCS#1/SEC1 PEM file"
        ) from None
    except UnsupportedAlgorithm:
        raise UnsupportedAlgorithmError(
            f"private key {str(path)!r} uses an unsupported algorithm",
            hint=f"use one of: {', '.join(ALGORITHMS)}",
        ) from None
    check_supported(key)
    assert isinstance(key, PrivateKey)
    return key


def _encrypted_pem(data: bytes) -> bool:
    """True for a PKCS#8 encrypted PEM or a traditional one with an encryption header."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Load a PEM public key (SubjectPublicKeyInfo)."""
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        hint = (
            "this is a private key: give its public half (.pub)"
            if b"PRIVATE KEY" in data
            else "give a PEM public key (-----BEGIN PUBLIC KEY-----)"
        )
        raise KeyFileError(f"{str(path)!r} is not a PEM public key", hint=hint) from None
    return check_supported(key)
