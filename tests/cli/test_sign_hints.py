"""The command line still prints its own wording (options, commands) for errors whose Python
API hint is plain language: the CLI maps the error's topic to it (modelseal.cli.hints)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

import modelseal
from modelseal.errors import (
    InputError,
    ModelPathError,
    ModelsealError,
    PassphraseError,
    UsageError,
)
from modelseal.signing.keys import generate_key, write_key_pair

Run = Callable[..., tuple[int, str, str]]


def _last_line(err: str) -> str:
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def _api_error(call: Callable[[], object]) -> ModelsealError:
    with pytest.raises(ModelsealError) as caught:
        call()
    assert "--" not in caught.value.hint and "modelseal " not in caught.value.hint
    return caught.value


def test_missing_signature_file(
    run_cli: Run, model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.sig"
    code, _, err = run_cli("verify", model_dir, "--signature", missing, "--public-key", key_pair[1])
    assert code == 2
    assert _last_line(err) == (
        f"modelseal: error: signature file {str(missing)!r} does not exist; "
        "check the --signature path"
    )
    error = _api_error(
        lambda: modelseal.verify(model_dir, signature=missing, public_key=key_pair[1])
    )
    assert isinstance(error, InputError)
    assert error.hint == "check the signature path" and error.topic == "signature-path"


def test_signature_path_is_a_directory(
    model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    # The CLI's option parsing refuses a directory itself; the API says so with its own hint.
    error = _api_error(
        lambda: modelseal.verify(model_dir, signature=tmp_path, public_key=key_pair[1])
    )
    assert error.topic == "signature-file"
    assert error.hint == "give the path of the signature bundle file"


def test_protected_key_without_a_passphrase(
    run_cli: Run, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELSEAL_PASSPHRASE", raising=False)
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    write_key_pair(generate_key("ed25519"), priv, pub, passphrase=b"secret words")
    sig = tmp_path / "model.sig"
    code, _, err = run_cli("sign", model_dir, "--private-key", priv, "--signature", sig)
    assert code == 2
    assert _last_line(err) == (
        f"modelseal: error: private key {str(priv)!r} is passphrase-protected; "
        "set MODELSEAL_PASSPHRASE, pass --passphrase-file, or run in a terminal"
    )
    assert not sig.exists()
    error = _api_error(lambda: modelseal.sign(model_dir, private_key=priv))
    assert isinstance(error, PassphraseError) and error.hint == "give the key's passphrase"


def test_symlink_in_the_model(
    run_cli: Run, model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    os.symlink("config.json", model_dir / "link.json")
    sig = tmp_path / "model.sig"
    code, _, err = run_cli("sign", model_dir, "--private-key", key_pair[0], "--signature", sig)
    assert code == 2
    assert _last_line(err).endswith(
        "is a symbolic link (not allowed); "
        "pass --allow-symlinks to include links that stay inside the model"
    )
    error = _api_error(lambda: modelseal.sign(model_dir, private_key=key_pair[0]))
    assert isinstance(error, ModelPathError) and error.topic == "symlinks"
    assert error.hint == "allow symbolic links that stay inside the model"


def test_nothing_to_sign(run_cli: Run, model_dir: Path, key_pair: tuple[Path, Path]) -> None:
    sig = model_dir.parent / "model.sig"
    code, _, err = run_cli(
        "sign", model_dir, "--private-key", key_pair[0], "--signature", sig, "--ignore", "*"
    )
    assert code == 2
    assert _last_line(err).endswith(
        "no files (or all of them ignored); check the model path and the --ignore patterns"
    )
    assert not sig.exists()
    error = _api_error(lambda: modelseal.sign(model_dir, private_key=key_pair[0], ignore=["*"]))
    assert error.hint == "check the model path and the ignore patterns"


def test_key_based_signature_needs_a_public_key(
    run_cli: Run, model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    sig = tmp_path / "model.sig"
    modelseal.sign(model_dir, private_key=key_pair[0], signature=sig)
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(b"unused: the bundle is key-based")
    code, _, err = run_cli("verify", model_dir, "--signature", sig, "--trust-anchor", anchor)
    assert code == 2
    assert _last_line(err) == (
        "modelseal: error: this signature is key-based; verify it with --public-key KEY.pub"
    )
    error = _api_error(lambda: modelseal.verify(model_dir, signature=sig))
    assert isinstance(error, UsageError)
    assert error.hint == "verify it with the signer's public key"
