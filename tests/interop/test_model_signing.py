"""Interoperability with the real peer, model-signing 1.1.1 (the OpenSSF reference).

Both directions, through the peer's own command line (``model_signing`` next to this Python) and
its Python API: nothing here re-implements its logic. Known model_signing 1.1.1 limitations are
tested around, not worked around: its CLI verifier always re-hashes as files+sha256, it writes
``shard_size`` as a float and cannot verify its own shard or blake2b bundles, and it reads
only EC keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypedDict

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

import modelseal
from modelseal.errors import CertificateError, IntegrityError
from modelseal.signing.keys import generate_key, write_key_pair
from tests.interop._pki import DAY, NOW, Pki, build_pki, concat, issue

pytestmark = pytest.mark.interop

MODEL_SIGNING = Path(sys.executable).with_name("model_signing")
if not MODEL_SIGNING.exists():  # pragma: no cover - only without the 'test' extra
    pytest.skip(f"model_signing is not installed next to {sys.executable}", allow_module_level=True)

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PASSPHRASE = "correct horse ✓ battery"

RunCli = Callable[..., tuple[int, str, str]]
# The hashing_algorithm values the peer's hashing.Config accepts.
PeerHash = Literal["sha256", "blake2", "blake3"]


class _SignOptions(TypedDict, total=False):
    """The :func:`modelseal.sign` options a test varies."""

    hash_type: str
    shard_size: int


# File names with spaces and non-ASCII characters, nested directories, an empty file, and sizes
# that shard sizes below do and do not divide.
MODEL_FILES: dict[str, bytes] = {
    "config.json": b'{"hidden": 16}\n',
    "weights 01.bin": bytes(range(256)) * 27 + b"tail",  # 6916 bytes
    "nested/deeper/tökenizer ünïcode.txt": "a b c ✓ 模型\n".encode(),
    "nested/shard.bin": b"\x5a" * 3000,
    "nested/empty.bin": b"",
}


def build_peer_model(root: Path) -> Path:
    for name, data in MODEL_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def model_signing(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """Run the real ``model_signing`` program."""
    return subprocess.run(
        [str(MODEL_SIGNING), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def payload_of(signature: Path) -> dict[str, Any]:
    bundle = json.loads(signature.read_text())
    statement: dict[str, Any] = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return statement


def rewrite_payload(signature: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the signed statement without re-signing it (what an attacker can do)."""
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    edit(statement)
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))


@pytest.fixture(scope="module")
def ec_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Unencrypted EC key pairs on disk, per curve."""
    keys = {}
    for alg in ("ecdsa-p256", "ecdsa-p384", "ecdsa-p521"):
        d = tmp_path_factory.mktemp(alg)
        write_key_pair(generate_key(alg), d / "key.pem", d / "key.pub", passphrase=None)
        keys[alg] = (d / "key.pem", d / "key.pub")
    return keys


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_peer_model(tmp_path / "my model ✓")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("other-pki"), prefix="other-")


# --- modelseal signs, model_signing verifies -----------------------------------------------


@pytest.mark.parametrize(
    ("alg", "shape"),
    [
        ("ecdsa-p256", "directory"),
        ("ecdsa-p384", "directory"),
        ("ecdsa-p521", "directory"),
        ("ecdsa-p256", "single-file"),
        ("ecdsa-p521", "single-file"),
    ],
)
def test_model_signing_cli_verifies_modelseal_cli_signature(
    run_cli: RunCli,
    ec_keys: dict[str, tuple[Path, Path]],
    model: Path,
    tmp_path: Path,
    alg: str,
    shape: str,
) -> None:
    priv, pub = ec_keys[alg]
    target = model if shape == "directory" else model / "weights 01.bin"
    sig = tmp_path / "model.sig"
    code, out, err = run_cli("sign", target, "--private-key", priv, "--signature", sig)
    assert code == 0, err
    assert f"{alg} key" in out
    statement = payload_of(sig)
    names = sorted(r["name"] for r in statement["predicate"]["resources"])
    if shape == "directory":
        assert names == sorted(MODEL_FILES)  # empty file, unicode and spaces included
    else:
        assert len(names) == 1
    result = model_signing("verify", "key", target, "--signature", sig, "--public_key", pub)
    assert result.returncode == 0, result.stderr
    assert "Verification succeeded" in result.stdout


def test_model_signing_verifies_signature_from_encrypted_key(
    run_cli: RunCli, model: Path, tmp_path: Path
) -> None:
    write_key_pair(
        generate_key("ecdsa-p384"),
        tmp_path / "k.pem",
        tmp_path / "k.pub",
        passphrase=PASSPHRASE.encode(),
    )
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "k.pem").read_bytes()
    (tmp_path / "pass.txt").write_text(PASSPHRASE + "\n")
    sig = tmp_path / "model.sig"
    code, _, err = run_cli(
        "sign",
        model,
        "--private-key",
        tmp_path / "k.pem",
        "--signature",
        sig,
        "--passphrase-file",
        tmp_path / "pass.txt",
    )
    assert code == 0, err
    result = model_signing(
        "verify", "key", model, "--signature", sig, "--public_key", tmp_path / "k.pub"
    )
    assert result.returncode == 0, result.stderr
    assert "Verification succeeded" in result.stdout


def test_signature_inside_the_model_directory(
    run_cli: RunCli, ec_keys: dict[str, tuple[Path, Path]], model: Path
) -> None:
    priv, pub = ec_keys["ecdsa-p256"]
    sig = model / "model.sig"
    code, _, err = run_cli("sign", model, "--private-key", priv, "--signature", sig)
    assert code == 0, err
    names = [r["name"] for r in payload_of(sig)["predicate"]["resources"]]
    assert "model.sig" not in names
    result = model_signing("verify", "key", model, "--signature", sig, "--public_key", pub)
    assert result.returncode == 0, result.stderr
    code, out, err = run_cli("verify", model, "--signature", sig, "--public-key", pub)
    assert code == 0, err
    assert f"{len(MODEL_FILES)} files match" in out


def test_model_signing_rejects_tampered_modelseal_bundles(
    run_cli: RunCli, ec_keys: dict[str, tuple[Path, Path]], model: Path, tmp_path: Path
) -> None:
    priv, pub = ec_keys["ecdsa-p256"]
    sig = tmp_path / "model.sig"
    assert run_cli("sign", model, "--private-key", priv, "--signature", sig)[0] == 0
    original = sig.read_text()

    # One flipped byte in a signed file.
    victim = model / "nested/shard.bin"
    data = victim.read_bytes()
    victim.write_bytes(data[:1234] + bytes([data[1234] ^ 0x01]) + data[1235:])
    result = model_signing("verify", "key", model, "--signature", sig, "--public_key", pub)
    assert result.returncode == 1
    assert "Hash mismatch for" in result.stderr and "nested/shard.bin" in result.stderr
    victim.write_bytes(data)

    # A signed digest swapped for the one of other content: the DSSE signature no longer holds.
    forged = hashlib.sha256(b"evil").hexdigest()

    def swap_digest(statement: dict[str, Any]) -> None:
        for resource in statement["predicate"]["resources"]:
            if resource["name"] == "config.json":
                resource["digest"] = forged

    rewrite_payload(sig, swap_digest)
    (model / "config.json").write_bytes(b"evil")
    result = model_signing("verify", "key", model, "--signature", sig, "--public_key", pub)
    assert result.returncode == 1
    assert "Verification failed" in result.stderr
    code, _, err = run_cli("verify", model, "--signature", sig, "--public-key", pub)
    assert code == 1
    assert "signature does not verify" in err

    # The intact bundle, verified with another signer's key: both refuse.
    sig.write_text(original)
    other_pub = ec_keys["ecdsa-p384"][1]
    result = model_signing("verify", "key", model, "--signature", sig, "--public_key", other_pub)
    assert result.returncode == 1
    assert "Key mismatch" in result.stderr


def test_model_signing_api_verifies_modelseal_shard_and_blake3_bundles(
    ec_keys: dict[str, tuple[Path, Path]], model: Path, tmp_path: Path
) -> None:
    """The peer's API guesses the hashing config from the bundle (its CLI cannot)."""
    import model_signing

    priv, pub = ec_keys["ecdsa-p256"]
    options: dict[str, _SignOptions] = {
        "blake3": {"hash_type": "blake3"},
        "shards": {"shard_size": 1000},
    }
    for label, kwargs in options.items():
        sig = tmp_path / f"{label}.sig"
        modelseal.sign(model, private_key=priv, signature=sig, **kwargs)
        serialization_ = payload_of(sig)["predicate"]["serialization"]
        if label == "shards":
            assert serialization_["shard_size"] == 1000 and isinstance(
                serialization_["shard_size"], int
            )
        # The peer's Config.__init__ carries no annotations (model_signing 1.1.1).
        verifying = model_signing.verifying.Config()  # type: ignore[no-untyped-call]
        verifying.use_elliptic_key_verifier(public_key=pub).verify(model, sig)


# --- model_signing signs, modelseal verifies -----------------------------------------------


def test_modelseal_cli_verifies_model_signing_cli_signature(
    run_cli: RunCli, ec_keys: dict[str, tuple[Path, Path]], model: Path, tmp_path: Path
) -> None:
    priv, pub = ec_keys["ecdsa-p521"]
    sig = tmp_path / "model.sig"
    result = model_signing("sign", "key", model, "--private_key", priv, "--signature", sig)
    assert result.returncode == 0, result.stderr
    code, out, err = run_cli("verify", model, "--signature", sig, "--public-key", pub, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["verified"] is True
    assert report["resources"] == len(MODEL_FILES)
    assert report["root_digest"]["sha256"] == payload_of(sig)["subject"][0]["digest"]["sha256"]


def test_modelseal_verifies_model_signing_signature_from_encrypted_key(
    run_cli: RunCli, model: Path, tmp_path: Path
) -> None:
    write_key_pair(
        generate_key("ecdsa-p256"),
        tmp_path / "k.pem",
        tmp_path / "k.pub",
        passphrase=b"s3cret",
    )
    sig = tmp_path / "model.sig"
    # Through the peer's API: model_signing 1.1.1's CLI --password passes a str where
    # cryptography wants bytes and fails ("Cannot convert ... to a buffer").
    import model_signing

    # The peer annotates password as str but hands it to cryptography, which needs bytes; its
    # Config.__init__ carries no annotations.
    signing = model_signing.signing.Config()  # type: ignore[no-untyped-call]
    signing.use_elliptic_key_signer(
        private_key=tmp_path / "k.pem",
        password=b"s3cret",  # type: ignore[arg-type]
    ).sign(model, sig)
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--public-key", tmp_path / "k.pub"
    )
    assert code == 0, err
    assert "verified" in out


def test_modelseal_verifies_model_signing_single_file_and_inside_signature(
    run_cli: RunCli, ec_keys: dict[str, tuple[Path, Path]], model: Path, tmp_path: Path
) -> None:
    priv, pub = ec_keys["ecdsa-p384"]
    single = model / "weights 01.bin"
    sig = tmp_path / "file.sig"
    assert (
        model_signing("sign", "key", single, "--private_key", priv, "--signature", sig).returncode
        == 0
    )
    code, out, err = run_cli("verify", single, "--signature", sig, "--public-key", pub)
    assert code == 0, err
    assert "1 file matches" in out
    inside = model / "model.sig"  # model_signing ignores its own signature file when hashing
    assert (
        model_signing("sign", "key", model, "--private_key", priv, "--signature", inside).returncode
        == 0
    )
    code, out, err = run_cli("verify", model, "--signature", inside, "--public-key", pub)
    assert code == 0, err
    assert f"{len(MODEL_FILES)} files match" in out


SERIALIZATIONS: dict[str, tuple[str, PeerHash, int | None]] = {
    # label: (method, model_signing hashing_algorithm, shard size)
    "files-sha256": ("files", "sha256", None),
    "files-blake2": ("files", "blake2", None),
    "files-blake3": ("files", "blake3", None),
    "shards-sha256-1000": ("shards", "sha256", 1000),  # does not divide 6916
    "shards-sha256-1500": ("shards", "sha256", 1500),  # divides 3000
    "shards-sha256-7": ("shards", "sha256", 7),  # many tiny shards
    "shards-blake2-1000": ("shards", "blake2", 1000),
    "shards-blake2-4096": ("shards", "blake2", 4096),
    "shards-sha256-1MiB": ("shards", "sha256", 1 << 20),  # one shard per file
}


@pytest.fixture(scope="module")
def api_signed(
    tmp_path_factory: pytest.TempPathFactory, ec_keys: dict[str, tuple[Path, Path]]
) -> dict[str, Path]:
    """One model signed with the peer's Python API in every serialization it offers."""
    import model_signing

    base = tmp_path_factory.mktemp("api-signed")
    model = build_peer_model(base / "model")
    out = {"model": model}
    for label, (method, algorithm, shard) in SERIALIZATIONS.items():
        # The peer's Config.__init__ methods carry no annotations (model_signing 1.1.1).
        hashing = model_signing.hashing.Config()  # type: ignore[no-untyped-call]
        if method == "files":
            hashing = hashing.use_file_serialization(hashing_algorithm=algorithm)
        else:
            assert shard is not None
            hashing = hashing.use_shard_serialization(hashing_algorithm=algorithm, shard_size=shard)
        sig = base / f"{label}.sig"
        signing = model_signing.signing.Config()  # type: ignore[no-untyped-call]
        signing.use_elliptic_key_signer(private_key=ec_keys["ecdsa-p256"][0]).set_hashing_config(
            hashing
        ).sign(model, sig)
        out[label] = sig
    return out


@pytest.mark.parametrize("label", list(SERIALIZATIONS))
def test_modelseal_verifies_model_signing_api_serializations(
    api_signed: dict[str, Path], ec_keys: dict[str, tuple[Path, Path]], label: str
) -> None:
    method, algorithm, shard = SERIALIZATIONS[label]
    sig = api_signed[label]
    written = payload_of(sig)["predicate"]["serialization"]
    assert written["method"] == method
    if shard is not None:
        assert written["shard_size"] == shard  # written by the peer as a float, e.g. 1000.0
    result = modelseal.verify(
        api_signed["model"], signature=sig, public_key=ec_keys["ecdsa-p256"][1]
    )
    serialization_ = result.manifest.serialization
    assert serialization_.method == method
    assert serialization_.hash_type == {"blake2": "blake2b"}.get(algorithm, algorithm)
    if shard is None:
        assert len(result.manifest.items) == len(MODEL_FILES)
    else:
        assert serialization_.shard_size == shard
        # OMS shards have no entry for an empty file.
        expected = sum(-(-len(d) // shard) for d in MODEL_FILES.values())
        assert len(result.manifest.items) == expected


@pytest.mark.parametrize("label", ["files-blake2", "shards-sha256-1000"])
def test_model_signing_api_signature_tamper_is_caught_by_modelseal(
    api_signed: dict[str, Path], ec_keys: dict[str, tuple[Path, Path]], tmp_path: Path, label: str
) -> None:
    model = shutil.copytree(api_signed["model"], tmp_path / "model")
    victim = model / "weights 01.bin"
    data = bytearray(victim.read_bytes())
    data[5000] ^= 0x80
    victim.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as err:
        modelseal.verify(model, signature=api_signed[label], public_key=ec_keys["ecdsa-p256"][1])
    [reason] = err.value.reasons
    assert reason.code == "modified"
    assert reason.path is not None and reason.path.startswith("weights 01.bin")
    if label.startswith("shards"):
        assert reason.path == "weights 01.bin:5000:6000"


def test_modelseal_honours_model_signing_ignore_paths(
    run_cli: RunCli, ec_keys: dict[str, tuple[Path, Path]], model: Path, tmp_path: Path
) -> None:
    priv, pub = ec_keys["ecdsa-p256"]
    (model / "README.md").write_text("not part of the model\n")
    sig = tmp_path / "model.sig"
    result = model_signing(
        "sign",
        "key",
        model,
        "--private_key",
        priv,
        "--signature",
        sig,
        "--ignore-paths",
        model / "README.md",
        "--ignore-paths",
        model / "nested" / "deeper",
    )
    assert result.returncode == 0, result.stderr
    statement = payload_of(sig)
    names = {r["name"] for r in statement["predicate"]["resources"]}
    assert "README.md" not in names and not any(n.startswith("nested/deeper") for n in names)
    assert {"README.md", "nested/deeper"} <= set(
        statement["predicate"]["serialization"]["ignore_paths"]
    )
    # Ignored paths may change freely; everything else may not.
    (model / "README.md").write_text("edited\n")
    (model / "nested" / "deeper" / "new.txt").write_text("new\n")
    code, out, err = run_cli("verify", model, "--signature", sig, "--public-key", pub)
    assert code == 0, err
    assert f"{len(MODEL_FILES) - 1} files match" in out
    (model / "config.json").write_text("{}")
    code, out, err = run_cli("verify", model, "--signature", sig, "--public-key", pub, "--json")
    assert code == 1
    assert [r["code"] for r in json.loads(out)["reasons"]] == ["modified"]


def test_symlinks_and_git_paths_both_ways(
    run_cli: RunCli, ec_keys: dict[str, tuple[Path, Path]], model: Path, tmp_path: Path
) -> None:
    priv, pub = ec_keys["ecdsa-p256"]
    (model / "link.bin").symlink_to("weights 01.bin")
    (model / ".git").mkdir()
    (model / ".git" / "config").write_text("[core]\n")
    (model / ".gitattributes").write_text("*.bin filter=lfs\n")
    # model_signing -> modelseal: symlink followed, git paths ignored by default.
    sig = tmp_path / "ms.sig"
    result = model_signing(
        "sign", "key", model, "--private_key", priv, "--signature", sig, "--allow_symlinks"
    )
    assert result.returncode == 0, result.stderr
    assert payload_of(sig)["predicate"]["serialization"]["allow_symlinks"] is True
    (model / ".git" / "config").write_text("[core]\n\tbare = false\n")
    code, out, err = run_cli("verify", model, "--signature", sig, "--public-key", pub)
    assert code == 0, err
    assert f"{len(MODEL_FILES) + 1} files match" in out
    # modelseal -> model_signing, with git paths signed too.
    sig = tmp_path / "seal.sig"
    code, _, err = run_cli(
        "sign",
        model,
        "--private-key",
        priv,
        "--signature",
        sig,
        "--allow-symlinks",
        "--no-ignore-git-paths",
    )
    assert code == 0, err
    names = {r["name"] for r in payload_of(sig)["predicate"]["resources"]}
    assert {"link.bin", ".git/config", ".gitattributes"} <= names
    result = model_signing(
        "verify",
        "key",
        model,
        "--signature",
        sig,
        "--public_key",
        pub,
        "--allow_symlinks",
        "--no-ignore-git-paths",
    )
    assert result.returncode == 0, result.stderr
    (model / ".git" / "config").write_text("changed\n")
    code, out, err = run_cli("verify", model, "--signature", sig, "--public-key", pub, "--json")
    assert code == 1
    assert [(r["code"], r["path"]) for r in json.loads(out)["reasons"]] == [
        ("modified", ".git/config")
    ]


@pytest.fixture(scope="module")
def cli_signed(
    tmp_path_factory: pytest.TempPathFactory, ec_keys: dict[str, tuple[Path, Path]]
) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cli-signed")
    model = build_peer_model(base / "model")
    sig = base / "model.sig"
    result = model_signing(
        "sign", "key", model, "--private_key", ec_keys["ecdsa-p256"][0], "--signature", sig
    )
    assert result.returncode == 0, result.stderr
    return {"model": model, "sig": sig}


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


TAMPERS: dict[str, tuple[Callable[[Path], object], list[tuple[str, str]]]] = {
    "one-byte": (lambda m: _flip(m / "nested/shard.bin"), [("modified", "nested/shard.bin")]),
    "extra-file": (
        lambda m: (m / "nested" / "backdoor.py").write_text("import os\n"),
        [("extra", "nested/backdoor.py")],
    ),
    "removed-file": (lambda m: (m / "config.json").unlink(), [("missing", "config.json")]),
    "removed-empty-file": (
        lambda m: (m / "nested/empty.bin").unlink(),
        [("missing", "nested/empty.bin")],
    ),
    "renamed-file": (
        lambda m: (m / "config.json").rename(m / "config.bak"),
        [("renamed", "config.json")],
    ),
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_modelseal_cli_catches_tampering_after_model_signing_signature(
    run_cli: RunCli,
    cli_signed: dict[str, Path],
    ec_keys: dict[str, tuple[Path, Path]],
    tmp_path: Path,
    tamper: str,
) -> None:
    model = shutil.copytree(cli_signed["model"], tmp_path / "model")
    pub = ec_keys["ecdsa-p256"][1]
    code, _, err = run_cli("verify", model, "--signature", cli_signed["sig"], "--public-key", pub)
    assert code == 0, err
    change, expected = TAMPERS[tamper]
    change(model)
    code, out, err = run_cli(
        "verify", model, "--signature", cli_signed["sig"], "--public-key", pub, "--json"
    )
    assert code == 1
    report = json.loads(out)
    assert report["verified"] is False
    assert [(r["code"], r["path"]) for r in report["reasons"]] == expected
    assert err.startswith("modelseal: error: model does not match its signature")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_modelseal_rejects_model_signing_bundle_with_edited_payload(
    run_cli: RunCli,
    cli_signed: dict[str, Path],
    ec_keys: dict[str, tuple[Path, Path]],
    tmp_path: Path,
) -> None:
    sig = Path(shutil.copy(cli_signed["sig"], tmp_path / "edited.sig"))
    rewrite_payload(sig, lambda s: s["predicate"]["resources"].pop())
    code, out, err = run_cli(
        "verify",
        cli_signed["model"],
        "--signature",
        sig,
        "--public-key",
        ec_keys["ecdsa-p256"][1],
        "--json",
    )
    assert code == 1
    assert [r["code"] for r in json.loads(out)["reasons"]] == ["bad-signature"]
    assert "signature does not verify" in err
    code, out, err = run_cli(
        "verify",
        cli_signed["model"],
        "--signature",
        cli_signed["sig"],
        "--public-key",
        ec_keys["ecdsa-p384"][1],
        "--json",
    )
    assert code == 1
    assert [r["code"] for r in json.loads(out)["reasons"]] == ["wrong-key"]
    assert "signature was made with another key" in err


# --- X.509 certificate chains, both ways ---------------------------------------------------


def test_modelseal_verifies_model_signing_certificate_signature(
    run_cli: RunCli, pki: Pki, other_pki: Pki, model: Path, tmp_path: Path
) -> None:
    sig = tmp_path / "model.sig"
    result = model_signing(
        "sign",
        "certificate",
        model,
        "--private_key",
        pki.leaf.key_path,
        "--signing_certificate",
        pki.leaf.cert_path,
        "--certificate_chain",
        pki.intermediate.cert_path,
        "--signature",
        sig,
    )
    assert result.returncode == 0, result.stderr
    chain = json.loads(sig.read_text())["verificationMaterial"]["x509CertificateChain"]
    assert len(chain["certificates"]) == 2
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--trust-anchor", pki.root.cert_path
    )
    assert code == 0, err
    assert "signed by certificate CN=leaf" in out
    # Another CA is not trusted; a key-based verification is a usage error.
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--trust-anchor", other_pki.root.cert_path, "--json"
    )
    assert code == 1
    assert [r["code"] for r in json.loads(out)["reasons"]] == ["certificate-untrusted"]
    code, _, err = run_cli("verify", model, "--signature", sig, "--public-key", pki.leaf.cert_path)
    assert code == 2
    assert "certificate-based" in err


def test_modelseal_verifies_model_signing_certificate_signature_with_full_chain(
    pki: Pki, model: Path, tmp_path: Path
) -> None:
    """A P-384 leaf (model_signing hashes with SHA-384) and the root itself in the bundle."""
    leaf = issue(tmp_path, "leaf-p384", issuer=pki.intermediate, algorithm="ecdsa-p384")
    sig = tmp_path / "model.sig"
    chain = concat(tmp_path / "chain.pem", pki.intermediate, pki.root)
    result = model_signing(
        "sign",
        "certificate",
        model,
        "--private_key",
        leaf.key_path,
        "--signing_certificate",
        leaf.cert_path,
        "--certificate_chain",
        chain,
        "--signature",
        sig,
    )
    assert result.returncode == 0, result.stderr
    certs = json.loads(sig.read_text())["verificationMaterial"]["x509CertificateChain"]
    assert len(certs["certificates"]) == 3
    verified = modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])
    assert verified.signer == "certificate CN=leaf-p384,O=modelseal tests"
    assert len(verified.manifest.items) == len(MODEL_FILES)


def test_model_signing_verifies_modelseal_certificate_signature(
    run_cli: RunCli, pki: Pki, other_pki: Pki, model: Path, tmp_path: Path
) -> None:
    sig = tmp_path / "model.sig"
    code, out, err = run_cli(
        "sign",
        model,
        "--private-key",
        pki.leaf.key_path,
        "--signature",
        sig,
        "--certificate",
        pki.leaf.cert_path,
        "--certificate-chain",
        pki.intermediate.cert_path,
    )
    assert code == 0, err
    assert "with certificate CN=leaf" in out
    material = json.loads(sig.read_text())["verificationMaterial"]
    assert len(material["x509CertificateChain"]["certificates"]) == 2
    assert "publicKey" not in material
    result = model_signing(
        "verify",
        "certificate",
        model,
        "--signature",
        sig,
        "--certificate_chain",
        pki.root.cert_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Verification succeeded" in result.stdout
    result = model_signing(
        "verify",
        "certificate",
        model,
        "--signature",
        sig,
        "--certificate_chain",
        other_pki.root.cert_path,
    )
    assert result.returncode == 1
    assert "unable to get local issuer certificate" in result.stderr


def test_model_signing_verifies_modelseal_leaf_only_bundle_with_intermediate_anchor(
    pki: Pki, model: Path, tmp_path: Path
) -> None:
    """Without --certificate-chain the verifier must be given the intermediate as well."""
    sig = tmp_path / "model.sig"
    modelseal.sign(
        model, private_key=pki.leaf.key_path, signature=sig, certificate=pki.leaf.cert_path
    )
    both = concat(tmp_path / "ca.pem", pki.root, pki.intermediate)
    result = model_signing(
        "verify", "certificate", model, "--signature", sig, "--certificate_chain", both
    )
    assert result.returncode == 0, result.stderr
    result = model_signing(
        "verify",
        "certificate",
        model,
        "--signature",
        sig,
        "--certificate_chain",
        pki.root.cert_path,
    )
    assert result.returncode == 1
    with pytest.raises(CertificateError) as err:
        modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])
    assert [r.code for r in err.value.reasons] == ["certificate-untrusted"]
    assert modelseal.verify(
        model, signature=sig, trust_anchors=[pki.root.cert_path, pki.intermediate.cert_path]
    )


def test_modelseal_is_stricter_than_model_signing_on_extended_key_usage(
    pki: Pki, model: Path, tmp_path: Path
) -> None:
    """model_signing accepts keyUsage digitalSignature alone; modelseal also requires an EKU,
    if present, to allow code signing."""
    server = issue(
        tmp_path, "server", issuer=pki.intermediate, eku=[ExtendedKeyUsageOID.SERVER_AUTH]
    )
    sig = tmp_path / "model.sig"
    result = model_signing(
        "sign",
        "certificate",
        model,
        "--private_key",
        server.key_path,
        "--signing_certificate",
        server.cert_path,
        "--certificate_chain",
        pki.intermediate.cert_path,
        "--signature",
        sig,
    )
    assert result.returncode == 0, result.stderr
    result = model_signing(
        "verify",
        "certificate",
        model,
        "--signature",
        sig,
        "--certificate_chain",
        pki.root.cert_path,
    )
    assert result.returncode == 0, result.stderr
    with pytest.raises(CertificateError) as err:
        modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])
    [reason] = err.value.reasons
    assert reason.code == "certificate-usage"
    assert "codeSigning" in reason.message


def test_expired_signing_certificate_model_signing_accepts_modelseal_refuses(
    run_cli: RunCli, model: Path, tmp_path: Path
) -> None:
    """model_signing checks the chain at the leaf's notBefore (so forever after); modelseal
    checks it now, as OMS bundles carry no trusted timestamp."""
    root = issue(tmp_path, "root", ca=True, not_before=NOW - 90 * DAY, not_after=NOW + 90 * DAY)
    intermediate = issue(
        tmp_path, "intermediate", issuer=root, ca=True, path_length=0, not_before=NOW - 90 * DAY
    )
    leaf = issue(
        tmp_path, "leaf", issuer=intermediate, not_before=NOW - 30 * DAY, not_after=NOW - DAY
    )
    sig = tmp_path / "model.sig"
    result = model_signing(
        "sign",
        "certificate",
        model,
        "--private_key",
        leaf.key_path,
        "--signing_certificate",
        leaf.cert_path,
        "--certificate_chain",
        intermediate.cert_path,
        "--signature",
        sig,
    )
    assert result.returncode == 0, result.stderr  # model_signing signs with an expired cert
    result = model_signing(
        "verify", "certificate", model, "--signature", sig, "--certificate_chain", root.cert_path
    )
    assert result.returncode == 0, result.stderr
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--trust-anchor", root.cert_path, "--json"
    )
    assert code == 1
    assert [r["code"] for r in json.loads(out)["reasons"]] == ["certificate-expired"]
    assert "expired on" in err
    # Verified as of a moment inside the leaf's validity, modelseal agrees.
    verified = modelseal.verify(
        model, signature=sig, trust_anchors=[root.cert_path], at=NOW - 10 * DAY
    )
    assert verified.signer == "certificate CN=leaf,O=modelseal tests"


# --- keys model_signing cannot read ---------------------------------------------------------


@pytest.mark.parametrize("alg", ["ed25519", "rsa-pss-3072"])
def test_non_ec_keys_make_valid_oms_bundles(
    run_cli: RunCli, model: Path, tmp_path: Path, alg: str
) -> None:
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    code, _, err = run_cli(
        "keygen", "--algorithm", alg, "--private-key", priv, "--public-key", pub, "--no-passphrase"
    )
    assert code == 0, err
    sig = tmp_path / "model.sig"
    code, out, err = run_cli("sign", model, "--private-key", priv, "--signature", sig)
    assert code == 0, err
    bundle = json.loads(sig.read_text())
    assert bundle["mediaType"] == BUNDLE_MEDIA_TYPE
    assert bundle["dsseEnvelope"]["payloadType"] == IN_TOTO
    assert len(bundle["dsseEnvelope"]["signatures"]) == 1
    pem = serialization.load_pem_public_key(pub.read_bytes()).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == hashlib.sha256(pem).hexdigest()
    statement = payload_of(sig)
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE
    resources = {r["name"]: r for r in statement["predicate"]["resources"]}
    assert set(resources) == set(MODEL_FILES)
    for name, data in MODEL_FILES.items():
        assert resources[name]["algorithm"] == "sha256"
        assert resources[name]["digest"] == hashlib.sha256(data).hexdigest()
    assert statement["predicate"]["serialization"]["method"] == "files"
    assert statement["subject"][0]["name"] == model.name
    code, out, err = run_cli("verify", model, "--signature", sig, "--public-key", pub, "--json")
    assert code == 0, err
    assert json.loads(out)["root_digest"]["sha256"] == statement["subject"][0]["digest"]["sha256"]
    # model_signing 1.1.1 reads only EC keys: it refuses, it does not crash or accept.
    result = model_signing("verify", "key", model, "--signature", sig, "--public_key", pub)
    assert result.returncode == 1
    assert "Verification failed" in result.stderr
