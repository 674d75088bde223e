"""The server over TLS with a certificate and key, and the client trusting its CA through
MODELSEAL_CA_BUNDLE; a client that does not trust it fails with one clear error."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from modelseal.client import Client as RemoteBackend
from modelseal.errors import InputError, ServerError
from modelseal.registry.versions import ListModels
from tests.registry.fixtures import open_env
from tests.server.conftest import start_server, stop_server


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip
    return cert_path, key_path


def test_tls(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    env = open_env(tmp_path / "home", sqlite_url)
    running = start_server(env, ssl_certfile=str(cert), ssl_keyfile=str(key))
    try:
        assert running.url.startswith("https://")
        token = running.token_for("alice", "ml-engineer")
        monkeypatch.delenv("MODELSEAL_CA_BUNDLE", raising=False)
        untrusting = RemoteBackend(running.url, token=token)
        with pytest.raises(ServerError, match="cannot reach"):
            untrusting.call(ListModels())
        untrusting.close()
        monkeypatch.setenv("MODELSEAL_CA_BUNDLE", str(cert))
        trusting = RemoteBackend(running.url, token=token)
        assert trusting.call(ListModels()) == []
        trusting.close()
        monkeypatch.setenv("MODELSEAL_CA_BUNDLE", str(tmp_path / "missing.pem"))
        with pytest.raises(InputError, match="cannot use MODELSEAL_CA_BUNDLE"):
            RemoteBackend(running.url, token=token)
    finally:
        stop_server(running)
        env.registry.close()
