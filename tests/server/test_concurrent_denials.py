"""Many concurrent requests that are denied, through a real server with more worker threads than
the default: every one is answered 403 and audited once (the records share commits through the
group committer's append path), with gap-free sequence numbers, and the log verifies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelseal.audit.verify import verify_log
from modelseal.store import db
from tests.registry.fixtures import open_env
from tests.server.conftest import Running, start_server, stop_server

REQUESTS = 96
CLIENTS = 48


@pytest.fixture
def busy_server(db_url: str, tmp_path: Path) -> Iterator[Running]:
    env = open_env(tmp_path / "home", db_url)
    running = start_server(env, app_options={"threads": CLIENTS})
    try:
        yield running
    finally:
        stop_server(running)
        env.registry.close()


def test_concurrent_denials_are_each_audited_once(busy_server: Running) -> None:
    token = busy_server.token_for("dana", "data-scientist")
    registry = busy_server.env.registry
    with db.reading(registry.engine) as conn:
        before = registry.audit.size(conn)
    barrier = threading.Barrier(CLIENTS)
    statuses: list[int] = []

    def client(c: int) -> None:
        with httpx.Client(base_url=busy_server.url, timeout=60) as http:
            barrier.wait()
            for i in range(c, REQUESTS, CLIENTS):
                # A data scientist may not create users: denied, and the denial audited.
                r = http.post("/v1/users", json={"name": f"user{i}"},
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                statuses.append(r.status_code)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [403] * REQUESTS
    with db.reading(registry.engine) as conn:
        records = list(registry.audit.records(conn, before))
        verify_log(conn, registry.audit.signer.verifier).raise_for_findings()
    denials = [r for r in records if r.outcome == "denied" and r.actor == "dana"]
    assert sorted(r.resource for r in denials) == sorted(f"user/user{i}" for i in range(REQUESTS))
    assert [r.seq for r in records] == list(range(before, before + len(records)))
