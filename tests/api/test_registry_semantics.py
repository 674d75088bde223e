"""What a deleted version looks like afterwards, and that downloads leave a trace."""

from __future__ import annotations

from pathlib import Path

from modelseal.registry.audit_trail import ListAuditRecords
from modelseal.registry.backend import LocalBackend, pull, push
from modelseal.registry.models import VersionRef
from modelseal.registry.versions import DeleteVersion, ListModels, ListVersions, ResolveVersion
from tests.registry.fixtures import Env, SignedModel


def _two_versions(env: Env, model: SignedModel) -> LocalBackend:
    backend = LocalBackend(env.registry, env.admin)
    for _ in range(2):
        push(backend, model.path, name="m", signature=model.signature,
             public_key=model.public_key)  # fmt: skip
    return backend


def test_a_deleted_version_is_neither_listed_nor_latest(
    registry: Env, signed_model: SignedModel
) -> None:
    backend = _two_versions(registry, signed_model)
    backend.call(DeleteVersion(name="m", number=2, reason="bad data"))
    assert [v.version for v in backend.call(ListVersions(name="m"))] == [1]
    every = backend.call(ListVersions(name="m", include_deleted=True))
    assert [(v.version, v.deleted) for v in every] == [(1, False), (2, True)]
    assert backend.call(ListModels())[0].latest_version == 1
    assert backend.call(ResolveVersion(name="m")).version == 1
    backend.call(DeleteVersion(name="m", number=1, reason="bad data"))
    assert backend.call(ListModels())[0].latest_version is None


def test_every_downloaded_file_is_audited(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    backend = _two_versions(registry, signed_model)
    info = pull(backend, VersionRef("m", number=2), tmp_path / "out")
    downloads = [r for r in backend.call(ListAuditRecords()) if r.action == "model.download"]
    assert sorted(r.details["path"] for r in downloads) == sorted(f.path for f in info.files)
    assert {r.resource for r in downloads} == {"model/m/versions/2"}
    assert {r.digest for r in downloads} == {f"sha256:{info.root_digest.sha256}"}
    assert all(r.outcome == "allowed" for r in downloads)
