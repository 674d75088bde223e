"""The sigstore bundle v0.3 (JSON) that carries an OMS signature: a DSSE envelope plus the
verification material (a public-key hint or an X.509 certificate chain)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from modelseal.errors import InputError, MalformedSignatureError, Reason, UnsupportedSignatureError
from modelseal.fsinput import NOT_REGULAR, NotRegularFileError, read_regular
from modelseal.signing.dsse import IN_TOTO_PAYLOAD_TYPE

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# A manifest of a million shards is ~150 MB of JSON; anything larger is not a model signature.
MAX_BUNDLE_BYTES = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class OmsBundle:
    """A parsed bundle. ``key_hint`` is the hex SHA-256 of the signer's PEM public key (may be
    ``None``); ``certificates`` are DER, leaf first (empty for key-based signatures);
    ``source`` is the JSON it was parsed from (what a Sigstore verifier reads: the transparency
    log entry is not kept apart), empty for a bundle built in memory."""

    payload: bytes
    payload_type: str
    signatures: tuple[bytes, ...]
    key_hint: str | None = None
    certificates: tuple[bytes, ...] = ()
    source: bytes = dataclasses.field(default=b"", compare=False, repr=False)

    def to_json(self) -> str:
        """The bundle as sigstore bundle v0.3 JSON: the DSSE envelope and either a public-key hint
        or the certificate chain.
        """
        material: dict[str, Any]
        if self.certificates:
            material = {
                "x509CertificateChain": {
                    "certificates": [
                        {"rawBytes": base64.b64encode(c).decode("ascii")} for c in self.certificates
                    ]
                }
            }
        else:
            material = {"publicKey": {"hint": self.key_hint or ""}}
        material["tlogEntries"] = []
        bundle = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": base64.b64encode(self.payload).decode("ascii"),
                "payloadType": self.payload_type,
                "signatures": [
                    {"sig": base64.b64encode(s).decode("ascii"), "keyid": ""}
                    for s in self.signatures
                ],
            },
        }
        return json.dumps(bundle, indent=2) + "\n"


def _malformed(message: str) -> MalformedSignatureError:
    return MalformedSignatureError(
        f"malformed signature: {message}",
        reasons=[Reason("malformed", message)],
        hint="the signature file is damaged or is not an OMS signature bundle",
    )


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise _malformed(f"{where} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{where} is not valid base64") from None


def read_bundle(path: str | os.PathLike[str]) -> OmsBundle:
    """Read and parse a bundle file. Unreadable -> :class:`InputError`; not a bundle ->
    :class:`MalformedSignatureError`."""
    p = Path(path)
    try:
        data = read_regular(p, MAX_BUNDLE_BYTES + 1)
    except FileNotFoundError:
        raise InputError(
            f"signature file {str(p)!r} does not exist",
            hint="check the signature path",
            topic="signature-path",
        ) from None
    except IsADirectoryError:
        raise InputError(
            f"signature path {str(p)!r} is a directory",
            hint="give the path of the signature bundle file",
            topic="signature-file",
        ) from None
    except NotRegularFileError:
        raise InputError(
            f"signature path {str(p)!r} is {NOT_REGULAR}",
            hint="give the path of the signature bundle file",
            topic="signature-file",
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot read signature file {str(p)!r}: {exc.strerror}",
            hint="check the path and its permissions",
        ) from None
    if len(data) > MAX_BUNDLE_BYTES:
        raise _malformed(f"file is larger than {MAX_BUNDLE_BYTES // (1024 * 1024)} MiB")
    return parse_bundle(data)


def parse_bundle(data: bytes) -> OmsBundle:
    """Parse bundle JSON bytes strictly."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("not JSON") from None
    if not isinstance(raw, dict):
        raise _malformed("not a JSON object")
    media_type = raw.get("mediaType")
    if media_type != BUNDLE_MEDIA_TYPE:
        raise UnsupportedSignatureError(
            f"unsupported bundle media type {media_type!r}",
            reasons=[Reason("unsupported-algorithm", f"bundle media type {media_type!r}")],
            hint=f"modelseal verifies {BUNDLE_MEDIA_TYPE} bundles",
        )
    envelope = raw.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        if "messageSignature" in raw:
            raise UnsupportedSignatureError(
                "bundle signs a message digest, not an OMS statement",
                reasons=[Reason("unsupported-algorithm", "messageSignature bundle")],
                hint="sign the model with an OpenSSF Model Signing v1.0 signer",
                topic="oms-signer",
            )
        raise _malformed("no dsseEnvelope")
    payload = _b64(envelope.get("payload"), "dsseEnvelope.payload")
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise _malformed(f"payload type is {payload_type!r}, expected {IN_TOTO_PAYLOAD_TYPE}")
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise _malformed("dsseEnvelope has no signatures")
    signatures = tuple(
        _b64(s.get("sig") if isinstance(s, dict) else None, f"dsseEnvelope.signatures[{i}].sig")
        for i, s in enumerate(sigs)
    )
    material = raw.get("verificationMaterial")
    if not isinstance(material, dict):
        raise _malformed("no verificationMaterial")
    hint: str | None = None
    certificates: tuple[bytes, ...] = ()
    if "x509CertificateChain" in material:
        chain = material["x509CertificateChain"]
        certs = chain.get("certificates") if isinstance(chain, dict) else None
        if not isinstance(certs, list) or not certs:
            raise _malformed("x509CertificateChain has no certificates")
        certificates = tuple(
            _b64(c.get("rawBytes") if isinstance(c, dict) else None, f"certificates[{i}].rawBytes")
            for i, c in enumerate(certs)
        )
    elif "certificate" in material:
        cert = material["certificate"]
        certificates = (
            _b64(cert.get("rawBytes") if isinstance(cert, dict) else None, "certificate.rawBytes"),
        )
    elif "publicKey" in material:
        key = material["publicKey"]
        if not isinstance(key, dict):
            raise _malformed("verificationMaterial.publicKey is not an object")
        raw_hint = key.get("hint")
        if raw_hint not in (None, "") and not isinstance(raw_hint, str):
            raise _malformed("verificationMaterial.publicKey.hint is not a string")
        hint = raw_hint or None
    else:
        raise _malformed("verificationMaterial has neither a public key nor certificates")
    return OmsBundle(payload, payload_type, signatures, hint, certificates, source=bytes(data))
