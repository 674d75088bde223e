"""A real registry server (uvicorn on 127.0.0.1, a random port) over a real database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelseal.access.roles import Principal
from tests.registry.fixtures import (  # noqa: F401
    Env,
    db_url,
    open_env,
    pg_url,
    signed_model,
    sqlite_url,
)


@dataclass
class Running:
    env: Env
    url: str
    server: Any
    thread: threading.Thread

    def token_for(self, user: str, *roles: str, scope: str = "*") -> str:
        from modelseal.access import principals

        reg, admin = self.env.registry, self.env.admin
        reg.run(admin, principals.CreateUser(name=user))
        for role in roles:
            reg.run(admin, principals.GrantRole(name=user, role=role, scope=scope))
        return str(reg.run(admin, principals.CreateToken(name=user)).token)


def start_server(env: Env, *, app_options: dict[str, Any] | None = None, **ssl: Any) -> Running:
    import uvicorn

    from modelseal.server.app import create_app

    app = create_app(env.registry, **(app_options or {}))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **ssl)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    scheme = "https" if ssl else "http"
    return Running(env, f"{scheme}://127.0.0.1:{port}", server, thread)


def stop_server(running: Running) -> None:
    running.server.should_exit = True
    running.thread.join(timeout=30)


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Running]:  # noqa: F811
    env = open_env(tmp_path / "home", db_url)
    running = start_server(env)
    try:
        yield running
    finally:
        stop_server(running)
        env.registry.close()


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Running]:
    env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'registry.db'}")
    running = start_server(env)
    try:
        yield running
    finally:
        stop_server(running)
        env.registry.close()


__all__ = ["Principal", "Running"]
