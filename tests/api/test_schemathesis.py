"""Schemathesis against the live app on SQLite and PostgreSQL: every input the OpenAPI document
allows (and many it does not) gets a documented 4xx or a 2xx that matches its schema; never a 5xx.

A registry holding a model, an alias, a user and a trusted key gives the generated requests
something to find; the caller holds every role, so requests get past authorization to the code
that handles them. Examples per operation are bounded to keep the suite quick."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
import schemathesis.specs.openapi.checks as oa
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

from modelseal.access import principals
from modelseal.access.roles import ROLES
from modelseal.registry.backend import LocalBackend, push
from modelseal.registry.versions import SetAlias
from modelseal.server.app import create_app
from tests.registry.fixtures import make_signed_model, open_env

EXAMPLES = 20
# No 5xx; the status is documented for the route; the content type, headers and body are the
# documented ones. (A schema-valid request may still be refused with 400: names must exist and
# be consistent, bundles must parse. Negative data must be refused.)
CHECKS = [
    not_a_server_error,
    oa.status_code_conformance,
    oa.content_type_conformance,
    oa.response_headers_conformance,
    oa.response_schema_conformance,
]


@pytest.fixture
def live_app(db_url: str, tmp_path: Path, key_pair: tuple[Path, Path]) -> Iterator[Any]:
    env = open_env(tmp_path / "home", db_url)
    reg, admin = env.registry, env.admin
    model = make_signed_model(tmp_path / "m", key_pair)
    local = LocalBackend(reg, admin)
    push(local, model.path, name="m", signature=model.signature, public_key=model.public_key)
    local.call(SetAlias(name="m", alias="staging", version=1))
    reg.run(admin, principals.CreateUser(name="fuzz"))
    for role in ROLES:
        reg.run(admin, principals.GrantRole(name="fuzz", role=role))
    token = reg.run(admin, principals.CreateToken(name="fuzz")).token
    app = create_app(reg, auth_failure_limit=0)
    app.state.fuzz_token = token
    try:
        yield app
    finally:
        reg.close()


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [cast(Any, result).ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_error_and_every_answer_matches_its_schema(live_app: Any, mode: str) -> None:
    from schemathesis import GenerationMode

    headers = {"Authorization": f"Bearer {live_app.state.fuzz_token}"}
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    operations = _operations(live_app)
    assert len(operations) >= 29
    tried = 0
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=generation))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
            tried += 1
        except Unsatisfiable:  # nothing to make invalid (an operation without inputs)
            assert mode == "negative", operation.label
    assert tried >= len(operations) - 5
