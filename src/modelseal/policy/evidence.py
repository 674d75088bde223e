"""The gate's evidence: its decision and every check as signed in-toto attestations
(see :mod:`modelseal.signing.intoto` for the format and its verification)."""

from __future__ import annotations

from typing import Any

from modelseal.policy.decision import GateDecision
from modelseal.signing.intoto import (
    EVALUATION,
    EVALUATOR_VERSION,
    SUMMARY,
    VERIFIER,
    c_type,
    dumps,
    loads,
    payload_digest,
    seal,
    statement,
    verify,
)

__all__ = ["dumps", "envelopes_for", "loads", "verify"]


def envelopes_for(decision: GateDecision, key: Any, *, version: str) -> list[dict[str, Any]]:
    """The signed evidence of ``decision``: the summary first, then one statement per check."""
    checks = []
    for check in decision.checks:
        predicate = {
            "check": check.check,
            "passed": check.passed,
            "lines": list(check.lines),
            "details": check.details,
            "policy": {"name": decision.policy, "digest": {"sha256": decision.policy_digest}},
            "evaluator": {"id": VERIFIER, "version": EVALUATOR_VERSION},
            "time": decision.time,
        }
        checks.append(seal(statement(decision.model, decision.digest, EVALUATION, predicate), key))
    summary = {
        "verifier": {"id": VERIFIER, "version": {"modelseal": version}},
        "timeVerified": decision.time,
        "resourceUri": decision.model,
        "policy": {
            "uri": decision.policy or "policy",
            "digest": {"sha256": decision.policy_digest},
        },
        "inputAttestations": [
            {"uri": f"{c_type(e)}#{i}", "digest": {"sha256": payload_digest(e)}}
            for i, e in enumerate(checks)
        ],
        "verificationResult": "PASSED" if decision.passed else "FAILED",
        "verifiedLevels": [f"MODELSEAL_GATE_{'PASSED' if decision.passed else 'FAILED'}"],
    }
    return [seal(statement(decision.model, decision.digest, SUMMARY, summary), key), *checks]
