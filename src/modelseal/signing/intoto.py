"""Attestations: in-toto Statements (v1) in DSSE envelopes, and bundles of them.

The gate (:mod:`modelseal.policy.evidence`) writes one verification summary (SLSA
``verification_summary`` v1) and one statement per check (``EVALUATION``); every statement's
subject is the model's manifest digest, so evidence for one model cannot be replayed for
another. An attestation bundle is JSON Lines, one DSSE envelope per line, the summary first.
:func:`verify` checks a bundle for anyone holding the gate's public key (and the registry).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from modelseal.errors import InputError, VerificationError
from modelseal.signing.dsse import IN_TOTO_PAYLOAD_TYPE, pae

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SUMMARY = "https://slsa.dev/verification_summary/v1"
EVALUATION = "https://modelseal.dev/attestation/gate-check/v1"
VERIFIER = "https://modelseal.dev/gate"
EVALUATOR_VERSION = "modelseal-gate/1"
MAX_BUNDLE_BYTES = 16 << 20


def statement(
    subject: str, digest: str, predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """An in-toto Statement v1 about the model with manifest digest ``digest``."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject, "digest": {"sha256": digest}}],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def seal(document: Mapping[str, Any], key: Any) -> dict[str, Any]:
    """A DSSE envelope of ``document`` signed with ``key`` (its key id: the key's hint)."""
    from modelseal.signing.keys import key_hint, sign_bytes

    payload = _canonical(document)
    signature = sign_bytes(key, pae(IN_TOTO_PAYLOAD_TYPE, payload))
    return {
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": key_hint(key), "sig": base64.b64encode(signature).decode()}],
    }


def c_type(envelope: Mapping[str, Any]) -> str:
    """The predicate type of an envelope's statement (unverified; for labels)."""
    return str(_payload(envelope).get("predicateType", ""))


def payload_digest(envelope: Mapping[str, Any]) -> str:
    """SHA-256 of an envelope's payload bytes (how the summary names its inputs)."""
    return hashlib.sha256(base64.b64decode(str(envelope.get("payload", "")))).hexdigest()


def dumps(envelopes: Iterable[Mapping[str, Any]]) -> str:
    """An attestation bundle: JSON Lines, one envelope per line."""
    return "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in envelopes)


def loads(text: str, where: str = "attestation bundle") -> list[dict[str, Any]]:
    """The envelopes of an attestation bundle; :class:`InputError` if malformed."""
    if len(text) > MAX_BUNDLE_BYTES:
        raise InputError(f"{where} is larger than 16 MiB", hint="check the file")
    envelopes: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
        except ValueError:
            raise InputError(f"{where}: line {number} is not JSON", hint="check the file") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), str):
            raise InputError(f"{where}: line {number} is not a DSSE envelope", hint="check it")
        envelopes.append(envelope)
    if not envelopes:
        raise InputError(f"{where} holds no attestation", hint="check the file")
    return envelopes


class Verified:
    """A verified attestation bundle: the decision summary and the check statements."""

    def __init__(self, summary: dict[str, Any], checks: list[dict[str, Any]], keyid: str):
        self.summary = summary
        self.checks = checks
        self.keyid = keyid

    @property
    def passed(self) -> bool:
        """Whether the decision says PASSED."""
        return bool(self.summary["predicate"].get("verificationResult") == "PASSED")

    @property
    def policy_digest(self) -> str:
        """The digest of the policy the decision was made under."""
        return str(self.summary["predicate"].get("policy", {}).get("digest", {}).get("sha256", ""))

    def failed_checks(self) -> list[str]:
        """The lines of every failed check."""
        return [
            line
            for c in self.checks
            if not c["predicate"].get("passed")
            for line in c["predicate"].get("lines", [])
        ]


def verify(envelopes: Sequence[Mapping[str, Any]], keys: Sequence[Any], *, digest: str) -> Verified:
    """Check an attestation bundle: every envelope signed by one of ``keys``, every statement
    about the model with manifest digest ``digest``, a summary first whose inputs are exactly
    the other statements. :class:`VerificationError` says what is wrong."""
    if not keys:
        raise InputError("no gate key to verify the attestations with", hint="give the gate's key")
    statements: list[dict[str, Any]] = []
    keyid = ""
    for index, envelope in enumerate(envelopes):
        keyid = _check_signature(envelope, keys, index)
        document = _payload(envelope)
        if document.get("_type") != STATEMENT_TYPE:
            raise _bad(f"attestation {index} is not an in-toto Statement v1")
        subjects = document.get("subject")
        digests = {s.get("digest", {}).get("sha256") for s in subjects or [] if isinstance(s, dict)}
        if digests != {digest}:
            raise _bad(
                f"attestation {index} is about another model "
                f"({', '.join(sorted(str(d) for d in digests)) or 'no subject'}), "
                f"not sha256:{digest}"
            )
        statements.append(document)
    summary, checks = statements[0], statements[1:]
    if summary.get("predicateType") != SUMMARY:
        raise _bad("the first attestation is not a verification summary")
    if any(c.get("predicateType") != EVALUATION for c in checks):
        raise _bad("an attestation after the summary is not a gate check")
    named = [
        i.get("digest", {}).get("sha256") for i in summary["predicate"].get("inputAttestations", [])
    ]
    if named != [payload_digest(e) for e in envelopes[1:]]:
        raise _bad("the summary's input attestations are not the checks in this bundle")
    return Verified(summary, checks, keyid)


def _check_signature(envelope: Mapping[str, Any], keys: Sequence[Any], index: int) -> str:
    from modelseal.signing.keys import key_hint, verify_bytes

    if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        raise _bad(f"attestation {index} has payload type {envelope.get('payloadType')!r}")
    try:
        payload = base64.b64decode(str(envelope["payload"]), validate=True)
        signatures = [
            (s.get("keyid", ""), base64.b64decode(str(s["sig"]), validate=True))
            for s in envelope.get("signatures", [])
        ]
    except (KeyError, ValueError, TypeError, AttributeError):
        raise _bad(f"attestation {index} is not a well-formed DSSE envelope") from None
    signed = pae(IN_TOTO_PAYLOAD_TYPE, payload)
    for key in keys:
        hint = key_hint(key)
        for _keyid, signature in signatures:
            if verify_bytes(key, signature, signed):
                return hint
    raise _bad(f"attestation {index} is not signed by a trusted gate key")


def _payload(envelope: Mapping[str, Any]) -> dict[str, Any]:
    try:
        document = json.loads(base64.b64decode(str(envelope.get("payload", ""))))
    except ValueError:
        raise _bad("an attestation's payload is not JSON") from None
    if not isinstance(document, dict):
        raise _bad("an attestation's payload is not a statement")
    return document


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _bad(message: str) -> VerificationError:
    return VerificationError(message, hint="do not trust this decision; gate the model again")
