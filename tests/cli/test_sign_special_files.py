"""A FIFO or a device given where sign/verify/digest read a file (the model, the signature, a
key, a certificate) is an input error (exit 2) with one line, never a hang.

Each command runs as a subprocess with a timeout, so a hang fails the test instead of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelseal
from modelseal.fsinput import NOT_REGULAR
from modelseal.signing.trust import load_certificates
from tests.conftest import build_model
from tests.hashing.test_special_files import outcome_within
from tests.interop._pki import Pki, build_pki

TIMEOUT = 60


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    yield path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("signed")
    model = build_model(base / "model")
    key_sig, cert_sig = base / "key.sig", base / "cert.sig"
    modelseal.sign(model, private_key=pki.leaf.key_path, signature=key_sig)
    modelseal.sign(
        model,
        private_key=pki.leaf.key_path,
        signature=cert_sig,
        certificate=pki.leaf.cert_path,
        certificate_chain=[pki.intermediate.cert_path],
    )
    public = base / "leaf.pub"
    from modelseal.signing.keys import public_pem

    public.write_bytes(public_pem(pki.leaf.key))
    return {"model": model, "key-sig": key_sig, "cert-sig": cert_sig, "public": public}


def run(*args: str | os.PathLike[str]) -> tuple[int, str]:
    """Run ``modelseal ARGS``; its exit code and the last line on stderr."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "modelseal", *map(str, args)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"modelseal {' '.join(map(str, args))} hung for {TIMEOUT} s")
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "/dev/null"])
def test_signature_that_is_not_a_regular_file(
    signed: dict[str, Path], fifo: Path, special: str
) -> None:
    path = fifo if special == "fifo" else Path(special)
    code, line = run(
        "verify", signed["model"], "--signature", path, "--public-key", signed["public"]
    )
    assert code == 2
    assert line == (
        f"modelseal: error: signature path {str(path)!r} is {NOT_REGULAR}; "
        "point --signature at the bundle file"
    )


def test_public_key_that_is_a_fifo(signed: dict[str, Path], fifo: Path) -> None:
    code, line = run(
        "verify", signed["model"], "--signature", signed["key-sig"], "--public-key", fifo
    )
    assert code == 2
    assert line == f"modelseal: error: public key {str(fifo)!r} is {NOT_REGULAR}; give a PEM file"


def test_trust_anchor_that_is_a_fifo(signed: dict[str, Path], fifo: Path) -> None:
    code, line = run(
        "verify", signed["model"], "--signature", signed["cert-sig"], "--trust-anchor", fifo
    )
    assert code == 2
    assert line == (
        f"modelseal: error: trust anchor {str(fifo)!r} is {NOT_REGULAR}; "
        "give a PEM certificate file"
    )


def test_private_key_that_is_a_fifo(signed: dict[str, Path], fifo: Path, tmp_path: Path) -> None:
    sig = tmp_path / "new.sig"
    code, line = run("sign", signed["model"], "--private-key", fifo, "--signature", sig)
    assert code == 2
    assert line == f"modelseal: error: private key {str(fifo)!r} is {NOT_REGULAR}; give a PEM file"
    assert not sig.exists()


def test_certificate_that_is_a_fifo(
    signed: dict[str, Path], pki: Pki, fifo: Path, tmp_path: Path
) -> None:
    sig = tmp_path / "new.sig"
    code, line = run(
        "sign",
        signed["model"],
        "--private-key",
        pki.leaf.key_path,
        "--signature",
        sig,
        "--certificate",
        fifo,
    )
    assert code == 2
    assert line == (
        f"modelseal: error: certificate {str(fifo)!r} is {NOT_REGULAR}; give a PEM certificate file"
    )
    assert not sig.exists()


@pytest.mark.parametrize("command", ["digest", "sign", "verify"])
def test_model_path_that_is_a_fifo(
    signed: dict[str, Path], pki: Pki, fifo: Path, tmp_path: Path, command: str
) -> None:
    options: dict[str, list[str | Path]] = {
        "digest": [],
        "sign": ["--private-key", pki.leaf.key_path, "--signature", tmp_path / "new.sig"],
        "verify": ["--signature", signed["key-sig"], "--public-key", signed["public"]],
    }
    code, line = run(command, fifo, *options[command])
    assert code == 2
    assert line.startswith(f"modelseal: error: model path {str(fifo)!r} is neither a file nor")


def test_certificate_files_read_through_the_api(fifo: Path) -> None:
    error = outcome_within(fifo, lambda: load_certificates([fifo], "trust anchor"))
    assert error is not None and f"trust anchor {str(fifo)!r} is {NOT_REGULAR}" in str(error)
