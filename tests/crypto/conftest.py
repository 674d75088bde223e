"""Fixtures for the Protect tests: keysets, the real tink package, and a rule for peers.

Under ``CI=true`` a missing peer program (tink, SoftHSM2, moto) fails the test; elsewhere the
test is skipped with the reason.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from modelseal.crypto import keyset as ks


def require(condition: bool, why: str) -> None:
    """Skip (outside CI) or fail (under CI=true) when a peer the test needs is missing."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required under CI: {why}")
    pytest.skip(why)


def require_module(name: str, install: str) -> ModuleType:
    """The top-level package ``name``; skip (or fail under CI) when it is not installed."""
    try:
        return __import__(name)
    except ImportError:
        require(False, f"python package {name!r} is not installed ({install})")
        raise  # not reached: require() skips or fails the test


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} not found (Debian package {package})")
    assert path is not None
    return path


class KeepOpen(io.BytesIO):
    """A BytesIO that survives tink closing it, so the ciphertext can be read afterwards."""

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def tink_streaming() -> Any:
    require_module("tink", "pip install 'modelseal[crypto-test]'")
    from tink import streaming_aead  # type: ignore[import-untyped]  # tink ships no types

    streaming_aead.register()
    return streaming_aead


@pytest.fixture
def small_keyset() -> ks.Keyset:
    """A streaming keyset with 4 KiB segments so that many-segment cases stay fast."""
    return ks.new_streaming_keyset(segment_size=4096)


@pytest.fixture
def keyset_1mb() -> ks.Keyset:
    return ks.new_streaming_keyset()


@pytest.fixture
def passphrase_env(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "correct horse battery staple")
    return b"correct horse battery staple"


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by relative POSIX path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def leftovers(directory: Path) -> list[str]:
    """Temporary or partial files left in ``directory`` (there must be none)."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))
