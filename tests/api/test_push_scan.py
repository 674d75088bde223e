"""The registry scans every pushed version: a clean one is published with its report, one with
a finding is refused (default) or quarantined (by policy) until a security engineer releases it,
and an encrypted push is scanned by the pushing client before anything is encrypted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import modelseal
from modelseal.access.roles import Grant, Principal
from modelseal.crypto.providers.local import LocalProvider
from modelseal.errors import ConflictError, InputError, PermissionDeniedError, UnsafeModelError
from modelseal.registry.audit_trail import ListAuditRecords
from modelseal.registry.backend import LocalBackend, pull, push
from modelseal.registry.config import RegistryConfig
from modelseal.registry.models import VersionRef
from modelseal.registry.push_scan import check_policy
from modelseal.registry.versions import (
    GetDownload,
    GetScanReport,
    ListVersions,
    ReleaseVersion,
    ResolveVersion,
    SetAlias,
)
from tests.registry.fixtures import Env, SignedModel

# A pickle that would run a shell command when loaded (built here, never loaded).
PAYLOAD = b"cos\nsystem\n(S'echo owned'\ntR."


def _signed(root: Path, key_pair: tuple[Path, Path], *, malicious: bool) -> SignedModel:
    model = root / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"layers": 2}\n')
    (model / "weights.pkl").write_bytes(PAYLOAD if malicious else b"\x80\x04K\x07.")
    signature = root / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=signature)
    return SignedModel(model, signature, key_pair[1], key_pair[0])


def _push(backend: LocalBackend, model: SignedModel, kek: LocalProvider | None = None) -> Any:
    return push(backend, model.path, name="m", signature=model.signature,
                public_key=model.public_key, kek=kek)  # fmt: skip


def test_a_clean_push_records_its_scan(
    registry: Env, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    backend = LocalBackend(registry.registry, registry.admin)
    version = _push(backend, _signed(tmp_path, key_pair, malicious=False))
    assert version.scan is not None and version.scan.status == "clean"
    assert not version.quarantined
    report = backend.call(GetScanReport(name="m", number=1))
    assert report.status == "clean"
    assert sorted(f["path"] for f in report.report["files"]) == ["config.json", "weights.pkl"]


def test_an_unsafe_push_is_refused_and_audited(
    registry: Env, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    backend = LocalBackend(registry.registry, registry.admin)
    model = _signed(tmp_path, key_pair, malicious=True)
    with pytest.raises(UnsafeModelError, match="unsafe") as caught:
        _push(backend, model)
    assert caught.value.exit_code == 1 and "critical" in caught.value.message
    with pytest.raises(Exception, match="unknown model"):
        backend.call(ListVersions(name="m"))
    denied = [r for r in backend.call(ListAuditRecords())
              if r.action == "version.publish" and r.outcome == "denied"]  # fmt: skip
    assert denied and denied[-1].details["scan"] == "unsafe"


def test_quarantine_holds_a_version_until_it_is_released(
    registry: Env, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    registry.registry.push_scan = "quarantine"
    backend = LocalBackend(registry.registry, registry.admin)
    clean = _signed(tmp_path / "clean", key_pair, malicious=False)
    _push(backend, clean)
    version = _push(backend, _signed(tmp_path / "bad", key_pair, malicious=True))
    assert version.quarantined and version.scan.status == "unsafe"
    assert "critical" in version.scan.summary
    # Not downloadable, no alias, never "latest".
    with pytest.raises(ConflictError, match="quarantined"):
        backend.call(GetDownload(name="m", version=2))
    with pytest.raises(ConflictError, match="quarantined"):
        backend.call(SetAlias(name="m", alias="production", version=2))
    assert backend.call(ResolveVersion(name="m")).version == 1
    with pytest.raises(ConflictError, match="quarantined"):
        pull(backend, VersionRef("m", number=2), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # Only a security engineer releases it; the release is audited with its reason.
    scientist = LocalBackend(registry.registry, Principal("dana", (Grant("data-scientist"),)))
    with pytest.raises(PermissionDeniedError):
        scientist.call(ReleaseVersion(name="m", number=2, reason="false positive"))
    security = LocalBackend(registry.registry, Principal("sam", (Grant("security-engineer"),)))
    released = security.call(ReleaseVersion(name="m", number=2, reason="reviewed: test fixture"))
    assert not released.quarantined
    assert backend.call(GetDownload(name="m", version=2)).version == 2
    with pytest.raises(ConflictError, match="not quarantined"):
        security.call(ReleaseVersion(name="m", number=2, reason="again"))
    actions = [(r.action, r.outcome) for r in backend.call(ListAuditRecords())]
    assert ("version.release", "allowed") in actions


def test_an_encrypted_push_is_scanned_before_encrypting(
    registry: Env, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    backend = LocalBackend(registry.registry, registry.admin)
    kek = LocalProvider.create(tmp_path / "kek.json", passphrase=None)
    with pytest.raises(UnsafeModelError):
        _push(backend, _signed(tmp_path / "bad", key_pair, malicious=True), kek=kek)
    assert not any(registry.registry.blobs.digests())  # not one ciphertext byte was stored
    version = _push(backend, _signed(tmp_path / "ok", key_pair, malicious=False), kek=kek)
    assert version.scan.status == "client-clean"


@pytest.mark.parametrize("value", ["allow", "", "REFUSE!"])
def test_bad_policies_are_refused(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match="push_scan"):
        check_policy(value)
    monkeypatch.setenv("MODELSEAL_PUSH_SCAN", "sometimes")
    with pytest.raises(InputError, match="push_scan"):
        RegistryConfig.resolve(home=tmp_path)


def test_the_policy_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert RegistryConfig.resolve(home=tmp_path).push_scan == "refuse"
    monkeypatch.setenv("MODELSEAL_PUSH_SCAN", "Quarantine")
    assert RegistryConfig.resolve(home=tmp_path).push_scan == "quarantine"
