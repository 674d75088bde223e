"""The encrypt / decrypt / keys commands: success paths and every user-reachable error path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelseal.cli.main import main
from tests.conftest import build_model
from tests.crypto.conftest import tree


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys: pytest.CaptureFixture[str], code: int, match: str, *argv: str | Path) -> str:
    """Run; expect exit ``code`` and exactly one error line containing ``match``."""
    got, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert got == code, err
    assert len(lines) == 1 and lines[0].startswith("modelseal: error: "), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def setup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.delenv("MODELSEAL_PASSPHRASE", raising=False)
    build_model(tmp_path / "model")
    (tmp_path / "pw").write_text("secret\n")
    code, _, _ = run(
        capsys, "keys", "create", tmp_path / "ks.json", "--passphrase-file", tmp_path / "pw"
    )
    assert code == 0
    code, _, _ = run(capsys, "keys", "create", tmp_path / "clear.json", "--no-passphrase")
    assert code == 0
    return tmp_path


def test_round_trip_directory_with_model_binding(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = setup
    bind = ["--model-name", "bert", "--model-version", "1", "--manifest-digest", "sha256:00"]
    code, out, _ = run(
        capsys,
        "encrypt",
        t / "model",
        t / "enc",
        "--keyset",
        t / "ks.json",
        "--passphrase-file",
        t / "pw",
        *bind,
    )
    assert code == 0 and "encrypted directory" in out
    code, out, _ = run(
        capsys,
        "decrypt",
        t / "enc",
        t / "out",
        "--keyset",
        t / "ks.json",
        "--passphrase-file",
        t / "pw",
        *bind,
        "--json",
    )
    assert code == 0 and json.loads(out)["files"] == 5
    assert tree(t / "out") == tree(t / "model")
    line = fails(
        capsys,
        1,
        "does not decrypt",
        "decrypt",
        t / "enc",
        t / "out2",
        "--keyset",
        t / "ks.json",
        "--passphrase-file",
        t / "pw",
        "--model-name",
        "bert",
        "--model-version",
        "2",
        "--manifest-digest",
        "sha256:00",
    )
    assert "secret" not in line
    assert not (t / "out2").exists()


def test_passphrase_from_environment(
    setup: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    t = setup
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "secret")
    code, _, _ = run(
        capsys, "encrypt", t / "model" / "config.json", t / "c.enc", "--keyset", t / "ks.json"
    )
    assert code == 0
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "wrong")
    fails(capsys, 2, "wrong passphrase", "decrypt", t / "c.enc", t / "c", "--keyset", t / "ks.json")


def test_usage_errors(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t, m = setup, setup / "model"
    fails(capsys, 2, "exactly one of --keyset and --kek", "encrypt", m, t / "o")
    fails(
        capsys,
        2,
        "exactly one of --keyset and --kek",
        "encrypt",
        m,
        t / "o",
        "--keyset",
        t / "clear.json",
        "--kek",
        "local:x",
    )
    fails(
        capsys,
        2,
        "--workers",
        "encrypt",
        m,
        t / "o",
        "--keyset",
        t / "clear.json",
        "--workers",
        "0",
    )
    fails(
        capsys,
        2,
        "exclusive",
        "encrypt",
        m,
        t / "o",
        "--keyset",
        t / "clear.json",
        "--associated-data",
        "x",
        "--model-name",
        "a",
    )
    fails(
        capsys,
        2,
        "go together",
        "encrypt",
        m,
        t / "o",
        "--keyset",
        t / "clear.json",
        "--model-name",
        "a",
    )
    fails(capsys, 2, "Missing argument", "encrypt", m, "--keyset", t / "clear.json")


def test_input_and_key_errors(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t, m = setup, setup / "model"
    fails(capsys, 2, "cannot read keyset", "encrypt", m, t / "o", "--keyset", t / "nope.json")
    fails(capsys, 2, "passphrase-protected", "encrypt", m, t / "o", "--keyset", t / "ks.json")
    (t / "bad.json").write_text('{"primaryKeyId": 1, "key": []}')
    fails(capsys, 2, "holds no keys", "encrypt", m, t / "o", "--keyset", t / "bad.json")
    fails(capsys, 2, "cannot read", "encrypt", t / "missing", t / "o", "--keyset", t / "clear.json")
    fails(capsys, 2, "unknown key provider", "encrypt", m, t / "o", "--kek", "vault:x")
    run(capsys, "keys", "create", t / "kek.json", "--kek", "--no-passphrase")
    fails(
        capsys, 2, "not an AES-GCM key", "encrypt", m, t / "o", "--kek", f"local:{t / 'clear.json'}"
    )
    fails(capsys, 2, "not a streaming AEAD key", "encrypt", m, t / "o", "--keyset", t / "kek.json")


def test_decrypt_errors(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = setup
    f = t / "model" / "config.json"
    assert (
        run(
            capsys,
            "encrypt",
            f,
            t / "c.enc",
            "--keyset",
            t / "clear.json",
            "--associated-data",
            "v1",
        )[0]
        == 0
    )
    fails(capsys, 2, "already exists", "encrypt", f, t / "c.enc", "--keyset", t / "clear.json")
    fails(
        capsys,
        1,
        "wrong key, wrong associated data",
        "decrypt",
        t / "c.enc",
        t / "c",
        "--keyset",
        t / "clear.json",
        "--associated-data",
        "v2",
    )
    run(capsys, "keys", "create", t / "other.json", "--no-passphrase")
    fails(
        capsys,
        1,
        "wrong key",
        "decrypt",
        t / "c.enc",
        t / "c",
        "--keyset",
        t / "other.json",
        "--associated-data",
        "v1",
    )
    data = bytearray((t / "c.enc").read_bytes())
    data[-1] ^= 1
    (t / "bad.enc").write_bytes(bytes(data))
    fails(
        capsys,
        1,
        "does not decrypt",
        "decrypt",
        t / "bad.enc",
        t / "c",
        "--keyset",
        t / "clear.json",
        "--associated-data",
        "v1",
    )
    (t / "short.enc").write_bytes(b"")
    fails(capsys, 1, "empty", "decrypt", t / "short.enc", t / "c", "--keyset", t / "clear.json")
    fails(
        capsys,
        2,
        "not an encrypted model directory",
        "decrypt",
        t / "model",
        t / "d",
        "--keyset",
        t / "clear.json",
    )
    run(capsys, "keys", "create", "--kek", t / "kek.json", "--no-passphrase")
    fails(
        capsys,
        2,
        "has no envelope",
        "decrypt",
        t / "c.enc",
        t / "c",
        "--kek",
        f"local:{t / 'kek.json'}",
    )
    assert not (t / "c").exists() and not (t / "d").exists()


def test_envelope_and_rotation_cli(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = setup
    pw: list[str | Path] = ["--passphrase-file", t / "pw"]
    code, out, _ = run(capsys, "keys", "create", "--kek", t / "kek.json", *pw, "--kdf", "argon2id")
    assert code == 0 and "argon2id" in out
    kek = f"local:{t / 'kek.json'}"
    code, out, _ = run(capsys, "encrypt", t / "model", t / "enc", "--kek", kek, *pw)
    assert code == 0
    code, out, _ = run(
        capsys, "encrypt", t / "model" / "config.json", t / "c.enc", "--kek", kek, *pw
    )
    assert code == 0 and "c.enc.envelope.json" in out
    old = (t / "c.enc.envelope.json").read_bytes()
    code, out, _ = run(
        capsys, "keys", "rotate", "--kek", kek, t / "enc", t / "c.enc", *pw, "--json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["committed"] and len(report["rewrapped"]) == 2 and len(report["retired"]) == 1
    assert run(capsys, "decrypt", t / "enc", t / "out", "--kek", kek, *pw)[0] == 0
    assert tree(t / "out") == tree(t / "model")
    (t / "c.enc.envelope.json").write_bytes(old)
    fails(capsys, 1, "retired by a rotation", "decrypt", t / "c.enc", t / "c", "--kek", kek, *pw)
    fails(
        capsys,
        2,
        "has no envelope",
        "keys",
        "rotate",
        "--kek",
        kek,
        t / "model" / "config.json",
        *pw,
    )
    fails(capsys, 2, "passphrase-protected", "keys", "rotate", "--kek", kek, t / "enc")


def test_keys_create_errors(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = setup
    fails(capsys, 2, "no passphrase for the new keyset", "keys", "create", t / "new.json")
    fails(capsys, 2, "already exists", "keys", "create", t / "clear.json", "--no-passphrase")
    assert run(capsys, "keys", "create", t / "clear.json", "--no-passphrase", "--force")[0] == 0
    fails(capsys, 2, "add --kek", "keys", "create", "pkcs11:token=x;object=y")
    fails(capsys, 2, "Missing argument", "keys", "rotate", "--kek", "local:x")
    fails(capsys, 2, "Invalid value", "keys", "create", t / "n.json", "--kdf", "md5")


def test_commands_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("encrypt", "decrypt", "keys"):
        assert name in out
    code, out, _ = run(capsys, "keys", "--help")
    assert code == 0 and "rotate" in out and "create" in out
