"""Crash consistency: kill -9 the server during an upload and during alias moves, restart it,
and find no partial state: no half-visible version, aliases that match their audit records, a
log that verifies, and orphaned blobs and uploads that GC collects."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelseal.access import principals
from modelseal.audit.verify import verify_log
from modelseal.client import Client as RemoteBackend
from modelseal.errors import NotFoundError
from modelseal.registry.backend import pull, push
from modelseal.registry.gc import CollectGarbage
from modelseal.registry.models import Lineage, VersionRef
from modelseal.registry.receive import UploadFile
from modelseal.registry.uploads import BeginUpload
from modelseal.registry.versions import ListModels, ListVersions, ResolveVersion, SetAlias
from modelseal.store import db
from tests.policy.fixtures import admit
from tests.registry.fixtures import Env, SignedModel, open_env


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, home: Path, db_url: str) -> None:
        self.home, self.db_url = home, db_url
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "MODELSEAL_HOME": str(self.home)}
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - the server owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelseal", "registry", "serve", "--port", str(self.port),
             "--db-url", self.db_url],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.home / "server.log").read_text())
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def crashable(db_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, Env]]:
    home = tmp_path / "home"
    env = open_env(home, db_url)  # creates the schema, the log key and the admin's view
    server = ServerProcess(home, db_url)
    try:
        yield server, env
    finally:
        server.stop()
        env.registry.close()


def _token(env: Env, user: str, *roles: str) -> str:
    env.registry.run(env.admin, principals.CreateUser(name=user))
    for role in roles:
        env.registry.run(env.admin, principals.GrantRole(name=user, role=role))
    return str(env.registry.run(env.admin, principals.CreateToken(name=user)).token)


def _verify(env: Env) -> None:
    with db.reading(env.engine()) as conn:
        verify_log(conn, env.registry.audit.signer.verifier).raise_for_findings()


def test_kill_during_upload(
    crashable: tuple[ServerProcess, Env], signed_model: SignedModel, tmp_path: Path
) -> None:
    server, env = crashable
    sm = signed_model
    big = sm.path / "weights" / "model-00001.bin"
    big.write_bytes(b"\x00" + os.urandom((12 << 20) - 1))  # raw weights, not pickle-like
    sm.resign()
    token = _token(env, "dana", "data-scientist", "ml-engineer")
    server.start()
    client = RemoteBackend(server.url, token=token)
    upload = client.call(BeginUpload(
        name="m", bundle=sm.signature.read_text(), public_key=sm.public_key.read_text(),
        metadata={}, lineage=Lineage(),
    ))  # fmt: skip
    sent = threading.Event()

    def slow_chunks() -> Iterator[bytes]:
        with open(big, "rb") as f:
            for i, chunk in enumerate(iter(lambda: f.read(1 << 20), b"")):
                if i == 6:
                    sent.set()
                    time.sleep(30)  # the server dies meanwhile
                yield chunk

    failure: list[BaseException] = []

    def send() -> None:
        try:
            target = UploadFile(upload_id=upload.upload_id, path="weights/model-00001.bin")
            client.send(target, slow_chunks())
        except BaseException as exc:
            failure.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    assert sent.wait(60)
    time.sleep(0.3)
    server.kill()
    # After the crash: nothing visible, the log verifies.
    with pytest.raises(NotFoundError):
        env.registry.run(env.admin, ListVersions(name="m"))
    _verify(env)
    server.start()
    client = RemoteBackend(server.url, token=token)
    assert client.call(ListModels()) == []
    report = env.registry.run(env.admin, CollectGarbage(grace_seconds=0))
    assert report.uploads_expired == 1 and report.temporaries_deleted >= 1
    assert not list(env.registry.blobs.temporaries())
    # The same push completes after the restart.
    info = push(client, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    assert info.version == 1
    pull(client, VersionRef.parse("m"), tmp_path / "out")
    _verify(env)


def test_kill_during_alias_moves(
    crashable: tuple[ServerProcess, Env], signed_model: SignedModel
) -> None:
    server, env = crashable
    sm = signed_model
    token = _token(env, "otto", "devops", "data-scientist")
    server.start()
    client = RemoteBackend(server.url, token=token)
    for _ in range(2):
        push(client, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    admit(env.registry, env.admin, sm, "m", 1, 2)  # production needs the gate's decisions
    done: list[int] = []
    stop = threading.Event()

    def mover() -> None:
        mover_client = RemoteBackend(server.url, token=token, timeout=10)
        i = 0
        while not stop.is_set() and i < 5000:
            try:
                mover_client.call(SetAlias(name="m", alias="production", version=1 + i % 2))
            except Exception:
                return
            done.append(1 + i % 2)
            i += 1

    thread = threading.Thread(target=mover, daemon=True)
    thread.start()
    while len(done) < 20:
        time.sleep(0.01)
    server.kill()
    stop.set()
    thread.join(timeout=30)
    # The alias is where the last recorded move put it; every acknowledged move is recorded
    # (at most one more committed whose answer the crash swallowed).
    with db.reading(env.engine()) as conn:
        moves = [r for r in env.registry.audit.records(conn) if r.action == "alias.move"]
    current = env.registry.run(env.admin, ResolveVersion(name="m", alias="production")).version
    assert moves and current == moves[-1].details["to"]
    assert len(done) <= len(moves) <= len(done) + 1
    _verify(env)
    server.start()
    client = RemoteBackend(server.url, token=token)
    assert client.call(SetAlias(name="m", alias="production", version=1)).version == 1
    _verify(env)
