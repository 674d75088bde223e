"""The client address the server believes, and how refusals of a rate-limited address reach the
audit log: forwarded headers count only from configured proxies, and a client hammering the
server grows the log logarithmically, not by one record per request."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelseal.errors import InputError
from modelseal.registry.audit_trail import ListAuditRecords
from modelseal.registry.config import proxies
from modelseal.server.app import create_app
from modelseal.server.run import proxy_options
from tests.registry.fixtures import Env, open_env

FORGED = "203.0.113.66"


@dataclasses.dataclass
class Live:
    env: Env
    url: str


def _serve(env: Env, allowed: str, limit: int) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    config = dataclasses.replace(env.config, forwarded_allow_ips=allowed)
    app = create_app(env.registry, auth_failure_limit=limit)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **proxy_options(config))
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(params=["", "127.0.0.1"], ids=["no-proxy", "trusted-proxy"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Live, str]]:
    env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'registry.db'}")
    server, thread, url = _serve(env, request.param, limit=2)
    try:
        yield Live(env, url), request.param
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        env.registry.close()


def _denials(env: Env) -> list[Any]:
    records = env.registry.run(env.admin, ListAuditRecords(export=True))
    return [r for r in records if r.action == "authenticate" and r.outcome == "denied"]


def test_forwarded_addresses_count_only_from_trusted_proxies(live: tuple[Live, str]) -> None:
    server, allowed = live
    with httpx.Client(base_url=server.url) as http:
        for _ in range(40):
            answer = http.get("/v1/models", headers={"Authorization": "Bearer msk_bad",
                                                     "X-Forwarded-For": FORGED})  # fmt: skip
            assert answer.status_code in (401, 429)
        assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0
    denials = _denials(server.env)
    expected = FORGED if allowed else "127.0.0.1"
    assert {r.source for r in denials} == {expected}
    # 2 failed authentications, then 38 refusals recorded as the 1st, 2nd, 4th, 8th, 16th, 32nd.
    refusals = [r for r in denials if "too many" in r.reason]
    assert [r.details["refusals"] for r in refusals] == [1, 2, 4, 8, 16, 32]
    assert len(denials) == 2 + 6


def test_a_forged_address_cannot_escape_the_limit_without_a_proxy(tmp_path: Path) -> None:
    env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'registry.db'}")
    server, thread, url = _serve(env, "", limit=2)
    try:
        with httpx.Client(base_url=url) as http:
            codes = [
                http.get("/v1/models", headers={"Authorization": "Bearer msk_bad",
                                                "X-Forwarded-For": f"198.51.100.{i}"}).status_code
                for i in range(5)
            ]  # fmt: skip
        assert codes == [401, 401, 429, 429, 429]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        env.registry.close()


@pytest.mark.parametrize("value", ["not-an-ip", "10.0.0.0/40", "1.2.3.4,,bad"])
def test_bad_proxy_settings_are_refused(value: str) -> None:
    with pytest.raises(InputError, match="forwarded_allow_ips"):
        proxies(value)


def test_proxy_settings_are_normalised() -> None:
    assert proxies(" 10.0.0.5 , 10.1.0.0/16 ") == "10.0.0.5,10.1.0.0/16"
    assert proxies(["*"]) == "*"
    assert proxies(None) == ""
