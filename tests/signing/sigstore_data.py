"""The real public Sigstore keyless bundles the tests verify (tests/signing/data/sigstore),
what they were signed as, and the fixture that cuts the network for tests that use them."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data" / "sigstore"
PRODUCTION = DATA / "trusted_root" / "production.json"
STAGING = DATA / "trusted_root" / "staging.json"
IDENTITY = "stefanb@us.ibm.com"
ISSUER = "https://sigstore.verify.ibm.com/oauth2"
SIGNER = f"sigstore {IDENTITY} from issuer {ISSUER}"
ROOT_DIGEST = "61d4849d9d90076d6215f4d525f13d6574af8e3f67aef3e6f36fc40a14fdd226"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may open a network connection (verification is offline by design)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
