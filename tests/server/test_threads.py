"""The server's worker-thread limit (requests handled at once): set from the configuration or
``registry serve --threads``, applied to the event loop the app runs on; bad values refused."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from modelseal.errors import InputError
from modelseal.registry.config import DEFAULT_SERVER_THREADS, RegistryConfig
from modelseal.server.app import create_app
from tests.cli.test_cli_errors import Run, assert_one_line_error
from tests.registry.fixtures import open_env


def _tokens() -> float:
    return anyio.to_thread.current_default_thread_limiter().total_tokens


@pytest.mark.parametrize("threads", [1, 7, 64])
def test_app_sets_the_worker_thread_limit(sqlite_url: str, tmp_path: Path, threads: int) -> None:
    env = open_env(tmp_path / "home", sqlite_url)
    try:
        with TestClient(create_app(env.registry, threads=threads)) as client:
            assert client.portal is not None
            assert client.portal.call(_tokens) == threads
            assert client.get("/v1/health").status_code == 200
    finally:
        env.registry.close()


def test_server_threads_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSEAL_SERVER_THREADS", raising=False)
    assert RegistryConfig.resolve(home=tmp_path).server_threads == DEFAULT_SERVER_THREADS == 40
    (tmp_path / "config.toml").write_text("[registry]\nserver_threads = 12\n")
    assert RegistryConfig.resolve(home=tmp_path).server_threads == 12
    monkeypatch.setenv("MODELSEAL_SERVER_THREADS", "64")
    assert RegistryConfig.resolve(home=tmp_path).server_threads == 64
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("MODELSEAL_SERVER_THREADS", bad)
        with pytest.raises(InputError, match="invalid server_threads") as caught:
            RegistryConfig.resolve(home=tmp_path)
        assert caught.value.hint == "use a whole number of at least 1"


@pytest.mark.parametrize("value", ["0", "lots"])
def test_serve_refuses_a_bad_thread_count(run_cli: Run, tmp_path: Path, value: str) -> None:
    code, _out, err = run_cli(
        "registry", "serve", "--threads", value, "--home", str(tmp_path / "home")
    )
    assert_one_line_error(code, err, 2, "--threads")


def test_serve_passes_threads_over_the_setting(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--threads`` wins over ``server_threads``; without it the setting is used (the server
    itself is replaced by a recorder: starting uvicorn here would block)."""
    import modelseal.server.run as run_module

    seen: list[int] = []
    monkeypatch.setattr(
        run_module, "serve", lambda config, **_kw: seen.append(config.server_threads)
    )
    monkeypatch.setenv("MODELSEAL_SERVER_THREADS", "12")
    home = str(tmp_path / "home")
    assert run_cli("registry", "serve", "--home", home)[0] == 0
    assert run_cli("registry", "serve", "--threads", "9", "--home", home)[0] == 0
    assert seen == [12, 9]
