"""``modelseal serve`` over TLS, with client certificates required by --tls-client-ca: a client
with a certificate from that CA is answered, one without is refused at the handshake."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.serving.conftest import Signed
from tests.serving.live import free_port


def _issue(
    directory: Path, name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if name == "127.0.0.1":
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip
    return cert, key


def test_client_certificates(models: Callable[[str], Signed], tmp_path: Path) -> None:
    ca = _issue(tmp_path, "ca", None)
    _issue(tmp_path, "127.0.0.1", ca)
    _issue(tmp_path, "client", ca)
    model = models("lightgbm")
    port = free_port()
    args = [sys.executable, "-m", "modelseal", "serve", "--model", str(model.path),
            "--signature", str(model.signature), "--public-key", str(model.public_key),
            "--no-auth", "--port", str(port), "--tls-cert", str(tmp_path / "127.0.0.1.pem"),
            "--tls-key", str(tmp_path / "127.0.0.1.key"),
            "--tls-client-ca", str(tmp_path / "ca.pem")]  # fmt: skip
    env = {**os.environ, "MODELSEAL_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
    url = f"https://127.0.0.1:{port}/v2/health/ready"
    trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with_cert = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with_cert.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(url, verify=with_cert)
                break
            except httpx.ConnectError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["ready"] is True
        with pytest.raises((httpx.ReadError, httpx.ConnectError, httpx.RemoteProtocolError)):
            httpx.get(url, verify=trusted)
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, verify=True)  # the system's CAs do not know this server
    finally:
        process.terminate()
        process.wait(timeout=30)
