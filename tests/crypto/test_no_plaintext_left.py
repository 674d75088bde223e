"""``kill -9`` during decryption leaves no plaintext file behind (issue 14).

A child process decrypts and is stopped at a chosen point - after any plaintext segment was
written, at the fsync, or after the whole input authenticated but before the output got its
name - and killed with SIGKILL there. Then nothing but the inputs and the previous destination
may exist: no ``.partial`` file, no complete (or partial) plaintext under any name.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.crypto import api
from modelseal.crypto import keyset as ks

pytestmark = pytest.mark.skipif(
    not hasattr(os, "O_TMPFILE"), reason="unnamed files (O_TMPFILE) are Linux-only"
)
SEG = 4096
PLAIN = bytes(range(256)) * (16 * SEG // 256)  # 16 segments of plaintext
CHILD = r"""
import os, sys, time
from modelseal.crypto import api, outputs, streaming
from modelseal.crypto import keyset as ks

src, dst, keyset, point, k, force = sys.argv[1:7]
k = int(k)
calls = {"n": 0}

def stop_here():
    os.write(1, b"!")
    time.sleep(600)

def counted():
    calls["n"] += 1
    if calls["n"] == k:
        stop_here()

class Stopping:
    def __init__(self, out):
        self.out = out
    def write(self, data):
        n = self.out.write(data)
        if point == "segment":
            counted()
        return n

real_decrypt = streaming.decrypt_stream
def decrypt_stream(keys, src, dst, **kw):
    return real_decrypt(keys, src, Stopping(dst), **kw)
streaming.decrypt_stream = decrypt_stream

real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    if point == "fsync":
        counted()
os.fsync = fsync

real_link = outputs.link_unnamed
def link_unnamed(fd, path):
    if point == "link":
        counted()
    return real_link(fd, path)
outputs.link_unnamed = link_unnamed

keys = ks.from_json(open(keyset).read())
api.decrypt(src, dst, keyset=keys, overwrite=force == "1", workers=1)
os.write(1, b"done")
"""


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def kill_at(src: Path, dst: Path, keyset: Path, point: str, k: int, force: bool) -> bool:
    """Run the child until it stops at ``point`` (call ``k``) and SIGKILL it there; False if
    it finished without reaching that point."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [str(src), str(dst), str(keyset), point, str(k), "1" if force else "0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "the child neither stopped nor finished"
        first = os.read(proc.stdout.fileno(), 1)
        if first == b"!":
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(60)
            assert proc.returncode == -signal.SIGKILL
            return True
        proc.wait(60)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def keyset_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ks.Keyset]:
    keyset = ks.new_streaming_keyset(segment_size=SEG)
    path = tmp_path_factory.mktemp("keys") / "ks.json"
    path.write_text(ks.to_json(keyset))
    return path, keyset


POINTS = st.sampled_from(["segment", "fsync", "link"])


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(point=POINTS, k=st.integers(1, 17), force=st.booleans())
def test_killed_file_decryption_leaves_no_plaintext(
    tmp_path_factory: pytest.TempPathFactory,
    keyset_file: tuple[Path, ks.Keyset],
    point: str,
    k: int,
    force: bool,
) -> None:
    work = tmp_path_factory.mktemp("kill-file")
    inputs = tmp_path_factory.mktemp("in")
    (inputs / "w.bin").write_bytes(PLAIN)
    api.encrypt(inputs / "w.bin", inputs / "w.enc", keyset=keyset_file[1])
    (inputs / "w.bin").unlink()
    dst = work / "w.bin"
    if force:
        dst.write_bytes(b"previous")
    k = k if point == "segment" else 1
    if not kill_at(inputs / "w.enc", dst, keyset_file[0], point, k, force):
        pytest.fail(f"the child never reached {point} #{k}")
    assert files_under(work) == ({"w.bin": b"previous"} if force else {})
    for entry in work.iterdir():  # at most an empty private directory (killed while naming)
        if entry.name != "w.bin":
            assert entry.name.startswith(".w.bin.") and entry.name.endswith(".partial")
            assert entry.is_dir() and entry.stat().st_mode & 0o777 == 0o700


def test_a_finished_decryption_is_complete(
    tmp_path: Path, keyset_file: tuple[Path, ks.Keyset]
) -> None:
    (tmp_path / "w.bin").write_bytes(PLAIN)
    api.encrypt(tmp_path / "w.bin", tmp_path / "w.enc", keyset=keyset_file[1])
    assert not kill_at(tmp_path / "w.enc", tmp_path / "out", keyset_file[0], "segment", 99, False)
    assert (tmp_path / "out").read_bytes() == PLAIN
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o600


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(point=POINTS, k=st.integers(1, 3 * 5), force=st.booleans())
def test_killed_directory_decryption_leaves_no_plaintext(
    tmp_path_factory: pytest.TempPathFactory,
    keyset_file: tuple[Path, ks.Keyset],
    point: str,
    k: int,
    force: bool,
) -> None:
    work = tmp_path_factory.mktemp("kill-dir")
    inputs = tmp_path_factory.mktemp("in")
    model = inputs / "model"
    (model / "sub").mkdir(parents=True)
    files = {"a.bin": PLAIN[: 4 * SEG], "b.bin": PLAIN[: 3 * SEG], "sub/c.bin": PLAIN[: 2 * SEG]}
    for name, data in files.items():
        (model / name).write_bytes(data)
    api.encrypt(model, inputs / "enc", keyset=keyset_file[1])
    dst = work / "model"
    previous = {"old.txt": b"previous"}
    if force:
        dst.mkdir()
        (dst / "old.txt").write_bytes(b"previous")
    segments = 5 + 4 + 3  # writes: each file's segments plus its final (short) segment
    k = 1 + (k - 1) % {"segment": segments, "fsync": 3, "link": 3}[point]
    if not kill_at(inputs / "enc", dst, keyset_file[0], point, k, force):
        pytest.fail(f"the child never reached {point} #{k}")
    found = files_under(work)
    kept = {n: d for n, d in found.items() if n.startswith("model/")}
    assert kept == ({f"model/{n}": d for n, d in previous.items()} if force else {})
    # What may stay: the private (0700) build directory; with files in it only when killed
    # while naming them, i.e. after every file authenticated.
    for entry in work.iterdir():
        if entry.name != "model":
            assert entry.name.startswith(".model.") and entry.name.endswith(".partial")
            assert entry.stat().st_mode & 0o777 == 0o700
    named = {n.split("/", 1)[1]: d for n, d in found.items() if not n.startswith("model/")}
    if point != "link":
        assert named == {}
    assert len(named) <= k - 1 and all(files[n] == d for n, d in named.items())


@pytest.mark.parametrize("unnamed", [0, 2])
def test_fallbacks_round_trip_and_leave_nothing_on_failure(
    tmp_path: Path,
    keyset_file: tuple[Path, ks.Keyset],
    monkeypatch: pytest.MonkeyPatch,
    unnamed: int,
) -> None:
    """Without O_TMPFILE (other systems), or past the open-file budget, files are written inside
    the private directory instead: still complete only on success, nothing left on failure."""
    from modelseal.crypto import outputs
    from modelseal.errors import DecryptionError

    if unnamed == 0:
        monkeypatch.setattr(outputs, "_TMPFILE", 0)
    monkeypatch.setattr(outputs, "MAX_OPEN_UNNAMED", unnamed)
    keyset = keyset_file[1]
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    for i in range(5):
        (model / f"f{i}.bin").write_bytes(PLAIN[: (i + 1) * 1000])
    (model / "sub" / "g.bin").write_bytes(PLAIN)
    api.encrypt(model, tmp_path / "enc", keyset=keyset)
    api.encrypt(model / "sub" / "g.bin", tmp_path / "g.enc", keyset=keyset)
    work = tmp_path / "work"
    work.mkdir()
    api.decrypt(tmp_path / "enc", work / "dir", keyset=keyset)
    api.decrypt(tmp_path / "g.enc", work / "g.bin", keyset=keyset)
    assert files_under(work / "dir") == files_under(model)
    assert (work / "g.bin").read_bytes() == PLAIN
    assert (work / "g.bin").stat().st_mode & 0o777 == 0o600
    blob = tmp_path / "enc" / "blobs" / "00000005.enc"  # the last file fails after the others
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))
    single = bytearray((tmp_path / "g.enc").read_bytes())
    single[-1] ^= 0x01
    (tmp_path / "g.enc").write_bytes(bytes(single))
    with pytest.raises(DecryptionError):
        api.decrypt(tmp_path / "enc", work / "dir", keyset=keyset, overwrite=True)
    with pytest.raises(DecryptionError):
        api.decrypt(tmp_path / "g.enc", work / "g.bin", keyset=keyset, overwrite=True)
    assert sorted(p.name for p in work.iterdir()) == ["dir", "g.bin"]  # nothing else left
    assert files_under(work / "dir") == files_under(model)  # the previous outputs intact
    assert (work / "g.bin").read_bytes() == PLAIN
