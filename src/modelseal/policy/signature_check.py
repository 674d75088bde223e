"""Who signed the model, against the policy's signers.

The bundle's signature is checked against each signer the policy names (its keys, then its
certificate rules) until one authenticates it; only then are the model's bytes hashed (once, by
the gate, which also scans those bytes). A certificate signer must chain to the rule's anchors
(validity and code-signing usage checked now) and its leaf subject and issuer must match the
rule's globs. A Sigstore keyless signer is verified offline against the policy's trusted root
and must be one of its identities; a trusted root that cannot be read stops the gate (exit 2).
"""

from __future__ import annotations

import dataclasses
from fnmatch import fnmatchcase
from typing import Any

from modelseal.errors import InputError, MalformedSignatureError, ModelsealError
from modelseal.policy.decision import CheckResult
from modelseal.policy.document import LoadedPolicy, SigstorePolicy
from modelseal.signing.bundle import OmsBundle
from modelseal.signing.sigstore_keyless import SigstoreIdentity, SigstoreTrust, require_sigstore


@dataclasses.dataclass(frozen=True)
class Signer:
    """The policy signer that authenticated the bundle, and how to verify the model with it."""

    name: str
    signer: str
    public_key: Any = None
    anchors: tuple[str, ...] = ()
    sigstore: SigstoreTrust | None = None


def find_signer(policy: LoadedPolicy, bundle: OmsBundle) -> tuple[Signer | None, list[str]]:
    """The first signer of the policy that authenticates ``bundle`` (and why each other did
    not); ``None`` if none does."""
    from modelseal.signing.api import authenticate
    from modelseal.signing.keys import key_hint, load_public_key

    section = policy.policy.signature
    if section is None:
        return None, ["the policy names no trusted signer: nothing can authenticate the model"]
    tried: list[str] = []
    if not bundle.certificates:
        for trusted in section.keys:
            try:
                key = _key(policy, trusted.path, trusted.pem, load_public_key)
                if bundle.key_hint and key_hint(key) != bundle.key_hint:
                    tried.append(f"key {trusted.name!r}: not the key that signed")
                    continue
                who = authenticate(bundle, public_key=key)
            except ModelsealError as exc:
                tried.append(f"key {trusted.name!r}: {exc.message}")
                continue
            return Signer(trusted.name, who, public_key=key), tried
        if not section.keys:
            tried.append("the model was signed with a key; the policy trusts no keys")
        return None, tried
    for rule in section.certificates:
        anchors = tuple(str(policy.resolve(a)) for a in rule.anchors)
        try:
            who = authenticate(bundle, trust_anchors=anchors)
        except ModelsealError as exc:
            tried.append(f"certificates under {', '.join(rule.anchors)}: {exc.message}")
            continue
        subject, issuer = _leaf_names(bundle)
        if not fnmatchcase(subject, rule.subject):
            tried.append(f"certificate subject {subject!r} does not match {rule.subject!r}")
            continue
        if not fnmatchcase(issuer, rule.issuer):
            tried.append(f"certificate issuer {issuer!r} does not match {rule.issuer!r}")
            continue
        return Signer(f"certificate {subject}", who, anchors=anchors), tried
    if section.sigstore is not None:
        trust = sigstore_trust(policy, section.sigstore)
        require_sigstore()  # not installed: the gate cannot judge (exit 2), not a failed check
        try:
            who = authenticate(bundle, sigstore=trust)
        except (InputError, MalformedSignatureError):
            raise  # an unusable trusted root or a damaged bundle: exit 2, not a failed check
        except ModelsealError as exc:
            tried.append(f"sigstore: {exc.message}")
        else:
            return Signer("a trusted Sigstore identity", who, sigstore=trust), tried
    if not section.certificates and section.sigstore is None:
        tried.append(
            "the model was signed with a certificate; the policy trusts no CAs and no "
            "Sigstore identities"
        )
    return None, tried


def sigstore_trust(policy: LoadedPolicy, section: SigstorePolicy) -> SigstoreTrust:
    """The policy's Sigstore section as the trust :func:`modelseal.verify` takes (the trusted
    root resolved against the policy's folder)."""
    identities = tuple(
        SigstoreIdentity(
            issuer=item.issuer, identity=item.identity, identity_pattern=item.identity_pattern
        )
        for item in section.identities
    )
    return SigstoreTrust(trusted_root=policy.resolve(section.trusted_root), identities=identities)


def result(signer: Signer | None, tried: list[str], error: ModelsealError | None) -> CheckResult:
    """The signature check: who signed, or why nobody the policy trusts did."""
    if signer is None:
        lines = ["signature: required a signer the policy trusts; found none"]
        lines += [f"signature:   {why}" for why in tried]
        return CheckResult(check="signature", passed=False, lines=lines)
    if error is not None:
        lines = [
            f"signature: signed by {signer.name}, but the model does not match: {error.message}"
        ]
        return CheckResult(
            check="signature", passed=False, lines=lines, details={"signer": signer.signer}
        )
    return CheckResult(
        check="signature",
        passed=True,
        lines=[f"signature: signed by {signer.name} ({signer.signer}); every file matches"],
        details={"signer": signer.signer, "trusted_as": signer.name},
    )


def _key(policy: LoadedPolicy, path: str | None, pem: str | None, load: Any) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from modelseal.errors import InputError
    from modelseal.signing.keys import check_supported

    if path is not None:
        return load(policy.resolve(path))
    if pem is not None:
        try:
            return check_supported(load_pem_public_key(pem.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise InputError("not a PEM public key", hint="fix the policy's key") from None
    raise InputError("a policy key needs a path or a pem", hint="fix the policy's key")


def _leaf_names(bundle: OmsBundle) -> tuple[str, str]:
    from modelseal.signing.trust import parse_bundle_certificates

    leaf = parse_bundle_certificates(bundle.certificates)[0]
    return leaf.subject.rfc4514_string(), leaf.issuer.rfc4514_string()
