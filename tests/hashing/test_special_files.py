"""A FIFO (or another special file) swapped in for a model file between listing and reading is an
error, never a hang: files are opened without blocking and must then be regular files.

Every call runs in a thread joined with a timeout; a call that hangs is released (the FIFO gets
a writer that closes at once) and the test fails."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import modelseal
from modelseal.errors import InputError, IntegrityError, ModelPathError
from modelseal.hashing import HashOptions, hash_model
from modelseal.hashing.engine import Reader
from modelseal.hashing.walk import IgnoreRules, Listing, list_model

TIMEOUT = 10.0
READERS: list[Reader] = ["read", "mmap", "capture", "map"]


def release(fifo: Path) -> None:
    """Let a reader blocked on opening ``fifo`` go on (to end of file)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader waiting
    os.close(fd)


def outcome_within(fifo: Path, call: Callable[[], object]) -> BaseException | None:
    """The exception ``call`` raised (``None`` if it returned); fails the test if it hangs."""
    caught: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test
            caught.append(exc)
        else:
            caught.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        while thread.is_alive():
            release(fifo)
            thread.join(0.1)
        pytest.fail(f"blocked on the FIFO {fifo} for {TIMEOUT} s")
    return caught[0]


def swap_for_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def swap_after_listing(monkeypatch: pytest.MonkeyPatch, module: ModuleType, victim: Path) -> None:
    """Make ``module.list_model`` list the model as it is, then swap ``victim`` for a FIFO."""

    def list_then_swap(
        root: Path, *, allow_symlinks: bool, ignore: IgnoreRules
    ) -> tuple[Listing, tuple[str, ...]]:
        found = list_model(root, allow_symlinks=allow_symlinks, ignore=ignore)
        swap_for_fifo(victim)
        return found

    monkeypatch.setattr(module, "list_model", list_then_swap)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("shard_size", [None, 4096])
def test_single_file_model_swapped_for_a_fifo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: Reader, shard_size: int | None
) -> None:
    import modelseal.hashing.engine as engine

    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(10_000))
    swap_after_listing(monkeypatch, engine, model)
    error = outcome_within(
        model, lambda: hash_model(model, HashOptions(reader=reader, shard_size=shard_size))
    )
    assert isinstance(error, ModelPathError), error
    assert "model.bin" in error.message and "not a regular file" in error.message


@pytest.mark.parametrize("reader", READERS)
def test_file_in_a_model_directory_swapped_for_a_fifo_when_signing(
    model_dir: Path,
    key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    reader: Reader,
) -> None:
    import modelseal.hashing.engine as engine

    victim = model_dir / "weights" / "model-00001.bin"
    swap_after_listing(monkeypatch, engine, victim)
    sig = model_dir.parent / "model.sig"
    error = outcome_within(
        victim,
        lambda: modelseal.sign(model_dir, private_key=key_pair[0], signature=sig, reader=reader),
    )
    assert isinstance(error, ModelPathError), error
    assert error.message == (
        "cannot hash 'weights/model-00001.bin': is not a regular file (device, FIFO or socket)"
    )
    assert not sig.exists()


@pytest.mark.parametrize("reader", READERS)
def test_file_in_a_model_directory_swapped_for_a_fifo_when_verifying(
    model_dir: Path,
    key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    reader: Reader,
) -> None:
    import modelseal.hashing.engine as engine

    sig = model_dir.parent / "model.sig"
    modelseal.sign(model_dir, private_key=key_pair[0], signature=sig)
    victim = model_dir / "config.json"
    swap_after_listing(monkeypatch, engine, victim)
    error = outcome_within(
        victim,
        lambda: modelseal.verify(model_dir, signature=sig, public_key=key_pair[1], reader=reader),
    )
    assert isinstance(error, IntegrityError), error
    assert [(r.code, r.path) for r in error.reasons] == [("unreadable", "config.json")]
    assert "not a regular file" in error.reasons[0].message


def test_weights_file_swapped_for_a_fifo_when_fingerprinting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelseal.hashing.fingerprint as fingerprint_module

    model = tmp_path / "model"
    model.mkdir()
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    weights = model / "model.safetensors"
    weights.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    swap_after_listing(monkeypatch, fingerprint_module, weights)
    error = outcome_within(weights, lambda: modelseal.fingerprint(model))
    assert isinstance(error, InputError), error
    assert "not a regular file" in error.message


@pytest.mark.parametrize("what", ["fifo", "socket"])
def test_special_files_listed_in_a_model_are_refused(
    model_dir: Path, key_pair: tuple[Path, Path], what: str
) -> None:
    special = model_dir / what
    with socket.socket(socket.AF_UNIX) as sock:
        if what == "fifo":
            os.mkfifo(special)
        else:
            sock.bind(str(special))
        error = outcome_within(special, lambda: modelseal.sign(model_dir, private_key=key_pair[0]))
    assert isinstance(error, ModelPathError), error
    assert error.message == (
        f"cannot hash {what!r}: is not a regular file (device, FIFO or socket)"
    )
