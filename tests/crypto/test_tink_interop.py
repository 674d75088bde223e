"""Interoperability with the real ``tink`` package (Google's implementation), both ways."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from modelseal.crypto import api, directory, streaming
from modelseal.crypto import keyset as ks
from modelseal.errors import DecryptionError
from tests.crypto.conftest import KeepOpen, require_module

pytestmark = pytest.mark.interop

MB = 1 << 20
# Sizes around every boundary of the 1 MiB layout: empty, first segment exactly full (header 40,
# tag 16), one over, two full segments, and a multi-segment tail.
SIZES_1MB = [0, 1, MB - 56, MB - 55, 2 * MB - 72, 2 * MB - 71, 3 * MB + 12345]
SIZES_4KB = [0, 1, 4096 - 24 - 16, 4096 - 24 - 15, 10 * 4096 + 7]


def tink_keyset(streaming_aead: Any, template: str) -> tuple[Any, str]:
    import tink  # type: ignore[import-untyped]  # tink ships no types
    from tink import JsonKeysetWriter, cleartext_keyset_handle

    handle = tink.new_keyset_handle(getattr(streaming_aead.streaming_aead_key_templates, template))
    out = io.StringIO()
    cleartext_keyset_handle.write(JsonKeysetWriter(out), handle)
    return handle, out.getvalue()


def tink_encrypt(handle: Any, streaming_aead: Any, data: bytes, ad: bytes) -> bytes:
    primitive = handle.primitive(streaming_aead.StreamingAead)
    sink = KeepOpen()
    with primitive.new_encrypting_stream(sink, ad) as stream:
        stream.write(data)
    return sink.getvalue()


def tink_decrypt(handle: Any, streaming_aead: Any, ciphertext: bytes, ad: bytes) -> bytes:
    primitive = handle.primitive(streaming_aead.StreamingAead)
    with primitive.new_decrypting_stream(io.BytesIO(ciphertext), ad) as stream:
        data: bytes = stream.read()
    return data


@pytest.mark.parametrize(
    ("template", "sizes"),
    [
        ("AES256_GCM_HKDF_1MB", SIZES_1MB),
        ("AES128_GCM_HKDF_4KB", SIZES_4KB),
        ("AES256_GCM_HKDF_4KB", SIZES_4KB),
    ],
)
def test_tink_writes_modelseal_reads(tink_streaming: Any, template: str, sizes: list[int]) -> None:
    handle, json_keyset = tink_keyset(tink_streaming, template)
    keys = ks.decryption_keys(ks.from_json(json_keyset))
    for size in sizes:
        data = os.urandom(size)
        ad = f"model=m;version={size}".encode()
        ct = tink_encrypt(handle, tink_streaming, data, ad)
        assert streaming.decrypt_bytes(keys, ct, associated_data=ad) == data
        with pytest.raises(DecryptionError):
            streaming.decrypt_bytes(keys, ct, associated_data=ad + b"x")


@pytest.mark.parametrize(("segment_size", "sizes"), [(MB, SIZES_1MB), (4096, SIZES_4KB)])
def test_modelseal_writes_tink_reads(
    tink_streaming: Any, segment_size: int, sizes: list[int]
) -> None:
    from tink import JsonKeysetReader, cleartext_keyset_handle

    keyset = ks.new_streaming_keyset(segment_size=segment_size)
    handle = cleartext_keyset_handle.read(JsonKeysetReader(ks.to_json(keyset)))
    key = ks.primary_streaming_key(keyset)
    for size in sizes:
        data = os.urandom(size)
        ad = b"bound"
        ct = streaming.encrypt_bytes(key, data, associated_data=ad)
        assert tink_decrypt(handle, tink_streaming, ct, ad) == data
        # Same length as tink's own ciphertext: identical layout, not merely compatible.
        assert len(ct) == len(tink_encrypt(handle, tink_streaming, data, ad))


def test_tink_rejects_what_modelseal_rejects(tink_streaming: Any) -> None:
    from tink import JsonKeysetReader, cleartext_keyset_handle

    keyset = ks.new_streaming_keyset(segment_size=4096)
    handle = cleartext_keyset_handle.read(JsonKeysetReader(ks.to_json(keyset)))
    ct = streaming.encrypt_bytes(ks.primary_streaming_key(keyset), os.urandom(20_000))
    truncated = ct[: 40 + 4056 + 4096]  # ends at a segment boundary
    for bad in (truncated, ct[:-1], ct + b"\0"):
        with pytest.raises(Exception):  # noqa: B017 - tink raises its own error types
            tink_decrypt(handle, tink_streaming, bad, b"")
        with pytest.raises(DecryptionError):
            streaming.decrypt_bytes(ks.decryption_keys(keyset), bad)


def test_binary_keyset_interop(tink_streaming: Any) -> None:
    import tink
    from tink import BinaryKeysetReader, BinaryKeysetWriter, cleartext_keyset_handle

    ours = ks.new_streaming_keyset()
    handle = cleartext_keyset_handle.read(BinaryKeysetReader(ks.to_binary(ours)))
    assert handle.keyset_info().primary_key_id == ours.primary_key_id
    theirs = tink.new_keyset_handle(tink_streaming.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
    out = io.BytesIO()
    cleartext_keyset_handle.write(BinaryKeysetWriter(out), theirs)
    parsed = ks.from_binary(out.getvalue())
    assert parsed.primary_key_id == theirs.keyset_info().primary_key_id
    assert ks.to_binary(parsed) == out.getvalue()  # byte-identical re-encoding


def test_two_key_tink_keyset_decrypts_old_and_new(tink_streaming: Any) -> None:
    import json

    from tink import JsonKeysetReader, cleartext_keyset_handle

    old_handle, old_json = tink_keyset(tink_streaming, "AES256_GCM_HKDF_4KB")
    _, new_json = tink_keyset(tink_streaming, "AES256_GCM_HKDF_1MB")
    merged = json.loads(new_json)
    merged["key"] += json.loads(old_json)["key"]
    merged_handle = cleartext_keyset_handle.read(JsonKeysetReader(json.dumps(merged)))
    old_ct = tink_encrypt(old_handle, tink_streaming, b"old" * 5000, b"")
    new_ct = tink_encrypt(merged_handle, tink_streaming, b"new" * 5000, b"")
    keyset = ks.from_json(json.dumps(merged))
    assert keyset.primary_key_id == merged["primaryKeyId"]
    keys = ks.decryption_keys(keyset)
    assert streaming.decrypt_bytes(keys, old_ct) == b"old" * 5000
    assert streaming.decrypt_bytes(keys, new_ct) == b"new" * 5000
    # And tink reads what our primary of that keyset writes.
    ours = streaming.encrypt_bytes(ks.primary_streaming_key(keyset), b"ours" * 5000)
    assert tink_decrypt(merged_handle, tink_streaming, ours, b"") == b"ours" * 5000


def test_cli_file_ciphertext_is_tink_ciphertext(tink_streaming: Any, tmp_path: Path) -> None:
    from modelseal.cli.main import main

    handle, json_keyset = tink_keyset(tink_streaming, "AES256_GCM_HKDF_1MB")
    (tmp_path / "k.json").write_text(json_keyset)
    data = os.urandom(MB + 999)
    (tmp_path / "model.bin").write_bytes(data)
    rc = main(
        [
            "encrypt",
            str(tmp_path / "model.bin"),
            str(tmp_path / "model.enc"),
            "--keyset",
            str(tmp_path / "k.json"),
            "--associated-data",
            "m:v1",
        ]
    )
    assert rc == 0
    assert (
        tink_decrypt(handle, tink_streaming, (tmp_path / "model.enc").read_bytes(), b"m:v1") == data
    )
    (tmp_path / "t.enc").write_bytes(tink_encrypt(handle, tink_streaming, data, b"m:v1"))
    rc = main(
        [
            "decrypt",
            str(tmp_path / "t.enc"),
            str(tmp_path / "t.bin"),
            "--keyset",
            str(tmp_path / "k.json"),
            "--associated-data",
            "m:v1",
        ]
    )
    assert rc == 0
    assert (tmp_path / "t.bin").read_bytes() == data


def test_directory_blobs_decrypt_with_tink_given_the_documented_ad(
    tink_streaming: Any, tmp_path: Path
) -> None:
    from tink import JsonKeysetReader, cleartext_keyset_handle

    model = tmp_path / "m"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "w.bin").write_bytes(b"weights" * 1000)
    keyset = ks.new_streaming_keyset()
    api.encrypt(model, tmp_path / "enc", keyset=keyset, associated_data=b"ad")
    handle = cleartext_keyset_handle.read(JsonKeysetReader(ks.to_json(keyset)))
    blob = (tmp_path / "enc" / "blobs" / "00000000.enc").read_bytes()
    header = json.loads((tmp_path / "enc" / "modelseal-encrypted.json").read_text())
    ad = directory.blob_associated_data(
        b"ad", bytes.fromhex(header["artifact"]), 0, "sub/w.bin", 7000
    )
    assert tink_decrypt(handle, tink_streaming, blob, ad) == b"weights" * 1000


def test_local_kek_wrap_is_tink_aes_gcm(tmp_path: Path) -> None:
    """A local KEK keyset, decrypted, is a Tink AEAD keyset that unwraps our wrapped keys."""
    require_module("tink", "pip install 'modelseal[crypto-test]'")
    from tink import JsonKeysetReader, aead, cleartext_keyset_handle

    from modelseal.crypto.providers.local import LocalProvider

    aead.register()
    provider = LocalProvider.create(tmp_path / "kek.json", passphrase=b"pw")
    wrapped = provider.wrap(b"k" * 32, context=b"ctx")
    keyset = ks.read_keyset_file(tmp_path / "kek.json", passphrase=b"pw")
    handle = cleartext_keyset_handle.read(JsonKeysetReader(ks.to_json(keyset)))
    primitive = handle.primitive(aead.Aead)
    assert primitive.decrypt(wrapped.ciphertext, b"ctx") == b"k" * 32
    # And the other way: a tink-wrapped key unwraps with the local provider.
    from modelseal.crypto.providers import WrappedKey

    theirs = primitive.encrypt(b"t" * 32, b"ctx")
    assert provider.unwrap(WrappedKey("local", wrapped.kek_id, theirs), context=b"ctx") == b"t" * 32
