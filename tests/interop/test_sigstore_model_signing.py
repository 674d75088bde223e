"""modelseal and model_signing 1.1.1 agree on real Sigstore keyless OMS bundles, both verifying
offline against the same trusted root (model_signing through a client trust config holding it;
the network is cut): the signer's identity and issuer accepted, another identity or issuer
refused, a tampered model file refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import modelseal
from modelseal.errors import VerificationError
from modelseal.signing.sigstore_keyless import SigstoreIdentity, SigstoreTrust
from tests.signing.sigstore_data import DATA, IDENTITY, ISSUER, PRODUCTION, offline  # noqa: F401

pytestmark = pytest.mark.interop


@pytest.fixture
def trust_config(tmp_path: Path) -> Path:
    """model_signing's form of the trusted root: a client trust config (no signing services)."""
    path = tmp_path / "trust_config.json"
    config = {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": json.loads(PRODUCTION.read_text()),
        "signingConfig": {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"},
    }
    path.write_text(json.dumps(config))
    return path


def _model_signing_accepts(model: Path, identity: str, issuer: str, config: Path) -> bool:
    import model_signing

    verifying = model_signing.verifying.Config()  # type: ignore[no-untyped-call]
    verifier = verifying.use_sigstore_verifier(
        identity=identity, oidc_issuer=issuer, trust_config=config
    )
    try:
        verifier.verify(model, model / "model.sig")
    except Exception:  # model_signing raises ValueError or sigstore's errors
        return False
    return True


def _modelseal_accepts(model: Path, identity: str, issuer: str) -> bool:
    trust = SigstoreTrust(PRODUCTION, (SigstoreIdentity(issuer=issuer, identity=identity),))
    try:
        modelseal.verify(model, signature=model / "model.sig", sigstore=trust)
    except VerificationError:
        return False
    return True


@pytest.mark.parametrize(
    ("identity", "issuer", "tamper", "accepted"),
    [
        (IDENTITY, ISSUER, False, True),
        ("other@us.ibm.com", ISSUER, False, False),
        (IDENTITY, "https://accounts.google.com", False, False),
        (IDENTITY, ISSUER, True, False),
    ],
    ids=["signer", "other-identity", "other-issuer", "tampered-file"],
)
def test_both_tools_reach_the_same_verdict(
    tmp_path: Path,
    trust_config: Path,
    identity: str,
    issuer: str,
    tamper: bool,
    accepted: bool,
) -> None:
    model = Path(shutil.copytree(DATA / "v1.1.0-sigstore", tmp_path / "model"))
    if tamper:
        (model / "signme-2").write_bytes(b"signme-X")
    assert _model_signing_accepts(model, identity, issuer, trust_config) is accepted
    assert _modelseal_accepts(model, identity, issuer) is accepted
