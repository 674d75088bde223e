"""The registry enforces the gate: a protected alias moves only to a version holding a passing
decision about its exact digest, signed by a trusted gate key, under the required policy.
Tampered, re-ordered, mixed, re-signed or replayed evidence is refused; every refusal is a 403
(in process and over HTTP) with an audit record."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelseal.errors import ModelsealError, PermissionDeniedError, VerificationError
from modelseal.registry.attestations import AttachAttestation, ListAttestations
from modelseal.registry.backend import LocalBackend, push
from modelseal.registry.trusted_keys import AddTrustedKey, ListTrustedKeys, RemoveTrustedKey
from modelseal.registry.versions import SetAlias
from modelseal.store import db
from tests.policy.fixtures import bundle, decide, gate_key
from tests.registry.fixtures import Env, SignedModel, make_signed_model, open_env
from tests.server.conftest import start_server, stop_server


def _push(env: Env, model: SignedModel, name: str = "fraud") -> int:
    backend = LocalBackend(env.registry, env.admin)
    return push(backend, model.path, name=name, signature=model.signature,
                public_key=model.public_key).version  # fmt: skip


def _trust_gate(env: Env, public: Path, name: str = "release gate") -> None:
    env.registry.run(env.admin, AddTrustedKey(pem=public.read_text(), name=name, purpose="gate"))


def _last(env: Env) -> Any:
    with db.reading(env.engine()) as conn:
        size = env.registry.audit.size(conn)
        return env.registry.audit.record(conn, size - 1)


def _promote(env: Env, number: int, alias: str = "production") -> Any:
    return env.registry.run(env.admin, SetAlias(name="fraud", alias=alias, version=number))


def _refused(env: Env, number: int, alias: str = "production") -> str:
    with pytest.raises(PermissionDeniedError) as info:
        _promote(env, number, alias)
    record = _last(env)
    assert record.action == "alias.move" and record.outcome == "denied"
    assert record.reason == info.value.message
    return info.value.message


def test_production_needs_a_passing_decision_for_that_digest(
    registry: Env, signed_model: SignedModel, other_key_pair: tuple[Path, Path]
) -> None:
    sm = signed_model
    number = _push(registry, sm)
    assert "trusts no gate key" in _refused(registry, number)
    private, public = gate_key(sm.path.parent / "gate")
    _trust_gate(registry, public)
    assert "no gate decision is stored for this digest" in _refused(registry, number)
    failed = decide(sm.path, sm.signature, sm.public_key, trusted=False)
    assert not failed.passed
    stored = _attach(registry, number, bundle(failed, private))
    assert stored.result == "FAILED"
    message = _refused(registry, number)
    assert "the gate decision FAILED: signature: required a signer the policy trusts" in message
    passed = decide(sm.path, sm.signature, sm.public_key)
    _attach(registry, number, bundle(passed, private))
    assert _promote(registry, number).version == number
    record = _last(registry)
    assert record.action == "alias.move" and record.outcome == "allowed"
    listed = registry.registry.run(registry.admin, ListAttestations(name="fraud", number=number))
    assert [a.result for a in listed] == ["FAILED", "PASSED"]
    assert all(a.bundle for a in listed)
    # Unprotected aliases never ask for a decision.
    assert _promote(registry, number, "staging").version == number


def _envelopes(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _lines(envelopes: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in envelopes)


def _edit_payload(envelope: dict[str, Any], change: Any) -> dict[str, Any]:
    statement = json.loads(base64.b64decode(envelope["payload"]))
    change(statement)
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return {**envelope, "payload": payload}


def _attach(env: Env, number: int, text: str) -> Any:
    return env.registry.run(env.admin, AttachAttestation(name="fraud", number=number, bundle=text))


def _attach_refused(env: Env, number: int, text: str) -> str:
    with pytest.raises(ModelsealError) as info:
        _attach(env, number, text)
    assert isinstance(info.value, VerificationError | PermissionDeniedError)
    assert info.value.exit_code == 1
    record = _last(env)
    assert record.action == "attestation.attach" and record.outcome == "denied"
    return info.value.message


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Any:
    env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'r.db'}")
    try:
        yield env
    finally:
        env.registry.close()


def test_tampered_mixed_or_replayed_evidence_is_refused(
    sqlite_env: Env, tmp_path: Path, key_pair: tuple[Path, Path], other_key_pair: tuple[Path, Path]
) -> None:
    env = sqlite_env
    a = make_signed_model(tmp_path / "a", key_pair, seed=1)
    b = make_signed_model(tmp_path / "b", key_pair, seed=7)
    va, vb = _push(env, a), _push(env, b)
    private, public = gate_key(tmp_path / "gate")
    _trust_gate(env, public)
    good = bundle(decide(a.path, a.signature, a.public_key), private)
    failing = bundle(decide(a.path, a.signature, a.public_key, trusted=False), private)

    # Replayed for another digest: version b is not the model the decision is about.
    assert "is about another model" in _attach_refused(env, vb, good)

    # The FAILED decision edited to say PASSED, not re-signed.
    def to_passed(s: dict[str, Any]) -> None:
        s["predicate"]["verificationResult"] = "PASSED"

    forged = _envelopes(failing)
    forged[0] = _edit_payload(forged[0], to_passed)
    assert "not signed by a trusted gate key" in _attach_refused(env, va, _lines(forged))
    # The subject swapped to b's digest, not re-signed.
    digest_b = decide(b.path, b.signature, b.public_key).digest

    def to_b(s: dict[str, Any]) -> None:
        s["subject"][0]["digest"]["sha256"] = digest_b

    swapped = [_edit_payload(e, to_b) for e in _envelopes(good)]
    assert "not signed by a trusted gate key" in _attach_refused(env, vb, _lines(swapped))
    # Signed by a key the registry does not trust as a gate key (the signer's key, here).
    other = bundle(decide(a.path, a.signature, a.public_key), key_pair[0])
    assert "not signed by a trusted gate key" in _attach_refused(env, va, other)
    # The passing summary with the failing decision's checks (each envelope genuinely signed).
    mixed = _envelopes(good)[:1] + _envelopes(failing)[1:]
    assert "input attestations are not the checks" in _attach_refused(env, va, _lines(mixed))
    # A check dropped, or the summary moved from the front.
    dropped = _envelopes(good)[:-1]
    assert "input attestations are not the checks" in _attach_refused(env, va, _lines(dropped))
    moved = _envelopes(good)[1:] + _envelopes(good)[:1]
    assert "is not a verification summary" in _attach_refused(env, va, _lines(moved))
    # Not attestations at all: unusable input, nothing stored.
    for text in ("not json\n", "{}\n", "[]\n", ""):
        with pytest.raises(ModelsealError) as info:
            _attach(env, va, text)
        assert info.value.exit_code in (1, 2), text
    # Nothing was stored, so production still refuses; the genuine bundle is accepted.
    assert "no gate decision is stored" in _refused(env, va)
    assert _attach(env, va, good).result == "PASSED"
    assert _promote(env, va).version == va


def test_a_revoked_gate_key_revokes_its_decisions(
    sqlite_env: Env, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    env = sqlite_env
    a = make_signed_model(tmp_path / "a", key_pair, seed=1)
    va = _push(env, a)
    private, public = gate_key(tmp_path / "gate")
    _trust_gate(env, public)
    _attach(env, va, bundle(decide(a.path, a.signature, a.public_key), private))
    for key in env.registry.run(env.admin, ListTrustedKeys()):
        if key.purpose == "gate":
            env.registry.run(env.admin, RemoveTrustedKey(key_id=key.id))
    _, new_public = gate_key(tmp_path / "new-gate")
    _trust_gate(env, new_public, "new gate")
    assert "a stored decision no longer verifies" in _refused(env, va)


def test_the_configured_policy_digest_is_required(
    sqlite_env: Env, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    env = sqlite_env
    a = make_signed_model(tmp_path / "a", key_pair, seed=1)
    va = _push(env, a)
    private, public = gate_key(tmp_path / "gate")
    _trust_gate(env, public)
    _attach(env, va, bundle(decide(a.path, a.signature, a.public_key), private))
    env.registry.gate_policy_digest = "cd" * 32
    message = _refused(env, va)
    assert "made under policy sha256:abababababab..., not the required sha256:cdcdcdcdcdcd" in (
        message
    )
    env.registry.gate_policy_digest = "ab" * 32  # the digest the fixture's decisions carry
    assert _promote(env, va).version == va


def test_protected_aliases_are_configurable(
    sqlite_env: Env, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    env = sqlite_env
    va = _push(env, make_signed_model(tmp_path / "a", key_pair, seed=1))
    env.registry.protected_aliases = ("prod-eu", "prod-us")
    assert _promote(env, va).version == va
    assert "prod-eu is protected" in _refused(env, va, "prod-eu")
    env.registry.protected_aliases = ()
    assert _promote(env, va, "prod-eu").version == va


def test_promotion_is_refused_over_http_with_a_403_and_audited(
    sqlite_env: Env, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    from modelseal.access import principals

    env = sqlite_env
    a = make_signed_model(tmp_path / "a", key_pair, seed=1)
    va = _push(env, a)
    private, public = gate_key(tmp_path / "gate")
    _trust_gate(env, public)
    env.registry.run(env.admin, principals.CreateUser(name="ops"))
    env.registry.run(env.admin, principals.GrantRole(name="ops", role="devops", scope="*"))
    env.registry.run(env.admin, principals.GrantRole(name="ops", role="ml-engineer", scope="*"))
    token = str(env.registry.run(env.admin, principals.CreateToken(name="ops")).token)
    running = start_server(env)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{running.url}/v1/models/fraud/aliases/production"
        answer = httpx.put(url, json={"version": va}, headers=headers, timeout=30)
        assert answer.status_code == 403, answer.text
        error = answer.json()["error"]
        assert "needs a passing gate decision" in error["message"]
        assert "no gate decision is stored for this digest" in error["message"]
        record = _last(env)
        assert (record.actor, record.action, record.outcome) == ("ops", "alias.move", "denied")
        good = bundle(decide(a.path, a.signature, a.public_key), private)
        base = f"{running.url}/v1/models/fraud/versions/{va}/attestations"
        attached = httpx.post(base, json={"bundle": good}, headers=headers, timeout=30)
        assert attached.status_code == 200, attached.text
        forged = _envelopes(good)
        forged[0]["signatures"][0]["sig"] = base64.b64encode(b"\x00" * 64).decode()
        tampered = _lines(forged)
        refused = httpx.post(base, json={"bundle": tampered}, headers=headers, timeout=30)
        assert refused.status_code == 422, refused.text
        assert "not signed by a trusted gate key" in refused.json()["error"]["message"]
        again = httpx.post(base, json={"bundle": good}, headers=headers, timeout=30)
        assert again.json()["id"] == attached.json()["id"]  # the same evidence is stored once
        answer = httpx.put(url, json={"version": va}, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
    finally:
        stop_server(running)
