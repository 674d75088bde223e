"""Every error a user can hit on the command line: documented exit code, one line, no traceback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import modelseal

Run = Callable[..., tuple[int, str, str]]


def assert_one_line_error(code: int, err: str, expected_code: int, *fragments: str) -> None:
    assert code == expected_code, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("modelseal: error: "), err
    for fragment in fragments:
        assert fragment in last, last


@pytest.fixture
def signed_model(model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    sig = tmp_path / "model.sig"
    modelseal.sign(model_dir, private_key=key_pair[0], signature=sig)
    return model_dir, sig


def _write_key(
    path: Path,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    password: bytes | None = None,
) -> Path:
    enc = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    )
    return path


# -- digest --------------------------------------------------------------------------------------


def test_digest_ok_and_json(run_cli: Run, model_dir: Path) -> None:
    code, out, _ = run_cli("digest", model_dir)
    assert code == 0 and out.startswith("sha256:")
    code, out, _ = run_cli(
        "digest", model_dir, "--json", "--shard-size", "16KiB", "--hash", "blake3"
    )
    data = json.loads(out)
    assert code == 0 and data["serialization"]["method"] == "shards"
    assert data["serialization"]["shard_size"] == 16 * 1024
    assert all(r["algorithm"] == "blake3-sharded-16384" for r in data["resources"])


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--hash", "md5"], ["'md5' is not one of"]),
        (["--shard-size", "lots"], ["is not a size"]),
        (["--shard-size", "0"], ["is not a size"]),
        (["--workers", "0"], ["--workers must be at least 1"]),
        (["--bogus"], ["No such option"]),
    ],
)
def test_digest_usage_errors(
    run_cli: Run, model_dir: Path, args: list[str], fragments: list[str]
) -> None:
    code, _, err = run_cli("digest", model_dir, *args)
    assert_one_line_error(code, err, 2, *fragments)


def test_digest_input_errors(run_cli: Run, model_dir: Path, tmp_path: Path) -> None:
    code, _, err = run_cli("digest", tmp_path / "missing")
    assert_one_line_error(code, err, 2, "does not exist")
    (model_dir / "link").symlink_to("config.json")
    code, _, err = run_cli("digest", model_dir)
    assert_one_line_error(code, err, 2, "symbolic link", "--allow-symlinks")
    code, _, _ = run_cli("digest", model_dir, "--allow-symlinks")
    assert code == 0


def test_unknown_command_and_missing_argument(run_cli: Run) -> None:
    code, _, err = run_cli("frobnicate")
    assert_one_line_error(code, err, 2, "No such command")
    code, _, err = run_cli("verify")
    assert_one_line_error(code, err, 2, "Missing argument")


# -- keygen --------------------------------------------------------------------------------------


def test_keygen_writes_protected_key(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "correct horse")
    code, out, err = run_cli(
        "keygen",
        "--algorithm",
        "ed25519",
        "--private-key",
        tmp_path / "k",
        "--public-key",
        tmp_path / "k.pub",
    )
    assert code == 0, err
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "k").read_bytes()
    assert "passphrase-protected" in out


def test_keygen_errors(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSEAL_PASSPHRASE", raising=False)
    priv, pub = tmp_path / "k", tmp_path / "k.pub"
    code, _, err = run_cli("keygen", "--private-key", priv, "--public-key", pub)
    assert_one_line_error(code, err, 2, "no passphrase", "--no-passphrase")
    assert not priv.exists()
    code, _, err = run_cli(
        "keygen", "--algorithm", "dsa", "--private-key", priv, "--public-key", pub
    )
    assert_one_line_error(code, err, 2, "'dsa' is not one of")
    code, _, err = run_cli(
        "keygen", "--private-key", priv, "--public-key", pub, "--passphrase-file", tmp_path / "nope"
    )
    assert_one_line_error(code, err, 2, "cannot read passphrase file")
    (tmp_path / "empty").write_text("\n")
    code, _, err = run_cli(
        "keygen",
        "--private-key",
        priv,
        "--public-key",
        pub,
        "--passphrase-file",
        tmp_path / "empty",
    )
    assert_one_line_error(code, err, 2, "is empty")
    code, _, err = run_cli("keygen", "--no-passphrase", "--private-key", priv, "--public-key", priv)
    assert_one_line_error(code, err, 2, "are the same")
    code, _, err = run_cli(
        "keygen", "--no-passphrase", "--private-key", tmp_path / "no" / "k", "--public-key", pub
    )
    assert_one_line_error(code, err, 2, "does not exist")
    assert run_cli("keygen", "--no-passphrase", "--private-key", priv, "--public-key", pub)[0] == 0
    before = priv.read_bytes()
    code, _, err = run_cli("keygen", "--no-passphrase", "--private-key", priv, "--public-key", pub)
    assert_one_line_error(code, err, 2, "already exists", "--force")
    assert priv.read_bytes() == before  # nothing lost
    assert (
        run_cli("keygen", "--no-passphrase", "--force", "--private-key", priv, "--public-key", pub)[
            0
        ]
        == 0
    )


# -- sign ----------------------------------------------------------------------------------------


def test_sign_with_encrypted_key(
    run_cli: Run, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _write_key(tmp_path / "enc.pem", ec.generate_private_key(ec.SECP384R1()), b"s3cret")
    sig = tmp_path / "m.sig"
    monkeypatch.delenv("MODELSEAL_PASSPHRASE", raising=False)
    code, _, err = run_cli("sign", model_dir, "--private-key", key, "--signature", sig)
    assert_one_line_error(code, err, 2, "passphrase-protected", "MODELSEAL_PASSPHRASE")
    assert not sig.exists()
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "wrong")
    code, _, err = run_cli("sign", model_dir, "--private-key", key, "--signature", sig)
    assert_one_line_error(code, err, 2, "wrong passphrase")
    (tmp_path / "pw").write_text("s3cret\n")
    code, out, err = run_cli(
        "sign",
        model_dir,
        "--private-key",
        key,
        "--signature",
        sig,
        "--passphrase-file",
        tmp_path / "pw",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["signer"].startswith("ecdsa-p384 key")


def test_sign_key_errors(
    run_cli: Run, model_dir: Path, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    sig = tmp_path / "m.sig"
    cases = [
        (tmp_path / "missing.pem", "does not exist"),
        (key_pair[1], "not a PEM private key"),
        (
            _write_key(tmp_path / "k1.pem", ec.generate_private_key(ec.SECP256K1())),
            "unsupported elliptic curve",
        ),
        (
            _write_key(
                tmp_path / "rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048)
            ),
            "too small",
        ),
    ]
    for key, fragment in cases:
        code, _, err = run_cli("sign", model_dir, "--private-key", key, "--signature", sig)
        assert_one_line_error(code, err, 2, fragment)
    assert not sig.exists()
    # The model was being hashed while the key loaded: nothing keeps hashing after the error.
    assert not [t.name for t in threading.enumerate() if t.name.startswith("modelseal-hash")]
    # Exactly one key source: a key file or a PKCS#11 URI.
    code, _, err = run_cli("sign", model_dir, "--signature", sig)
    assert_one_line_error(code, err, 2, "exactly one of --private-key and --pkcs11-uri")
    code, _, err = run_cli(
        "sign",
        model_dir,
        "--private-key",
        key_pair[0],
        "--pkcs11-uri",
        "pkcs11:token=t",
        "--signature",
        sig,
    )
    assert_one_line_error(code, err, 2, "exactly one of --private-key and --pkcs11-uri")
    assert not sig.exists()


def test_sign_model_and_output_errors(
    run_cli: Run, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    code, _, err = run_cli(
        "sign", empty, "--private-key", key_pair[0], "--signature", tmp_path / "s"
    )
    assert_one_line_error(code, err, 2, "nothing to sign")
    (empty / "w.bin").write_bytes(b"w")
    code, _, err = run_cli(
        "sign", empty, "--private-key", key_pair[0], "--signature", tmp_path / "no" / "s"
    )
    assert_one_line_error(code, err, 2, "does not exist")
    code, _, err = run_cli(
        "sign",
        empty,
        "--private-key",
        key_pair[0],
        "--signature",
        tmp_path / "s",
        "--certificate-chain",
        key_pair[1],
    )
    assert_one_line_error(code, err, 2, "--certificate-chain needs --certificate")


def test_sign_writes_atomically_and_ignores_its_own_signature(
    run_cli: Run, model_dir: Path, key_pair: tuple[Path, Path]
) -> None:
    sig = model_dir / "model.sig"
    sig.write_text("previous signature")
    code, _, err = run_cli(
        "sign", model_dir, "--private-key", key_pair[0], "--signature", sig, "--force"
    )
    assert code == 0, err
    payload = json.loads(sig.read_text())
    assert payload["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert not [p for p in model_dir.iterdir() if p.name.endswith(".tmp")]
    code, _, err = run_cli("verify", model_dir, "--signature", sig, "--public-key", key_pair[1])
    assert code == 0, err


# -- verify --------------------------------------------------------------------------------------


def test_verify_ok_and_json(
    run_cli: Run, signed_model: tuple[Path, Path], key_pair: tuple[Path, Path]
) -> None:
    model, sig = signed_model
    code, out, _ = run_cli(
        "verify", model, "--signature", sig, "--public-key", key_pair[1], "--json"
    )
    data = json.loads(out)
    assert code == 0 and data["verified"] is True and data["resources"] == 5


def test_verify_failure_reports_reasons(
    run_cli: Run, signed_model: tuple[Path, Path], key_pair: tuple[Path, Path]
) -> None:
    model, sig = signed_model
    (model / "config.json").write_text("{}")
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--public-key", key_pair[1], "--json"
    )
    data = json.loads(out)
    assert code == 1 and data["verified"] is False
    assert data["reasons"][0]["code"] == "modified" and data["reasons"][0]["path"] == "config.json"
    assert_one_line_error(code, err, 1, "does not match its signature")
    code, _, err = run_cli("verify", model, "--signature", sig, "--public-key", key_pair[1])
    assert "modified   config.json: content changed (expected " in err
    assert_one_line_error(code, err, 1, "config.json")


def test_verify_wrong_key(
    run_cli: Run, signed_model: tuple[Path, Path], other_key_pair: tuple[Path, Path]
) -> None:
    model, sig = signed_model
    code, _, err = run_cli("verify", model, "--signature", sig, "--public-key", other_key_pair[1])
    assert_one_line_error(code, err, 1, "another key")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"not json", "malformed signature: not JSON"),
        (b"[]", "not a JSON object"),
        (
            b'{"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1"}',
            "unsupported bundle media type",
        ),
        (b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}', "no dsseEnvelope"),
        (
            b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", '
            b'"messageSignature": {}}',
            "message digest",
        ),
    ],
)
def test_verify_malformed_signature_files(
    run_cli: Run,
    model_dir: Path,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    content: bytes,
    fragment: str,
) -> None:
    sig = tmp_path / "bad.sig"
    sig.write_bytes(content)
    code, _, err = run_cli("verify", model_dir, "--signature", sig, "--public-key", key_pair[1])
    assert_one_line_error(code, err, 2, fragment)


def test_verify_input_errors(
    run_cli: Run, signed_model: tuple[Path, Path], key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    model, sig = signed_model
    code, _, err = run_cli("verify", model, "--signature", sig)
    assert_one_line_error(code, err, 2, "--public-key", "--trust-anchor")
    code, _, err = run_cli(
        "verify", model, "--signature", tmp_path / "nope.sig", "--public-key", key_pair[1]
    )
    assert_one_line_error(code, err, 2, "does not exist")
    code, _, err = run_cli("verify", model, "--signature", sig, "--public-key", key_pair[0])
    assert_one_line_error(code, err, 2, "this is a private key")
    code, _, err = run_cli(
        "verify", tmp_path / "gone", "--signature", sig, "--public-key", key_pair[1]
    )
    assert_one_line_error(code, err, 2, "does not exist")
    code, _, err = run_cli("verify", model, "--signature", sig, "--trust-anchor", key_pair[1])
    assert_one_line_error(code, err, 2, "key-based", "--public-key")


def test_internal_errors_are_one_line(
    run_cli: Run, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelseal.signing.api as api

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(api, "digest", boom)
    monkeypatch.delenv("MODELSEAL_DEBUG", raising=False)
    code, _, err = run_cli("digest", model_dir)
    assert_one_line_error(
        code, err, 3, "internal error: RuntimeError: simulated bug", "MODELSEAL_DEBUG=1"
    )


def test_help_and_version(run_cli: Run) -> None:
    code, out, _ = run_cli("--help")
    assert code == 0 and "Exit codes" in out and "verify" in out
    code, out, _ = run_cli("--version")
    assert code == 0 and "modelseal" in out


def test_greedy_options_expand() -> None:
    from modelseal.cli.main import expand_greedy

    assert expand_greedy(["verify", "m", "--trust-anchor", "a", "b", "--json"]) == [
        "verify",
        "m",
        "--trust-anchor",
        "a",
        "--trust-anchor",
        "b",
        "--json",
    ]
    assert expand_greedy(
        ["sign", "--certificate-chain", "x", "--", "--trust-anchor", "y", "z"]
    ) == [
        "sign",
        "--certificate-chain",
        "x",
        "--",
        "--trust-anchor",
        "y",
        "z",
    ]


def test_hashing_overlaps_key_loading_only_when_no_prompt_can_come(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from modelseal.cli import common

    monkeypatch.delenv("MODELSEAL_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert common.passphrase_may_prompt(None)
    assert not common.passphrase_may_prompt(str(tmp_path / "pass"))
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "x")
    assert not common.passphrase_may_prompt(None)
    monkeypatch.delenv("MODELSEAL_PASSPHRASE")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert not common.passphrase_may_prompt(None)


def common_cancelled() -> type[Exception]:
    from modelseal.cli import common

    return common._Cancelled


def test_early_hash_is_cancelled_midway(tmp_path: Path) -> None:
    from modelseal.cli.common import EarlyHash
    from modelseal.hashing import HashOptions

    big = tmp_path / "model.bin"
    big.write_bytes(b"\0" * (64 << 20))
    seen: list[int] = []
    job = EarlyHash(str(big), HashOptions(shard_size=1 << 20, workers=1), None, seen.append)
    job.start()
    job.cancel()  # stops at its next step; never hashes the whole file
    assert sum(seen) < 64 << 20
    assert not [t.name for t in threading.enumerate() if t.name.startswith("modelseal-hash")]
    with pytest.raises(common_cancelled()):
        job.result()  # a cancelled job has no outcome


def test_split_signing_matches_sign(
    model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    from modelseal.hashing import HashOptions
    from modelseal.hashing.engine import hash_for_signing
    from modelseal.signing.api import sign_outcome

    sig = model_dir / "inside.sig"  # inside the model: left out of the hash
    outcome = hash_for_signing(model_dir, HashOptions(), signature=sig)
    split = sign_outcome(model_dir, outcome, private_key=key_pair[0], signature=sig)
    whole = modelseal.sign(model_dir, private_key=key_pair[0], signature=sig)
    assert split.manifest == whole.manifest
    assert modelseal.verify(model_dir, signature=sig, public_key=key_pair[1])


@pytest.mark.parametrize(
    ("module", "expected"),
    [("yaml", "pip install 'modelseal[gate]'"), ("sqlalchemy.orm", "modelseal[registry]")],
)
def test_a_missing_optional_package_names_its_extra(
    run_cli: Run, model_dir: Path, monkeypatch: pytest.MonkeyPatch, module: str, expected: str
) -> None:
    import modelseal.signing.api as api

    def missing(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    monkeypatch.setattr(api, "digest", missing)
    monkeypatch.delenv("MODELSEAL_DEBUG", raising=False)
    code, _, err = run_cli("digest", model_dir)
    assert_one_line_error(code, err, 2, f"needs the {module.split('.')[0]} package", expected)


def test_a_missing_module_that_is_not_optional_is_a_bug(
    run_cli: Run, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelseal.signing.api as api

    def missing(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'modelseal.gone'", name="modelseal.gone")

    monkeypatch.setattr(api, "digest", missing)
    monkeypatch.delenv("MODELSEAL_DEBUG", raising=False)
    code, _, err = run_cli("digest", model_dir)
    assert_one_line_error(code, err, 3, "internal error: ModuleNotFoundError")
