"""sign and verify count what they covered in words that agree with the number ("1 file",
"2 files"), and a single-file model is named by its file, never by OMS's ".", in their output."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]
WRONG_NUMBER = re.compile(r"\b1 (files|shards|resources)\b|\b([02-9]|\d\d+) (file|shard)\b")


def _model(root: Path, sizes: list[int]) -> Path:
    """A single file for one size, else a directory with one file per size."""
    if len(sizes) == 1:
        root.parent.mkdir(parents=True, exist_ok=True)
        path = root.with_suffix(".bin")
        path.write_bytes(os.urandom(sizes[0]))
        return path
    root.mkdir(parents=True)
    for index, size in enumerate(sizes):
        (root / f"part-{index}.bin").write_bytes(os.urandom(size))
    return root


@pytest.mark.parametrize(
    ("sizes", "shard_size", "words", "verified"),
    [
        ([100], None, "1 file", "1 file matches"),
        ([100, 50], None, "2 files", "2 files match"),
        ([100], "100", "1 shard", "1 shard matches"),
        ([250], "100", "3 shards", "3 shards match"),
        ([100, 50], "100", "2 shards", "2 shards match"),
    ],
)
def test_counts_agree_with_their_number(
    run_cli: Run,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    sizes: list[int],
    shard_size: str | None,
    words: str,
    verified: str,
) -> None:
    model = _model(tmp_path / "m" / "model", sizes)
    sig = tmp_path / "model.sig"
    extra = ["--shard-size", shard_size] if shard_size else []
    code, out, err = run_cli(
        "sign", model, "--private-key", key_pair[0], "--signature", sig, *extra
    )
    assert code == 0, err
    assert f"signed {model} ({words}, sha256) with " in out
    code, verify_out, err = run_cli(
        "verify", model, "--signature", sig, "--public-key", key_pair[1]
    )
    assert code == 0, err
    assert f"verified {model}: {verified}, signed by " in verify_out
    code, digest_out, err = run_cli("digest", model, *extra)
    assert code == 0, err
    for text in (out, verify_out, digest_out):
        assert not WRONG_NUMBER.search(text), text


@pytest.mark.parametrize("shard_size", [None, "1000"])
def test_a_changed_single_file_is_named_by_the_cli(
    run_cli: Run, key_pair: tuple[Path, Path], tmp_path: Path, shard_size: str | None
) -> None:
    model = tmp_path / "model.safetensors"
    data = bytearray(os.urandom(2500))
    model.write_bytes(bytes(data))
    sig = tmp_path / "model.sig"
    extra = ["--shard-size", shard_size] if shard_size else []
    assert run_cli("sign", model, "--private-key", key_pair[0], "--signature", sig, *extra)[0] == 0
    data[1500] ^= 0x01
    model.write_bytes(bytes(data))
    code, _, err = run_cli("verify", model, "--signature", sig, "--public-key", key_pair[1])
    assert code == 1
    where = " in bytes 1000..2000" if shard_size else ""
    first = err.splitlines()[0]
    assert first.startswith(f"  modified   model.safetensors: content changed{where} (expected ")
    assert "1 difference (model.safetensors: content changed" in err
    assert " .: " not in err and "'.'" not in err
