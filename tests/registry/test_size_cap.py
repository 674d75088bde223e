"""The registry's cap on one file of an upload (``max_file_bytes``): nothing past it is written,
the refusal is audited, the CLI and the HTTP API say what to do (exit 2, HTTP 413)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelseal.errors import InputError, NotFoundError, TooLargeError
from modelseal.registry.backend import push
from modelseal.registry.config import DEFAULT_MAX_FILE_BYTES, RegistryConfig
from modelseal.registry.core import Registry
from modelseal.registry.receive import UploadFile
from modelseal.registry.uploads import BeginUpload
from modelseal.registry.versions import ListVersions
from tests.registry.fixtures import Env, SignedModel, make_signed_model, open_env
from tests.registry.test_encrypted import audit, backend, new_kek

BIGGEST = 70_000  # the largest file of the test model (tests/conftest.py build_model)


def _capped(env: Env, cap: int) -> Env:
    config = dataclasses.replace(env.config, max_file_bytes=cap)
    env.registry.close()
    return Env(config, Registry.open(config), env.admin)


def _denials(env: Env) -> list[str]:
    return [r.reason for r in audit(env) if r.outcome != "allow"]


def test_a_file_over_the_cap_is_refused_and_audited(
    registry: Env, signed_model: SignedModel
) -> None:
    env = _capped(registry, BIGGEST - 1)
    try:
        store = backend(env)
        sm = signed_model
        with pytest.raises(TooLargeError, match="larger than this registry accepts") as err:
            push(store, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
        assert err.value.exit_code == 2 and "max_file_bytes" in err.value.hint
        assert any("larger than this registry accepts" in r for r in _denials(env))
        with pytest.raises(NotFoundError):
            store.call(ListVersions(name="m"))  # nothing half-published
        assert not list(env.registry.blobs.temporaries())  # nothing left behind
    finally:
        env.registry.close()
    env = _capped(registry, BIGGEST)
    try:  # at the cap exactly: accepted
        store = backend(env)
        push(store, sm.path, name="m", signature=sm.signature, public_key=sm.public_key)
        assert [v.version for v in store.call(ListVersions(name="m"))] == [1]
    finally:
        env.registry.close()


def test_a_shards_signature_over_the_cap_is_refused_before_reading(
    tmp_path: Path, key_pair: tuple[Path, Path], sqlite_url: str
) -> None:
    sm = make_signed_model(tmp_path, key_pair, shard_size=16_384)
    env = _capped(open_env(tmp_path / "home", sqlite_url), BIGGEST - 1)
    try:
        reg, admin = env.registry, env.admin
        upload = reg.run(admin, BeginUpload(name="m", bundle=sm.signature.read_text(),
                                            public_key=sm.public_key.read_text()))  # fmt: skip
        read: list[int] = []

        def body() -> Iterator[bytes]:
            read.append(1)
            yield (sm.path / "weights" / "model-00001.bin").read_bytes()

        with pytest.raises(TooLargeError):
            target = UploadFile(upload_id=upload.upload_id, path="weights/model-00001.bin")
            reg.receive(admin, target, body())
        assert read == []  # refused from the signed sizes alone: not one byte was read
        assert not list(reg.blobs.temporaries())
    finally:
        env.registry.close()


def test_encrypted_pushes_are_capped_too(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    env = _capped(registry, BIGGEST - 1)
    try:
        store = backend(env)
        sm = signed_model
        kek = new_kek(tmp_path / "kek.json")
        with pytest.raises(TooLargeError):
            push(store, sm.path, name="m", signature=sm.signature, public_key=sm.public_key,
                 kek=kek)  # fmt: skip
    finally:
        env.registry.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, DEFAULT_MAX_FILE_BYTES), ("1000", 1000), ("2GiB", 2 << 30), ("3 t", 3 * 1000**4),
     ("5MB", 5_000_000), ("1tib", 1 << 40)],
)  # fmt: skip
def test_max_file_bytes_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int
) -> None:
    if value is None:
        monkeypatch.delenv("MODELSEAL_MAX_FILE_BYTES", raising=False)
    else:
        monkeypatch.setenv("MODELSEAL_MAX_FILE_BYTES", value)
    assert RegistryConfig.resolve(home=tmp_path).max_file_bytes == expected


@pytest.mark.parametrize("value", ["-1", "0", "ten", "5 PB", "1.5G"])
def test_max_file_bytes_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MODELSEAL_MAX_FILE_BYTES", value)
    with pytest.raises(InputError, match="invalid max_file_bytes"):
        RegistryConfig.resolve(home=tmp_path)


def test_max_file_bytes_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELSEAL_MAX_FILE_BYTES", raising=False)
    (tmp_path / "config.toml").write_text('[registry]\nmax_file_bytes = "500GiB"\n')
    assert RegistryConfig.resolve(home=tmp_path).max_file_bytes == 500 << 30
    (tmp_path / "config.toml").write_text("[registry]\nmax_file_bytes = 4096\n")
    assert RegistryConfig.resolve(home=tmp_path).max_file_bytes == 4096
