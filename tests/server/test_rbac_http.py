"""The RBAC matrix over HTTP: every role x every API action gives 200 or a JSON 403, and leaves
the audit record (denials always, allowed state changes) with the request id and address."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from modelseal.access.principals import CreateToken, CreateUser
from modelseal.access.roles import ROLES
from modelseal.audit.record import AuditRecord
from modelseal.audit.verify import verify_log
from modelseal.registry.backend import LocalBackend, push
from modelseal.store import db
from tests.access.test_rbac import AUDITED_READS, EXPECTED, STATE_CHANGES, fresh_public_pem
from tests.policy import fixtures as gate_fixtures
from tests.registry.fixtures import SignedModel
from tests.server.conftest import Running


def requests(running: Running, sm: SignedModel) -> dict[str, tuple[str, Any, Any]]:
    n = itertools.count()
    reg, admin = running.env.registry, running.env.admin

    def new_token_id() -> str:
        return str(reg.run(admin, CreateToken(name="victim")).id)

    bundle = {"bundle": sm.signature.read_text(), "public_key": sm.public_key.read_text()}
    private, _ = gate_fixtures.gate_key(sm.path.parent / "gate-key")
    decision = gate_fixtures.decide(sm.path, sm.signature, sm.public_key)
    evidence = {"bundle": gate_fixtures.bundle(decision, private)}
    return {
        "read": ("GET", "/v1/models/m/resolve?version=1", None),
        "versions": ("GET", "/v1/models/m/versions", None),
        "download": ("GET", "/v1/models/m/versions/1/files/config.json", None),
        "push": ("POST", "/v1/models/m/uploads", bundle),
        "alias-staging": ("PUT", "/v1/models/m/aliases/staging", {"version": 1}),
        "alias-production": ("PUT", "/v1/models/m/aliases/production", {"version": 1}),
        "alias-other": ("PUT", "/v1/models/m/aliases/canary", {"version": 1}),
        "attest": ("POST", "/v1/models/m/versions/1/attestations", evidence),
        "delete": ("POST", "/v1/models/m/versions/2/delete", {"reason": "revoked"}),
        "user-create": ("POST", "/v1/users", lambda: {"name": f"new{next(n)}"}),
        "role-grant": ("POST", "/v1/users/victim/roles",
                       lambda: {"role": "devops", "scope": f"s{next(n)}"}),
        "token-create": ("POST", "/v1/users/victim/tokens", {}),
        "token-revoke": ("POST", lambda: f"/v1/tokens/{new_token_id()}/revoke", None),
        "gc": ("POST", "/v1/gc", {}),
        "trust-add": ("POST", "/v1/trust/keys",
                      lambda: {"pem": fresh_public_pem(), "name": "team key"}),
        "audit-read": ("GET", "/v1/audit/checkpoint", None),
        "audit-export": ("GET", "/v1/audit/records?export=true", None),
    }  # fmt: skip


def last(running: Running) -> AuditRecord | None:
    with db.reading(running.env.engine()) as conn:
        size = running.env.registry.audit.size(conn)
        return running.env.registry.audit.record(conn, size - 1) if size else None


@pytest.mark.parametrize("role", sorted(ROLES))
def test_rbac_matrix_over_http(
    role: str, sqlite_server: Running, signed_model: SignedModel
) -> None:
    running, sm = sqlite_server, signed_model
    local = LocalBackend(running.env.registry, running.env.admin)
    for _ in range(2):
        push(local, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    gate_fixtures.admit(running.env.registry, running.env.admin, sm, "m", 1, 2)
    running.env.registry.run(running.env.admin, CreateUser(name="victim"))
    token = running.token_for(f"{role}-user", role)
    table = requests(running, sm)
    assert set(table) == set(itertools.chain.from_iterable(EXPECTED.values())) | {"push"}
    with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {token}"}) as http:
        for action, (method, path, body) in table.items():
            path = path() if callable(path) else path
            body = body() if callable(body) else body
            before = last(running)
            request_id = f"{role}-{action}"
            r = http.request(method, path, json=body, headers={"X-Request-ID": request_id})
            allowed = action in EXPECTED[role]
            assert r.status_code == (200 if allowed else 403), (role, action, r.text)
            if not allowed:
                assert r.json()["error"]["type"] == "PermissionDeniedError"
            after = last(running)
            if not allowed or action in STATE_CHANGES | AUDITED_READS:
                assert after is not None and after != before, (role, action)
                assert after.actor == f"{role}-user" and after.roles == (role,)
                assert after.outcome == ("allowed" if allowed else "denied")
                assert after.request_id == request_id and after.source == "127.0.0.1"
            else:
                assert after == before, (role, action)
    with db.reading(running.env.engine()) as conn:
        verify_log(conn, running.env.registry.audit.signer.verifier).raise_for_findings()
