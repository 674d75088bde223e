"""Gate decisions for registry tests: a real gate run, signed with a real gate key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelseal.policy.decision import GateDecision


def gate_key(root: Path) -> tuple[Path, Path]:
    """A gate key pair (private, public) without a passphrase, under ``root``."""
    from modelseal.signing.keys import generate_key, write_key_pair

    root.mkdir(parents=True, exist_ok=True)
    private, public = root / "gate.pem", root / "gate.pub"
    if not private.exists():
        write_key_pair(generate_key("ecdsa-p256"), private, public, passphrase=None)
    return private, public


def decide(
    model: Path, signature: Path, signer_public: Path, *, trusted: bool = True
) -> GateDecision:
    """Gate ``model`` under a policy that trusts ``signer_public`` (or, with ``trusted=False``,
    a policy that trusts no key the model was signed with: a FAILED decision)."""
    from modelseal.policy.document import LoadedPolicy, parse_policy
    from modelseal.policy.gate import gate

    keys = [{"name": "ci", "path": str(signer_public)}] if trusted else []
    document = {"version": 1, "name": "release", "signature": {"keys": keys},
                "scan": {"max_severity": "low"}}  # fmt: skip
    policy = LoadedPolicy(parse_policy(document), "ab" * 32, model.parent)
    return gate(model, policy=policy, signature=signature)


def bundle(decision: GateDecision, private: Path) -> str:
    """``decision`` as a signed attestation bundle (what ``modelseal gate --attest`` writes)."""
    from modelseal.policy import evidence
    from modelseal.signing.keys import load_private_key

    key = load_private_key(private, None)
    return evidence.dumps(evidence.envelopes_for(decision, key, version="test"))


def admit(registry: Any, admin: Any, model: Any, name: str, *numbers: int) -> None:
    """Let versions ``numbers`` of ``name`` (pushed from the signed ``model``) into protected
    aliases: trust a gate key (once) and attach a passing decision to each version."""
    from modelseal.registry.attestations import AttachAttestation
    from modelseal.registry.trusted_keys import AddTrustedKey, ListTrustedKeys

    private, public = gate_key(model.path.parent / "gate-key")
    pem = public.read_text()
    if not any(k.purpose == "gate" for k in registry.run(admin, ListTrustedKeys())):
        registry.run(admin, AddTrustedKey(pem=pem, name="release gate", purpose="gate"))
    text = bundle(decide(model.path, model.signature, model.public_key), private)
    for number in numbers:
        registry.run(admin, AttachAttestation(name=name, number=number, bundle=text))
