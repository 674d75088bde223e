"""The Sigstore trusted root a keyless signature is verified against: reading the file, and
the validity windows of its keys at the signing time.

``sigstore`` accepts a Fulcio CA, Rekor key or CT log key whose ``validFor`` has ended (it only
refuses one whose window starts in the future); a key retired before the signature was made must
not vouch for it, so each one that took part is checked at the time the log recorded the
signature.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
from typing import Any

from modelseal.errors import CertificateError, InputError, Reason
from modelseal.fsinput import NOT_REGULAR, NotRegularFileError, read_regular

PathLike = str | os.PathLike[str]
MAX_TRUSTED_ROOT_BYTES = 4 << 20
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


def read_trusted_root(path: PathLike) -> bytes:
    """The bytes of a Sigstore trusted_root.json; unreadable or not one -> :class:`InputError`."""
    where = str(path)
    hint = (
        "give the trusted_root.json of the Sigstore instance that signed (from its TUF repository)"
    )
    try:
        data = read_regular(path, MAX_TRUSTED_ROOT_BYTES + 1)
    except FileNotFoundError:
        raise InputError(
            f"trusted root {where!r} does not exist",
            hint=hint,
        ) from None
    except IsADirectoryError:
        raise InputError(f"trusted root {where!r} is a directory", hint=hint) from None
    except NotRegularFileError:
        raise InputError(f"trusted root {where!r} is {NOT_REGULAR}", hint=hint) from None
    except OSError as exc:
        raise InputError(
            f"cannot read trusted root {where!r}: {exc.strerror}", hint="check the path"
        ) from None
    if len(data) > MAX_TRUSTED_ROOT_BYTES:
        raise InputError(f"trusted root {where!r} is larger than 4 MiB", hint=hint)
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"trusted root {where!r} is not JSON", hint=hint) from None
    if not isinstance(document, dict) or document.get("mediaType") != TRUSTED_ROOT_MEDIA_TYPE:
        raise InputError(
            f"trusted root {where!r} is not a Sigstore trusted root "
            f"(mediaType is not {TRUSTED_ROOT_MEDIA_TYPE})",
            hint=hint,
        )
    return data


def check_root_validity(
    root_bytes: bytes, raw: dict[str, Any], leaf_der: bytes, root: PathLike
) -> None:
    """The trusted root's Rekor key, Fulcio CA and CT log were valid when the log recorded
    the signature (Rekor v1 entries, whose integrated time ``sigstore`` verified)."""
    from cryptography import x509

    document = json.loads(root_bytes)
    entry = raw["verificationMaterial"]["tlogEntries"][0]  # sigstore verified exactly one
    if not isinstance(entry, dict) or "integratedTime" not in entry:
        return  # a Rekor v2 entry: its time came from a timestamp authority sigstore checked
    when = dt.datetime.fromtimestamp(int(entry["integratedTime"]), dt.UTC)
    where = f"trusted root {str(root)!r}"
    log_id = _b64(_field(entry, "logId", "keyId"))
    tlog = [t for t in _items(document, "tlogs") if _b64(_field(t, "logId", "keyId")) == log_id]
    at = f"{when:%Y-%m-%dT%H:%M:%SZ}"
    if not any(_valid_at(_field(t, "publicKey", "validFor"), when) for t in tlog):
        raise _expired(f"the Rekor key of {where} was not valid at the signing time {at}")
    leaf = x509.load_der_x509_certificate(leaf_der)
    cas = [a for a in _items(document, "certificateAuthorities") if _issued_leaf(a, leaf)]
    if not any(_valid_at(a.get("validFor"), when) for a in cas):
        raise _expired(
            f"the Fulcio CA of {where} that issued the certificate was not valid at the "
            f"signing time {at}"
        )
    try:
        scts = leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
    except x509.ExtensionNotFound:
        return
    for sct in scts:
        stamped = sct.timestamp.replace(tzinfo=dt.UTC)
        logs = [
            c for c in _items(document, "ctlogs") if _b64(_field(c, "logId", "keyId")) == sct.log_id
        ]
        if not any(_valid_at(_field(c, "publicKey", "validFor"), stamped) for c in logs):
            raise _expired(
                f"the CT log of {where} was not valid when it stamped the certificate "
                f"({stamped:%Y-%m-%dT%H:%M:%SZ})"
            )


def _items(document: Any, key: str) -> list[dict[str, Any]]:
    """The objects listed under ``key`` (anything else in the list is skipped)."""
    value = document.get(key) if isinstance(document, dict) else None
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _field(item: Any, outer: str, inner: str) -> Any:
    """``item[outer][inner]``, or ``None``."""
    middle = item.get(outer) if isinstance(item, dict) else None
    return middle.get(inner) if isinstance(middle, dict) else None


def _expired(message: str) -> CertificateError:
    hint = "give a trusted root valid for this signature, or do not trust it"
    return CertificateError(message, reasons=[Reason("trusted-root-expired", message)], hint=hint)


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _valid_at(window: Any, when: dt.datetime) -> bool:
    """Whether a trusted root ``validFor`` (start, optional end) contains ``when``."""
    if not isinstance(window, dict) or not isinstance(window.get("start"), str):
        return False
    try:
        start = dt.datetime.fromisoformat(window["start"])
        end = window.get("end")
        until = dt.datetime.fromisoformat(end) if isinstance(end, str) else None
    except ValueError:
        return False
    if start.tzinfo is None or (until is not None and until.tzinfo is None):
        return False  # RFC 3339 times carry a zone; a naive one is not a trusted window
    return start <= when and (until is None or when <= until)


def _issued_leaf(authority: Any, leaf: Any) -> bool:
    """Whether a trusted root certificate authority's chain holds the leaf's issuer."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    chain = _field(authority, "certChain", "certificates")
    for item in chain if isinstance(chain, list) else []:
        der = _b64(item.get("rawBytes") if isinstance(item, dict) else None)
        if der is None:
            continue
        try:
            ca = x509.load_der_x509_certificate(der)
            if ca.subject == leaf.issuer:
                leaf.verify_directly_issued_by(ca)
                return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False
