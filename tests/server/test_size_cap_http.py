"""Over HTTP, a file past the registry's ``max_file_bytes`` is a 413 with a JSON body, and the
client raises the same error as the embedded store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from modelseal.client import Client as RemoteBackend
from modelseal.errors import NotFoundError, TooLargeError
from modelseal.registry.backend import push
from modelseal.registry.core import Registry
from modelseal.registry.versions import ListVersions
from tests.registry.fixtures import Env, SignedModel, open_env
from tests.server.conftest import start_server, stop_server


def test_over_the_cap_is_413_with_a_json_body(
    tmp_path: Path, signed_model: SignedModel, sqlite_url: str
) -> None:
    opened = open_env(tmp_path / "home", sqlite_url)
    opened.registry.close()
    config = dataclasses.replace(opened.config, max_file_bytes=50_000)
    env = Env(config, Registry.open(config), opened.admin)
    running = start_server(env)
    try:
        token = running.token_for("dana", "data-scientist")
        sm = signed_model
        client = RemoteBackend(running.url, token=token)
        with pytest.raises(TooLargeError, match="larger than this registry accepts"):
            push(client, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
        with pytest.raises(NotFoundError):
            client.call(ListVersions(name="m"))  # nothing half-published

        auth = {"Authorization": f"Bearer {token}"}
        begun = httpx.post(
            f"{running.url}/v1/models/m/uploads",
            json={"bundle": sm.signature.read_text(), "public_key": sm.public_key.read_text()},
            headers=auth,
        )
        assert begun.status_code == 200, begun.text
        response = httpx.put(
            f"{running.url}/v1/uploads/{begun.json()['upload_id']}/files/weights/model-00001.bin",
            content=(sm.path / "weights" / "model-00001.bin").read_bytes(),
            headers=auth,
        )
        assert response.status_code == 413
        error = response.json()["error"]
        assert error["type"] == "TooLargeError" and "max_file_bytes" in error["hint"]
    finally:
        stop_server(running)
        env.registry.close()
