"""An encrypted Keras model is decrypted, verified and loaded without writing its plaintext:
no file is opened for writing while it loads, and a ``kill -9`` at any point leaves no plaintext
on disk (temporary directory, the model's directory)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # the backend modelseal[keras] installs
pytest.importorskip("torch")
pytest.importorskip("keras")

# The child loads the model; `pause` makes it stop (and say so) at one point of the load.
_CHILD = textwrap.dedent(
    """
    import os, sys, time
    os.environ["KERAS_BACKEND"] = "torch"
    from pathlib import Path
    import modelseal
    from modelseal.crypto import keyset as ks
    from modelseal.loading import verified

    model, sig, pub, keyset_file, pause = sys.argv[1:6]
    writes = []

    def audit(event, args):
        if event == "open" and isinstance(args[0], (str, bytes)) and args[2] & 0o3:
            if args[0] != "/dev/null":
                writes.append(str(args[0]))  # O_WRONLY / O_RDWR

    def stop(*_):
        print("paused", flush=True)
        time.sleep(60)

    if pause == "verified":
        verified._after_verification = lambda _p: stop()
    elif pause == "weights":
        import keras.src.saving.saving_lib as saving_lib
        real = saving_lib._load_state
        def slow(*a, **k):
            real(*a, **k)
            stop()
        saving_lib._load_state = slow
    keyset = ks.read_keyset_file(keyset_file)
    import tempfile, keras, keras.src.saving.saving_lib  # imports probe the temp dir; not loading
    tempfile.gettempdir()
    sys.addaudithook(audit)
    loaded = modelseal.load(model, signature=sig, public_key=pub, keyset=keyset)
    print("writes:", writes, flush=True)
    print("loaded:", type(loaded).__name__, flush=True)
    """
)


def _keras_model(path: Path, *, assets: bool = False) -> bytes:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(4)])
    model.save(path)
    if assets:  # an extra asset member: Keras extracts assets/ to disk
        buf = io.BytesIO()
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w") as dst:
            for info in src.infolist():
                dst.writestr(info, src.read(info))
            dst.writestr("assets/vocabulary.txt", b"a\nb\n")
        path.write_bytes(buf.getvalue())
    return path.read_bytes()


@pytest.fixture
def encrypted_keras(tmp_path: Path, key_pair: tuple[Path, Path]) -> tuple[Path, list[str], bytes]:
    import modelseal
    from modelseal import crypto
    from modelseal.crypto import keyset as ks

    plain = tmp_path / "src" / "model.keras"
    plain.parent.mkdir()
    data = _keras_model(plain)
    sig = tmp_path / "model.sig"
    modelseal.sign(plain, private_key=key_pair[0], signature=sig)
    keyset = ks.new_streaming_keyset(segment_size=4096)
    keyset_file = tmp_path / "keyset.json"
    ks.write_keyset_file(keyset_file, keyset, passphrase=None)
    models = tmp_path / "models"
    models.mkdir()
    enc = models / "model.keras.enc"
    crypto.encrypt(plain, enc, keyset=keyset)
    plain.unlink()
    return models, [str(enc), str(sig), str(key_pair[1]), str(keyset_file)], data


def _child(args: list[str], pause: str, tmp: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp), "KERAS_BACKEND": "torch"}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args, pause],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _leftovers(roots: list[Path], plaintext: bytes) -> list[str]:
    """Files under ``roots`` holding the plaintext model or its weights member."""
    with zipfile.ZipFile(io.BytesIO(plaintext)) as archive:
        weights = archive.read("model.weights.h5")
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                if content == plaintext or weights[:4096] in content:
                    found.append(str(path))
    return found


def test_loading_writes_nothing(
    tmp_path: Path, encrypted_keras: tuple[Path, list[str], bytes]
) -> None:
    models, args, _ = encrypted_keras
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    child = _child(args, "none", tmp)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert "writes: []" in out and "loaded: Sequential" in out
    assert not list(tmp.iterdir())
    assert sorted(p.name for p in models.iterdir()) == ["model.keras.enc"]


@pytest.mark.parametrize("pause", ["verified", "weights"])
def test_kill_9_during_loading_leaves_no_plaintext(
    tmp_path: Path, encrypted_keras: tuple[Path, list[str], bytes], pause: str
) -> None:
    models, args, plaintext = encrypted_keras
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    child = _child(args, pause, tmp)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "paused", child.stderr.read() if child.stderr else ""
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert not _leftovers([tmp, models], plaintext)
    assert sorted(p.name for p in models.iterdir()) == ["model.keras.enc"]


def test_assets_are_the_only_thing_extracted_and_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model with assets: only assets/ reaches a private 0700 directory, removed after."""
    from modelseal.loading.native import load_keras

    plain = tmp_path / "a.keras"
    data = _keras_model(plain, assets=True)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    seen: list[tuple[str, int]] = []
    import keras.src.saving.saving_lib as saving_lib

    real = saving_lib._load_state

    def spy(*args: object, **kwargs: object) -> None:
        for path in tmp.rglob("*"):
            seen.append((str(path.relative_to(tmp)), path.stat().st_mode & 0o777))
        real(*args, **kwargs)

    monkeypatch.setattr(saving_lib, "_load_state", spy)
    model, kind, _, _ = load_keras("a.keras", bytearray(data))
    assert kind == "keras" and model is not None
    names = [name for name, _ in seen]
    assert any(n.endswith("assets/vocabulary.txt") for n in names), names
    assert not any(n.endswith((".h5", "config.json")) for n in names), names
    top = {mode for name, mode in seen if "/" not in name}
    assert top == {0o700}
    assert not list(tmp.iterdir())


# ---- modelseal decrypt: no plaintext under or beside the destination until it is complete -----

_DECRYPT_CHILD = textwrap.dedent(
    """
    import sys, time
    from modelseal import crypto
    from modelseal.crypto import api, outputs, keyset as ks

    src, dst, keyset_file, pause = sys.argv[1:5]

    def stop():
        print("paused", flush=True)
        time.sleep(60)

    if pause == "complete":  # every segment written and authenticated, not yet named
        real = outputs.link_unnamed
        outputs.link_unnamed = lambda *a: (stop(), real(*a))
    else:  # in the middle of the stream
        real_stream = api.streaming.decrypt_stream
        def slow(keys, fh, out, **kw):
            class Half:
                written = 0
                def write(self, data):
                    n = out.write(data)
                    Half.written += len(data)
                    if Half.written > 1 << 20:
                        stop()
                    return n
            return real_stream(keys, fh, Half(), **{**kw, "workers": 1})
        api.streaming.decrypt_stream = slow
    crypto.decrypt(src, dst, keyset=ks.read_keyset_file(keyset_file))
    """
)


@pytest.mark.parametrize("pause", ["middle", "complete"])
def test_kill_9_during_decrypt_leaves_no_plaintext(tmp_path: Path, pause: str) -> None:
    from modelseal import crypto
    from modelseal.crypto import keyset as ks

    plaintext = os.urandom(4 << 20)
    keyset = ks.new_streaming_keyset(segment_size=4096)
    keyset_file = tmp_path / "keyset.json"
    ks.write_keyset_file(keyset_file, keyset, passphrase=None)
    src = tmp_path / "src.bin"
    src.write_bytes(plaintext)
    out = tmp_path / "out"
    out.mkdir()
    enc = out / "model.enc"
    crypto.encrypt(src, enc, keyset=keyset)
    src.unlink()
    dst = out / "model.bin"
    child = subprocess.Popen(
        [sys.executable, "-c", _DECRYPT_CHILD, str(enc), str(dst), str(keyset_file), pause],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "paused", child.stderr.read() if child.stderr else ""
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert sorted(p.name for p in out.iterdir()) == ["model.enc"]
    assert not any(plaintext[:4096] in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
