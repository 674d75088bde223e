"""Every shape of model a user pushes and pulls, every way: a single file and a directory, in
plaintext and encrypted, in process and over HTTP, on SQLite and PostgreSQL, with blobs in a
local folder and in S3 (moto's server, an emulator). Each pull gives back exactly the bytes
that were signed, with no false tamper alarm."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelseal.access import principals
from modelseal.client import Client
from modelseal.crypto.providers.local import LocalProvider
from modelseal.registry.backend import Backend, LocalBackend, pull, push
from modelseal.registry.models import VersionRef
from tests.registry.fixtures import Env, SignedModel, make_signed_model, open_env
from tests.server.conftest import start_server, stop_server


def _digests(root: Path) -> dict[str, str]:
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _single_file(root: Path, key_pair: tuple[Path, Path]) -> SignedModel:
    import modelseal

    root.mkdir(parents=True)
    model = root / "model.safetensors"
    model.write_bytes(bytes(range(256)) * 4000)
    signature = root / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=signature)
    return SignedModel(model, signature, key_pair[1], key_pair[0])


def _round_trip(backend: Backend, model: SignedModel, tmp_path: Path, kek: object) -> None:
    pushed = push(backend, model.path, name="shape", signature=model.signature,
                  public_key=model.public_key, kek=kek)  # type: ignore[arg-type]  # fmt: skip
    assert pushed.encrypted is (kek is not None)
    dest = tmp_path / "pulled"
    pulled = pull(backend, VersionRef("shape", number=pushed.version), dest,
                  kek=kek)  # type: ignore[arg-type]  # fmt: skip
    assert pulled.root_digest == pushed.root_digest
    assert _digests(dest) == _digests(model.path)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    opened = open_env(tmp_path / "home", db_url)
    try:
        yield opened
    finally:
        opened.registry.close()


def _backend(env: Env, transport: str) -> Iterator[Backend]:
    if transport == "in-process":
        yield LocalBackend(env.registry, env.admin)
        return
    running = start_server(env)
    reg, admin = env.registry, env.admin
    reg.run(admin, principals.CreateUser(name="shaper"))
    for role in ("data-scientist", "ml-engineer"):
        reg.run(admin, principals.GrantRole(name="shaper", role=role))
    client = Client(running.url, token=reg.run(admin, principals.CreateToken(name="shaper")).token)
    try:
        yield client
    finally:
        client.close()
        stop_server(running)


@pytest.mark.parametrize("transport", ["in-process", "http"])
@pytest.mark.parametrize("shape", ["file", "directory"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_push_and_pull_every_shape(
    env: Env,
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    transport: str,
    shape: str,
    encrypted: bool,
) -> None:
    model = (
        _single_file(tmp_path / "m", key_pair)
        if shape == "file"
        else make_signed_model(tmp_path / "m", key_pair)
    )
    kek = LocalProvider.create(tmp_path / "kek.json", passphrase=None) if encrypted else None
    for backend in _backend(env, transport):
        _round_trip(backend, model, tmp_path, kek)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.mark.parametrize("shape", ["file", "directory"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_push_and_pull_with_blobs_in_s3_over_http(
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key_pair: tuple[Path, Path],
    shape: str,
    encrypted: bool,
) -> None:
    import boto3  # type: ignore[import-untyped]

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1"),
                        ("MODELSEAL_S3_ENDPOINT_URL", s3_endpoint)):  # fmt: skip
        monkeypatch.setenv(name, value)
    bucket = f"shapes-{shape}-{'enc' if encrypted else 'plain'}-{tmp_path.name[-8:].lower()}"
    bucket = bucket.replace("_", "-").strip("-")
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    opened = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'r.db'}",
                      blob_url=f"s3://{bucket}/registry")  # fmt: skip
    try:
        model = (
            _single_file(tmp_path / "m", key_pair)
            if shape == "file"
            else make_signed_model(tmp_path / "m", key_pair)
        )
        kek = LocalProvider.create(tmp_path / "kek.json", passphrase=None) if encrypted else None
        for backend in _backend(opened, "http"):
            _round_trip(backend, model, tmp_path, kek)
    finally:
        opened.registry.close()
