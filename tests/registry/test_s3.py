"""Blobs in S3, tested against moto's S3 server (an emulator on 127.0.0.1, not AWS): push, pull,
dedup, corruption detection and GC through s3fs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelseal.registry.backend import LocalBackend, pull, push
from modelseal.registry.blobs import BlobStore
from modelseal.registry.gc import CollectGarbage
from modelseal.registry.models import VersionRef
from tests.registry.fixtures import Env, SignedModel, open_env


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


@pytest.fixture
def s3_env(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> Iterator[Env]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MODELSEAL_S3_ENDPOINT_URL", s3_endpoint)
    bucket = f"models-{tmp_path.name[-20:].lower().replace('_', '-')}".strip("-")
    import boto3  # type: ignore[import-untyped]

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    env = open_env(tmp_path / "home", sqlite_url, blob_url=f"s3://{bucket}/registry")
    try:
        yield env
    finally:
        env.registry.close()


def local(env: Env) -> LocalBackend:
    return LocalBackend(env.registry, env.admin)


def test_s3_round_trip_dedup_and_gc(s3_env: Env, signed_model: SignedModel, tmp_path: Path) -> None:
    sm, b = signed_model, local(s3_env)
    store: BlobStore = s3_env.registry.blobs
    assert not store.local
    info = push(b, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    count = sum(1 for _ in store.digests())
    assert count == len({f.sha256 for f in info.files})
    push(b, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    assert sum(1 for _ in store.digests()) == count  # stored once
    pull(b, VersionRef.parse("m:2"), tmp_path / "out")
    assert (tmp_path / "out" / "weights" / "model-00001.bin").read_bytes() == (
        sm.path / "weights" / "model-00001.bin"
    ).read_bytes()
    orphan = store.put([b"left behind by a crash"])
    assert store.exists(orphan.digest)
    report = b.call(CollectGarbage(grace_seconds=0))
    assert report.blobs_deleted == 1 and not store.exists(orphan.digest)
    assert sum(1 for _ in store.digests()) == count and not list(store.temporaries())


def test_s3_corruption_is_caught_on_download(
    s3_env: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    sm, b = signed_model, local(s3_env)
    info = push(b, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
    blob = next(f.sha256 for f in info.files if f.path == "config.json")
    store: BlobStore = s3_env.registry.blobs
    with store.fs.open(store.path(blob), "wb") as handle:
        handle.write(b"{}")
    with pytest.raises(Exception, match="does not match"):
        pull(b, VersionRef.parse("m"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
