"""A progress bar appears on stderr when it is a terminal, and never in --json output."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path


def _run_with_tty_stderr(*args: str) -> tuple[int, str, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelseal", *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO once the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait()
    os.close(master)
    return code, out, b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_terminal_only(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(64 << 20))
    code, out, err = _run_with_tty_stderr("digest", str(big), "--workers", "1")
    assert code == 0
    assert out.startswith("sha256:") and "hashing" not in out
    assert "hashing" in err and "MiB" in err
    code, out, err = _run_with_tty_stderr("digest", str(big), "--json")
    assert code == 0 and "hashing" not in err
    assert out.lstrip().startswith("{")
    plain = subprocess.run(
        [sys.executable, "-m", "modelseal", "digest", str(big)], capture_output=True, text=True
    )
    assert plain.returncode == 0 and plain.stderr == ""
