"""A :class:`~modelseal.signing.api.Signer` whose private key stays on a PKCS#11 token.

The key is an EC key pair (P-256, P-384 or P-521) found by the URI's ``object=`` label (and
``id=`` if given). The message is hashed on the host with the curve's hash (SHA-256/384/512, as
:mod:`modelseal.signing.keys` does for local keys), signed on the token with ``CKM_ECDSA``, and
the raw ``r || s`` is returned DER-encoded -- byte-for-byte the encoding a local key produces, so
``modelseal verify`` and ``model_signing verify key`` accept it with the exported public key.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from modelseal.crypto.pkcs11_token import Pkcs11Uri, parse_uri, require_binding, session
from modelseal.errors import KeyFileError, UnsupportedAlgorithmError

_CURVES: dict[str, tuple[type[ec.EllipticCurve], str]] = {
    "ecdsa-p256": (ec.SECP256R1, "secp256r1"),
    "ecdsa-p384": (ec.SECP384R1, "secp384r1"),
    "ecdsa-p521": (ec.SECP521R1, "secp521r1"),
}
_HASHES = {256: hashlib.sha256, 384: hashlib.sha384, 521: hashlib.sha512}


def _template(uri: Pkcs11Uri, object_class: Any) -> dict[Any, Any]:
    from pkcs11 import Attribute, KeyType

    if not uri.object_label and uri.object_id is None:
        raise KeyFileError("the PKCS#11 URI names no key", hint="add ;object=LABEL to the URI")
    template: dict[Any, Any] = {Attribute.CLASS: object_class, Attribute.KEY_TYPE: KeyType.EC}
    if uri.object_label:
        template[Attribute.LABEL] = uri.object_label
    if uri.object_id is not None:
        template[Attribute.ID] = uri.object_id
    return template


def _one(s: Any, uri: Pkcs11Uri, object_class: Any, what: str) -> Any:
    found = list(s.get_objects(_template(uri, object_class)))
    if len(found) != 1:
        count = "no" if not found else str(len(found))
        raise KeyFileError(
            f"{count} EC {what} matching {uri.describe()} on the token",
            hint="name exactly one key with ;object=LABEL (and ;id=%.. if labels repeat)",
        )
    return found[0]


class Pkcs11Signer:
    """Sign with an EC private key on a PKCS#11 token (tested against SoftHSM2)."""

    def __init__(self, uri: str | Pkcs11Uri) -> None:
        require_binding()
        from pkcs11 import ObjectClass
        from pkcs11.util.ec import encode_ec_public_key

        from modelseal.signing.keys import check_supported

        self._uri = parse_uri(uri) if isinstance(uri, str) else uri
        with session(self._uri) as s:
            public = _one(s, self._uri, ObjectClass.PUBLIC_KEY, "public key")
            _one(s, self._uri, ObjectClass.PRIVATE_KEY, "private key")
            der = encode_ec_public_key(public)
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        key = load_der_public_key(der)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise UnsupportedAlgorithmError("the token key is not an EC key", hint="use an EC key")
        check_supported(key)
        self._public = key

    def __repr__(self) -> str:
        return f"Pkcs11Signer({self._uri.describe()})"

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The token key's public half, read when the signer was opened."""
        return self._public

    def sign(self, data: bytes) -> bytes:
        """DER-encoded ECDSA over ``data`` with the curve's hash, computed on the token."""
        from pkcs11 import Mechanism, ObjectClass, PKCS11Error

        size = self._public.curve.key_size
        digest = _HASHES[size](data).digest()
        with session(self._uri) as s:
            private = _one(s, self._uri, ObjectClass.PRIVATE_KEY, "private key")
            try:
                raw = bytes(private.sign(digest, mechanism=Mechanism.ECDSA))
            except PKCS11Error as exc:
                raise KeyFileError(
                    f"the token refused to sign with {self._uri.describe()} ({type(exc).__name__})",
                    hint="the key must allow CKA_SIGN with CKM_ECDSA",
                ) from None
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )


def create_signing_key(uri: str | Pkcs11Uri, *, algorithm: str = "ecdsa-p256") -> Pkcs11Signer:
    """Generate an EC key pair on the token with the URI's label (private key non-extractable)."""
    require_binding()
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    if algorithm not in _CURVES:
        raise UnsupportedAlgorithmError(
            f"PKCS#11 signing keys are EC: {algorithm!r} is not supported",
            hint=f"use one of: {', '.join(_CURVES)}",
        )
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    if not parsed.object_label:
        raise KeyFileError("the PKCS#11 URI names no key", hint="add ;object=LABEL to the URI")
    with session(parsed, rw=True) as s:
        from pkcs11 import ObjectClass

        if list(s.get_objects(_template(parsed, ObjectClass.PRIVATE_KEY))):
            raise KeyFileError(
                f"a signing key {parsed.describe()} already exists on the token",
                hint="choose another object label",
            )
        params = s.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[algorithm][1])},
            local=True,
        )
        params.generate_keypair(
            store=True,
            label=parsed.object_label,
            id=parsed.object_id,
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
        )
    return Pkcs11Signer(parsed)
