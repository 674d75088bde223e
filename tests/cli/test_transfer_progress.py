"""Push and pull show progress (bytes, rate, time left) on a terminal, never in --json output,
and anything that may prompt for a passphrase comes before the bar."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import modelseal
from modelseal.crypto.providers.local import LocalProvider
from modelseal.registry.backend import LocalBackend, pull, push
from modelseal.registry.models import VersionRef
from tests.registry.fixtures import open_env


def _tty_stderr(*args: str, home: Path) -> tuple[int, str, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelseal", *args, "--home", str(home)],
        stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait()
    os.close(master)
    return code, out, b"".join(chunks).decode(errors="replace")


def test_push_and_pull_show_progress_on_a_terminal(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00" + os.urandom((48 << 20) - 1))  # raw weights
    sig = tmp_path / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=sig)
    home = tmp_path / "home"
    code, out, err = _tty_stderr("push", str(model), "--name", "big", "--signature", str(sig),
                                 "--public-key", str(key_pair[1]), home=home)  # fmt: skip
    assert code == 0, err
    assert "pushing" in err and "MiB" in err and "pushing" not in out
    code, out, err = _tty_stderr("pull", "big:1", str(tmp_path / "a"), home=home)
    assert code == 0, err
    assert "pulling" in err and "MiB" in err
    code, out, err = _tty_stderr("pull", "big:1", str(tmp_path / "b"), "--json", home=home)
    assert code == 0 and "pulling" not in err and out.lstrip().startswith("{")


class Recorder:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.total = 0
        self.seen = 0

    def start(self, total: int) -> None:
        self.events.append("start")
        self.total = total

    def advance(self, count: int) -> None:
        self.seen += count


def test_the_key_is_opened_before_the_bar_starts(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"\x00" + os.urandom((1 << 20) - 1))  # raw weights, not pickle-like
    sig = tmp_path / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=sig)
    env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'r.db'}")
    try:
        backend = LocalBackend(env.registry, env.admin)
        kek = LocalProvider.create(tmp_path / "kek.json", passphrase=None)
        sent = Recorder([])
        push(backend, model, name="m", signature=sig, public_key=key_pair[1], kek=kek,
             progress=sent)  # fmt: skip
        assert sent.events == ["start"] and sent.seen >= sent.total == 1 << 20
        events: list[str] = []

        def open_key() -> LocalProvider:
            events.append("key")  # where a passphrase prompt would be
            return kek

        received = Recorder(events)
        pull(backend, VersionRef("m", number=1), tmp_path / "out.bin", kek=open_key,
             progress=received)  # fmt: skip
        assert events == ["key", "start"]
        assert received.seen == received.total > 1 << 20  # ciphertext: a little more
    finally:
        env.registry.close()
