"""Registry models are served from a download into memory, verified once: a blob whose size
is not the recorded one, and a registry that answers with another model than the one asked
for, are refused before anything is loaded; nothing of the model is written to disk."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from modelseal.errors import DigestMismatchError, UsageError
from modelseal.registry.backend import LocalBackend, download_to_memory, push
from modelseal.registry.models import VersionRef
from modelseal.registry.versions import GetDownload
from modelseal.serving.source import ModelSource, load_source
from tests.registry.fixtures import Env
from tests.serving.conftest import SKLEARN_ALLOW, make_model
from tests.serving.test_registry import _push, _trust


@pytest.fixture
def pushed(registry: Env, tmp_path: Path, key_pair: tuple[Path, Path]) -> Env:
    _trust(registry, key_pair[1])
    assert _push(registry, make_model("sklearn", tmp_path / "m", key_pair), "clf") == 1
    assert _push(registry, make_model("xgboost", tmp_path / "x", key_pair), "other") == 1
    return registry


def test_a_registry_model_loads_from_memory_without_writing_it(
    pushed: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    backend = LocalBackend(pushed.registry, pushed.admin)
    loaded = load_source(ModelSource("clf", ref="clf:1", allow=SKLEARN_ALLOW), backend)
    assert loaded.version == "1" and loaded.runtime.framework == "sklearn"
    assert list(scratch.iterdir()) == []  # no pull folder, no staged file


def test_a_blob_of_another_size_is_refused(pushed: Env) -> None:
    backend = LocalBackend(pushed.registry, pushed.admin)
    info = backend.call(GetDownload(name="clf", version=1))
    (digest,) = {f.sha256 for f in info.files}
    (blob,) = [p for p in (pushed.config.home / "blobs").rglob("*")
               if p.is_file() and digest in str(p)]  # fmt: skip
    blob.chmod(0o600)
    blob.write_bytes(blob.read_bytes() + b"extra")
    with pytest.raises(DigestMismatchError, match=r"not the \d+ bytes recorded"):
        download_to_memory(backend, VersionRef.parse("clf:1"))


class Substituting(LocalBackend):
    """A registry that answers every download with the version of another model."""

    def call(self, operation: Any) -> Any:
        if isinstance(operation, GetDownload):
            operation = operation.model_copy(update={"name": "other"})
        return super().call(operation)


def test_another_model_in_the_answer_is_refused(pushed: Env) -> None:
    backend = Substituting(pushed.registry, pushed.admin)
    with pytest.raises(DigestMismatchError, match="answered other:1 for clf"):
        download_to_memory(backend, VersionRef.parse("clf:1"))


def test_bytes_and_decryption_keys_do_not_go_together(tmp_path: Path) -> None:
    from modelseal.loading.verified import load_verified

    with pytest.raises(UsageError, match="not both"):
        load_verified(tmp_path / "m", signature=tmp_path / "m.sig", contents={".": b"x"},
                      key_provider="local:kek.json")  # fmt: skip


@pytest.fixture
def encrypted(registry: Env, tmp_path: Path, key_pair: tuple[Path, Path]) -> tuple[Env, Any]:
    """A scikit-learn model pushed encrypted under a local KEK; the KEK."""
    from modelseal.crypto.providers.local import LocalProvider

    _trust(registry, key_pair[1])
    kek = LocalProvider.create(tmp_path / "kek.json", passphrase=None)
    model = make_model("sklearn", tmp_path / "m", key_pair)
    push(LocalBackend(registry.registry, registry.admin), model.path, name="clf",
         signature=model.signature, public_key=model.public_key, kek=kek)  # fmt: skip
    return registry, kek


def test_an_encrypted_version_is_served_with_its_kek_and_decrypted_in_memory(
    encrypted: tuple[Env, Any], tmp_path: Path
) -> None:
    from modelseal.crypto.providers.local import LocalProvider
    from modelseal.errors import KeyRequiredError, UnwrapError

    env, kek = encrypted
    backend = LocalBackend(env.registry, env.admin)
    source = ModelSource("clf", ref="clf:1", allow=SKLEARN_ALLOW)
    with pytest.raises(KeyRequiredError, match="is encrypted"):
        load_source(source, backend)
    other = LocalProvider.create(tmp_path / "other.json", passphrase=None)
    with pytest.raises(UnwrapError):
        load_source(dataclasses.replace(source, kek=other), backend)
    loaded = load_source(dataclasses.replace(source, kek=kek), backend)
    assert loaded.version == "1" and loaded.warm_error == ""


def test_a_tampered_ciphertext_is_refused(encrypted: tuple[Env, Any]) -> None:
    from modelseal.errors import BlobCorruptError

    env, kek = encrypted
    backend = LocalBackend(env.registry, env.admin)
    blobs = [b for b in (env.config.home / "blobs").rglob("*") if b.is_file()]
    assert blobs  # the one version's ciphertext (nothing else was pushed)
    for blob in blobs:
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0x01
        blob.chmod(0o600)
        blob.write_bytes(bytes(data))
    with pytest.raises(BlobCorruptError):  # the store checks a blob's digest as it reads it
        download_to_memory(backend, VersionRef.parse("clf:1"), kek=kek)
