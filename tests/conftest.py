"""Shared fixtures: small real models built at run time, and key pairs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from modelseal.signing.keys import generate_key, write_key_pair

# Under CI the property tests draw a fixed, reproducible set of examples (a red run can be
# rerun as it was); locally they keep exploring new ones (and find what CI then pins).
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

pytest_plugins = ("pytester",)


def build_kat_model(root: Path) -> Path:
    """The fixed tree behind the known-answer root digests (computed with model_signing 1.1.1)."""
    (root / "sub").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "a.txt").write_bytes(b"hello")
    (root / "empty.bin").write_bytes(b"")
    (root / "sub" / "big.bin").write_bytes(b"x" * 2500)
    (root / "a" / "b").write_bytes(b"b")
    return root


def build_model(root: Path, *, seed: int = 0) -> Path:
    """A small model directory with config, nested shards and an empty file."""
    import random

    rng = random.Random(seed)
    (root / "weights").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden": 16, "layers": 2}\n')
    (root / "tokenizer.txt").write_text("a b c d e f\n")
    (root / "weights" / "model-00001.bin").write_bytes(rng.randbytes(70_000))
    (root / "weights" / "model-00002.bin").write_bytes(rng.randbytes(33_333))
    (root / "weights" / "empty.bin").write_bytes(b"")
    return root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return build_model(tmp_path / "model")


@pytest.fixture(scope="session")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An unencrypted P-256 key pair on disk (private, public)."""
    d = tmp_path_factory.mktemp("keys")
    write_key_pair(generate_key("ecdsa-p256"), d / "key.pem", d / "key.pub", passphrase=None)
    return d / "key.pem", d / "key.pub"


@pytest.fixture(scope="session")
def other_key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("other-keys")
    write_key_pair(generate_key("ecdsa-p256"), d / "key.pem", d / "key.pub", passphrase=None)
    return d / "key.pem", d / "key.pub"


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``modelseal ARGS`` in-process; return (exit code, stdout, stderr)."""
    from modelseal.cli.main import main

    def run(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Test ids for bytes built at collection time (an archive with a timestamp, say) do not
    show them, nor their length (which a timestamp can change too): every xdist worker must
    collect the same ids. pytest numbers ids that come out the same."""
    if isinstance(val, (bytes, bytearray)) and len(val) > 16:
        return f"{argname}-bytes"
    return None
