"""Failed-authentication limiting: the limiter's arithmetic (a fake clock) and the real server
answering 429 with Retry-After, audited, without even looking the token up."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.client import Client as RemoteBackend
from modelseal.errors import RateLimitedError
from modelseal.registry.config import RegistryConfig
from modelseal.registry.versions import ListModels
from modelseal.server.ratelimit import FailureLimiter
from tests.registry.fixtures import open_env
from tests.registry.test_encrypted import audit
from tests.server.conftest import start_server, stop_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_window_and_recovery() -> None:
    clock = Clock()
    limiter = FailureLimiter(3, 60.0, clock=clock)
    for _ in range(3):
        limiter.check("10.0.0.1")
        limiter.failed("10.0.0.1")
        clock.now += 1
    with pytest.raises(RateLimitedError) as err:
        limiter.check("10.0.0.1")
    assert err.value.retry_after == pytest.approx(57.0) and err.value.http_status == 429
    limiter.check("10.0.0.2")  # other sources are not affected
    clock.now += 57.5  # the first failure left the window
    limiter.check("10.0.0.1")


def test_disabled_and_bounded() -> None:
    off = FailureLimiter(0)
    for _ in range(100):
        off.failed("a")
    off.check("a")
    clock = Clock()
    small = FailureLimiter(1, 60.0, sources=3, clock=clock)
    for source in ("a", "b", "c", "d"):
        small.failed(source)
    small.check("a")  # forgotten: the least recently failing source went first
    with pytest.raises(RateLimitedError):
        small.check("d")


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=5),
    gaps=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=30),
)
def test_never_more_than_limit_failures_in_any_window(limit: int, gaps: list[float]) -> None:
    """Counting only failures that were allowed through, no window of 60 s holds more than
    ``limit`` of them."""
    clock = Clock()
    limiter = FailureLimiter(limit, 60.0, clock=clock)
    allowed: list[float] = []
    for gap in gaps:
        clock.now += gap
        try:
            limiter.check("x")
        except RateLimitedError as exc:
            assert exc.retry_after > 0
            continue
        limiter.failed("x")
        allowed.append(clock.now)
    for i, start in enumerate(allowed):
        assert sum(1 for t in allowed[i:] if t - start < 60.0) <= limit


def test_server_answers_429_after_too_many_failures(tmp_path: Path, sqlite_url: str) -> None:
    env = open_env(tmp_path / "home", sqlite_url)
    running = start_server(env, app_options={"auth_failure_limit": 3})
    try:
        good = running.token_for("carol", "compliance-officer")
        url = f"{running.url}/v1/models"
        assert httpx.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 200
        for _ in range(3):
            bad = httpx.get(url, headers={"Authorization": "Bearer ms_nope_nope"})
            assert bad.status_code == 401
        limited = httpx.get(url, headers={"Authorization": f"Bearer {good}"})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0
        assert limited.json()["error"]["type"] == "RateLimitedError"
        with pytest.raises(RateLimitedError, match="too many failed authentications"):
            RemoteBackend(running.url, token=good).call(ListModels())
        reasons = [r.reason for r in audit(env) if r.outcome != "allow"]
        assert sum("too many failed authentications" in r for r in reasons) == 2
    finally:
        stop_server(running)
        env.registry.close()


def test_auth_failure_limit_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSEAL_AUTH_FAILURE_LIMIT", raising=False)
    assert RegistryConfig.resolve(home=tmp_path).auth_failure_limit == 30
    monkeypatch.setenv("MODELSEAL_AUTH_FAILURE_LIMIT", "0")
    assert RegistryConfig.resolve(home=tmp_path).auth_failure_limit == 0
    monkeypatch.setenv("MODELSEAL_AUTH_FAILURE_LIMIT", "-3")
    with pytest.raises(Exception, match="invalid auth_failure_limit"):
        RegistryConfig.resolve(home=tmp_path)
