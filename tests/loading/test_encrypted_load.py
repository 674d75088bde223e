"""Loading an encrypted model: decrypted into memory only, then verified, scanned and loaded.

The plaintext never touches disk; every failure (wrong key, tampered ciphertext, wrong associated
data, bytes that are not what was signed, a malicious payload) raises and returns nothing.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import modelseal
from modelseal.crypto import api as crypto
from modelseal.crypto import keyset as ks
from modelseal.errors import DecryptionError, IntegrityError, UnsafeModelError, UsageError
from modelseal.loading.verified import load_verified

safetensors_numpy = pytest.importorskip("safetensors.numpy")

Run = Callable[..., tuple[int, str, str]]
# A signed file's path (removed by the fixture's users), its signature path, and its bytes.
SignedFile = tuple[Path, Path, bytes]
WEIGHTS = {
    "encoder.weight": np.arange(24, dtype=np.float32).reshape(4, 6),
    "encoder.bias": np.linspace(-1, 1, 4, dtype=np.float32),
}


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _no_plaintext_on_disk(root: Path, plaintexts: list[bytes]) -> None:
    for name, data in _files(root).items():
        for plain in plaintexts:
            assert plain not in data, f"plaintext found in {name}"


@pytest.fixture
def keyset() -> ks.Keyset:
    return ks.new_streaming_keyset(segment_size=4096)


@pytest.fixture
def signed_file(tmp_path: Path, key_pair: tuple[Path, Path]) -> SignedFile:
    """A signed safetensors file (the plaintext is then removed) and its bytes."""
    plain = tmp_path / "plain" / "model.safetensors"
    plain.parent.mkdir()
    safetensors_numpy.save_file(WEIGHTS, plain)
    sig = tmp_path / "model.sig"
    modelseal.sign(plain, private_key=key_pair[0], signature=sig)
    return plain, sig, plain.read_bytes()


def test_single_file_loads_from_memory(
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    keyset: ks.Keyset,
    signed_file: SignedFile,
) -> None:
    plain, sig, data = signed_file
    enc = tmp_path / "store" / "model.safetensors.enc"
    enc.parent.mkdir()
    crypto.encrypt(plain, enc, keyset=keyset, associated_data=b"model:v1")
    plain.unlink()
    loaded = modelseal.load(
        enc, signature=sig, public_key=key_pair[1], keyset=keyset, associated_data=b"model:v1"
    )
    assert set(loaded) == set(WEIGHTS)
    for name, value in WEIGHTS.items():
        np.testing.assert_array_equal(loaded[name], value)
    assert _files(tmp_path / "store") == {"model.safetensors.enc": enc.read_bytes()}
    _no_plaintext_on_disk(tmp_path, [data[-64:]])


def test_directory_with_a_local_kek(
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    safetensors_numpy.save_file(WEIGHTS, model / "model.safetensors")
    (model / "config.json").write_text('{"hidden": 6}')
    sig = tmp_path / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=sig)
    from modelseal.crypto.providers.local import LocalProvider

    kek = tmp_path / "kek.json"
    provider = LocalProvider.create(kek, passphrase=None)
    crypto.encrypt(model, tmp_path / "enc", provider=provider)
    loaded = load_verified(
        tmp_path / "enc", signature=sig, public_key=key_pair[1], key_provider=f"local:{kek}"
    )
    assert loaded.framework == "directory"
    assert loaded.files == ("config.json", "model.safetensors")
    np.testing.assert_array_equal(loaded.obj["encoder.weight"], WEIGHTS["encoder.weight"])


def test_failures_raise_and_return_nothing(
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    keyset: ks.Keyset,
    signed_file: SignedFile,
) -> None:
    plain, sig, _ = signed_file
    enc = tmp_path / "model.safetensors.enc"
    crypto.encrypt(plain, enc, keyset=keyset, associated_data=b"ad")
    load = modelseal.load
    # The wrong keyset, the wrong associated data: nothing decrypts.
    with pytest.raises(DecryptionError):
        load(enc, signature=sig, public_key=key_pair[1], keyset=ks.new_streaming_keyset(),
             associated_data=b"ad")  # fmt: skip
    with pytest.raises(DecryptionError):
        load(enc, signature=sig, public_key=key_pair[1], keyset=keyset, associated_data=b"other")
    # One flipped ciphertext bit.
    tampered = tmp_path / "tampered.enc"
    blob = bytearray(enc.read_bytes())
    blob[len(blob) // 2] ^= 1
    tampered.write_bytes(bytes(blob))
    with pytest.raises(DecryptionError):
        load(tampered, signature=sig, public_key=key_pair[1], keyset=keyset, associated_data=b"ad")
    # Authentic ciphertext of bytes that are not what was signed.
    other = tmp_path / "other.safetensors"
    safetensors_numpy.save_file({k: v + 1 for k, v in WEIGHTS.items()}, other)
    crypto.encrypt(other, tmp_path / "other.enc", keyset=keyset)
    with pytest.raises(IntegrityError):
        load(tmp_path / "other.enc", signature=sig, public_key=key_pair[1], keyset=keyset)
    # A keyset and a provider at once, or associated data that is neither bytes nor str.
    with pytest.raises(UsageError):
        load(enc, signature=sig, public_key=key_pair[1], keyset=keyset, key_provider="local:x")
    with pytest.raises(UsageError):
        load(enc, signature=sig, public_key=key_pair[1], keyset=keyset, associated_data=5)  # type: ignore[arg-type]


def test_malicious_payload_is_scanned_before_anything_runs(
    tmp_path: Path, key_pair: tuple[Path, Path], keyset: ks.Keyset
) -> None:
    canary = tmp_path / "canary"

    class Payload:
        def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
            return (os.system, (f"touch {canary}",))

    plain = tmp_path / "model.pkl"
    plain.write_bytes(pickle.dumps({"w": [1.0], "x": Payload()}))
    sig = tmp_path / "model.sig"
    modelseal.sign(plain, private_key=key_pair[0], signature=sig)
    crypto.encrypt(plain, tmp_path / "model.pkl.enc", keyset=keyset)
    with pytest.raises(UnsafeModelError):
        modelseal.load(
            tmp_path / "model.pkl.enc", signature=sig, public_key=key_pair[1], keyset=keyset
        )
    assert not canary.exists()


def test_load_check_cli(
    run_cli: Run,
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    keyset: ks.Keyset,
    signed_file: SignedFile,
) -> None:
    plain, sig, _ = signed_file
    keyset_file = tmp_path / "keyset.json"
    ks.write_keyset_file(keyset_file, keyset, passphrase=None)
    enc = tmp_path / "model.safetensors.enc"
    crypto.encrypt(plain, enc, keyset=keyset, associated_data=b"prod")
    base = ("load-check", enc, "--signature", sig, "--public-key", key_pair[1])
    code, out, err = run_cli(*base, "--keyset", keyset_file, "--associated-data", "prod")
    assert code == 0, err
    assert "2 tensors" in out and "scan clean" in out
    code, _, err = run_cli(*base, "--keyset", keyset_file, "--associated-data", "staging")
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("modelseal: error: ")
    for extra, fragment in [
        (("--associated-data", "prod"), "--associated-data goes with --keyset or --kek"),
        (("--keyset", keyset_file, "--kek", "local:x"), "exactly one of --keyset and --kek"),
    ]:
        code, _, err = run_cli(*base, *extra)
        assert code == 2, err
        assert fragment in err.strip().splitlines()[-1]


def test_verified_model_rechecks_the_ciphertext(
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    keyset: ks.Keyset,
    signed_file: SignedFile,
) -> None:
    plain, sig, _ = signed_file
    enc = tmp_path / "model.safetensors.enc"
    crypto.encrypt(plain, enc, keyset=keyset, associated_data=b"v1")
    with modelseal.VerifiedModel(
        enc, signature=sig, public_key=key_pair[1], keyset=keyset, associated_data=b"v1"
    ) as vm:
        np.testing.assert_array_equal(vm.model["encoder.bias"], WEIGHTS["encoder.bias"])
        assert vm.check() == []
        # Swapped for an authentic ciphertext of other weights: the manifest no longer matches.
        other = tmp_path / "other.safetensors"
        safetensors_numpy.save_file({k: v * 2 for k, v in WEIGHTS.items()}, other)
        crypto.encrypt(other, enc, keyset=keyset, associated_data=b"v1", overwrite=True)
        assert [r.code for r in vm.check()] == ["modified"]
        # Swapped for a ciphertext under another key: it does not even decrypt.
        crypto.encrypt(plain, enc, keyset=ks.new_streaming_keyset(), overwrite=True)
        assert vm.check()
