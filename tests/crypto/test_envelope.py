"""Envelope encryption with the local passphrase provider, and rotation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from modelseal.crypto import api, envelope, rotation
from modelseal.crypto import keyset as ks
from modelseal.crypto.providers import KeyProvider, open_provider
from modelseal.crypto.providers.local import LocalProvider
from modelseal.errors import (
    DecryptionError,
    EnvelopeError,
    KeysetError,
    PassphraseError,
    ProviderError,
    UnwrapError,
    UsageError,
)
from tests.conftest import build_model
from tests.crypto.conftest import tree

AD = api.associated_data(model_name="bert", version="1", manifest_digest="sha256:" + "ab" * 32)


@pytest.fixture
def kek(tmp_path: Path) -> LocalProvider:
    return LocalProvider.create(tmp_path / "kek.json", passphrase=b"pw")


def test_each_artifact_gets_its_own_data_key(tmp_path: Path, kek: LocalProvider) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(10_000))
    api.encrypt(src, tmp_path / "a.enc", provider=kek, associated_data=AD)
    api.encrypt(src, tmp_path / "b.enc", provider=kek, associated_data=AD)
    ea = envelope.from_json((tmp_path / "a.enc.envelope.json").read_bytes())
    eb = envelope.from_json((tmp_path / "b.enc.envelope.json").read_bytes())
    da = envelope.open_envelope(ea, kek, associated_data=AD)
    db = envelope.open_envelope(eb, kek, associated_data=AD)
    assert da.keys[0].value != db.keys[0].value
    assert ea.wrapped.kek_id == kek.current_kek_id()
    api.decrypt(tmp_path / "a.enc", tmp_path / "a.out", provider=kek, associated_data=AD)
    assert (tmp_path / "a.out").read_bytes() == src.read_bytes()


def test_directory_envelope_round_trip(tmp_path: Path, kek: LocalProvider) -> None:
    model = build_model(tmp_path / "m")
    api.encrypt(model, tmp_path / "enc", provider=kek, associated_data=AD)
    header = json.loads((tmp_path / "enc" / api.HEADER_NAME).read_text())
    assert header["envelope"]["dataKey"]["provider"] == "local"
    api.decrypt(tmp_path / "enc", tmp_path / "out", provider=kek, associated_data=AD)
    assert tree(tmp_path / "out") == tree(model)
    assert api.decrypt_to_memory(tmp_path / "enc", provider=kek, associated_data=AD) == tree(model)


def test_wrong_associated_data_or_kek(tmp_path: Path, kek: LocalProvider) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"x" * 1000)
    api.encrypt(src, tmp_path / "w.enc", provider=kek, associated_data=AD)
    other_ad = api.associated_data(model_name="bert", version="2", manifest_digest="sha256:00")
    with pytest.raises(DecryptionError, match="associated data does not match"):
        api.decrypt(tmp_path / "w.enc", tmp_path / "o", provider=kek, associated_data=other_ad)
    other = LocalProvider.create(tmp_path / "other.json", passphrase=b"pw")
    with pytest.raises(UnwrapError, match="not in"):
        api.decrypt(tmp_path / "w.enc", tmp_path / "o", provider=other, associated_data=AD)
    assert not (tmp_path / "o").exists()


def test_tampered_envelope(tmp_path: Path, kek: LocalProvider) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"x" * 1000)
    api.encrypt(src, tmp_path / "w.enc", provider=kek, associated_data=AD)
    path = tmp_path / "w.enc.envelope.json"
    doc = json.loads(path.read_text())
    wrapped = bytearray(envelope.from_dict(doc).wrapped.ciphertext)
    wrapped[20] ^= 1
    import base64

    doc["dataKey"]["wrapped"] = base64.b64encode(bytes(wrapped)).decode()
    path.write_text(json.dumps(doc))
    with pytest.raises(UnwrapError, match="does not verify"):
        api.decrypt(tmp_path / "w.enc", tmp_path / "o", provider=kek, associated_data=AD)
    # Swap in the envelope of another artifact with the same AD: wrong data key, tag fails.
    api.encrypt(src, tmp_path / "x.enc", provider=kek, associated_data=AD)
    shutil.copy(tmp_path / "x.enc.envelope.json", path)
    with pytest.raises(DecryptionError, match="wrong key"):
        api.decrypt(tmp_path / "w.enc", tmp_path / "o", provider=kek, associated_data=AD)
    path.write_text("{not json")
    with pytest.raises(EnvelopeError, match="not JSON"):
        api.decrypt(tmp_path / "w.enc", tmp_path / "o", provider=kek, associated_data=AD)
    path.write_text(json.dumps({"modelseal": "envelope/v1"}))
    with pytest.raises(EnvelopeError, match="missing"):
        api.decrypt(tmp_path / "w.enc", tmp_path / "o", provider=kek, associated_data=AD)
    assert not (tmp_path / "o").exists()


def test_keyset_vs_provider_mismatch(tmp_path: Path, kek: LocalProvider) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"x")
    api.encrypt(src, tmp_path / "w.enc", provider=kek)
    with pytest.raises(UsageError, match="envelope-encrypted"):
        api.decrypt(tmp_path / "w.enc", tmp_path / "o", keyset=ks.new_streaming_keyset())
    keyset = ks.new_streaming_keyset()
    api.encrypt(src, tmp_path / "k.enc", keyset=keyset)
    with pytest.raises(UsageError, match="has no envelope"):
        api.decrypt(tmp_path / "k.enc", tmp_path / "o", provider=kek)
    with pytest.raises(UsageError, match="exactly one"):
        api.decrypt(tmp_path / "k.enc", tmp_path / "o", provider=kek, keyset=keyset)


def test_local_provider_file_handling(tmp_path: Path) -> None:
    LocalProvider.create(tmp_path / "kek.json", passphrase=b"pw")
    assert (tmp_path / "kek.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(PassphraseError):
        open_provider(f"local:{tmp_path / 'kek.json'}")
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        open_provider(f"local:{tmp_path / 'kek.json'}", passphrase=b"bad")
    provider: KeyProvider = open_provider(f"local:{tmp_path / 'kek.json'}", passphrase=b"pw")
    assert provider.name == "local"
    ks.write_keyset_file(tmp_path / "stream.json", ks.new_streaming_keyset(), passphrase=None)
    with pytest.raises(KeysetError, match="not an AES-GCM key"):
        open_provider(f"local:{tmp_path / 'stream.json'}")
    with pytest.raises(ProviderError, match="needs a path"):
        open_provider("local:")
    with pytest.raises(ProviderError, match="unknown key provider"):
        open_provider("vault:transit/kek")


def make_artifacts(tmp_path: Path, kek: LocalProvider) -> list[Path]:
    model = build_model(tmp_path / "m")
    api.encrypt(model, tmp_path / "dir.enc", provider=kek, associated_data=AD)
    api.encrypt(model / "config.json", tmp_path / "c.enc", provider=kek, associated_data=AD)
    return [tmp_path / "dir.enc", tmp_path / "c.enc"]


def test_rotation_rewraps_without_reencrypting_and_retires_old(
    tmp_path: Path, kek: LocalProvider
) -> None:
    targets = make_artifacts(tmp_path, kek)
    old_id = kek.current_kek_id()
    blob_before = (tmp_path / "c.enc").read_bytes()
    old_envelope = (tmp_path / "c.enc.envelope.json").read_bytes()
    report = rotation.rotate(targets, provider=kek)
    assert report.committed and report.retired == (old_id,)
    assert report.new_kek_id != old_id and len(report.rewrapped) == 2
    assert (tmp_path / "c.enc").read_bytes() == blob_before  # data untouched
    reopened = LocalProvider(tmp_path / "kek.json", passphrase=b"pw")  # the file was updated
    assert reopened.kek_ids() == frozenset({report.new_kek_id})
    for target in targets:
        out = tmp_path / (target.name + ".out")
        api.decrypt(target, out, provider=reopened, associated_data=AD)
    # A copy of the old envelope no longer works: the old KEK is gone.
    (tmp_path / "c.enc.envelope.json").write_bytes(old_envelope)
    with pytest.raises(UnwrapError, match="retired"):
        api.decrypt(tmp_path / "c.enc", tmp_path / "again", provider=reopened, associated_data=AD)


def test_rotation_keep_old_then_commit(tmp_path: Path, kek: LocalProvider) -> None:
    targets = make_artifacts(tmp_path, kek)
    old_envelope = (tmp_path / "c.enc.envelope.json").read_bytes()
    first = rotation.rotate(targets, provider=kek, commit=False)
    assert not first.committed and len(kek.kek_ids()) == 2
    rotated = (tmp_path / "c.enc.envelope.json").read_bytes()
    (tmp_path / "c.enc.envelope.json").write_bytes(old_envelope)
    api.decrypt(tmp_path / "c.enc", tmp_path / "o1", provider=kek, associated_data=AD)  # still ok
    (tmp_path / "c.enc.envelope.json").write_bytes(rotated)
    second = rotation.rotate(targets, provider=kek)
    assert second.committed and len(second.retired) == 2 and kek.kek_ids() == {second.new_kek_id}
    api.decrypt(tmp_path / "c.enc", tmp_path / "o2", provider=kek, associated_data=AD)


def test_rotation_to_another_provider(tmp_path: Path, kek: LocalProvider) -> None:
    targets = make_artifacts(tmp_path, kek)
    new = LocalProvider.create(tmp_path / "new.json", passphrase=b"pw2")
    report = rotation.rotate(targets, provider=kek, new_provider=new)
    assert report.new_kek_id == new.current_kek_id()
    assert not (tmp_path / "kek.json").exists()  # its only key was retired: the file is gone
    api.decrypt(tmp_path / "c.enc", tmp_path / "o", provider=new, associated_data=AD)


def test_rotation_refuses_foreign_or_missing_envelopes(tmp_path: Path, kek: LocalProvider) -> None:
    with pytest.raises(UsageError, match="nothing to rotate"):
        rotation.rotate([], provider=kek)
    src = tmp_path / "w.bin"
    src.write_bytes(b"x")
    api.encrypt(src, tmp_path / "k.enc", keyset=ks.new_streaming_keyset())
    with pytest.raises(UsageError, match="has no envelope"):
        rotation.rotate([tmp_path / "k.enc"], provider=kek)
    api.encrypt(src, tmp_path / "e.enc", provider=kek)
    doc = json.loads((tmp_path / "e.enc.envelope.json").read_text())
    doc["dataKey"]["provider"] = "aws-kms"
    (tmp_path / "e.enc.envelope.json").write_text(json.dumps(doc))
    ids = kek.kek_ids()
    with pytest.raises(ProviderError, match="aws-kms"):
        rotation.rotate([tmp_path / "e.enc"], provider=kek)
    assert kek.kek_ids() == ids  # nothing changed before the refusal


def test_retiring_the_primary_alone_is_refused(tmp_path: Path, kek: LocalProvider) -> None:
    kek.add_kek()
    with pytest.raises(KeysetError, match="cannot delete the primary"):
        kek.retire(frozenset({kek.current_kek_id()}))


def test_stream_api_for_blob_stores(kek: LocalProvider) -> None:
    """What the registry will use: one blob stream and its envelope per model version."""
    import io

    v1 = api.associated_data(model_name="bert", version="1", manifest_digest="sha256:11")
    v2 = api.associated_data(model_name="bert", version="2", manifest_digest="sha256:22")
    blobs, envelopes = {}, {}
    for version, ad in (("1", v1), ("2", v2)):
        out = io.BytesIO()
        envelopes[version] = envelope.encrypt_stream(
            io.BytesIO(version.encode() * 30_000), out, provider=kek, associated_data=ad
        )
        blobs[version] = out.getvalue()
    assert envelopes["1"].wrapped.ciphertext != envelopes["2"].wrapped.ciphertext
    back = io.BytesIO()
    n = envelope.decrypt_stream(
        io.BytesIO(blobs["2"]), back, envelope=envelopes["2"], provider=kek, associated_data=v2
    )
    assert n == 30_000 and back.getvalue() == b"2" * 30_000
    # Serving version 1's blob and envelope as version 2 is caught.
    with pytest.raises(DecryptionError, match="associated data does not match"):
        envelope.decrypt_stream(
            io.BytesIO(blobs["1"]),
            io.BytesIO(),
            envelope=envelopes["1"],
            provider=kek,
            associated_data=v2,
        )
    # Version 1's blob under version 2's envelope: wrong data key.
    with pytest.raises(DecryptionError, match="wrong key"):
        envelope.decrypt_stream(
            io.BytesIO(blobs["1"]),
            io.BytesIO(),
            envelope=envelopes["2"],
            provider=kek,
            associated_data=v2,
        )
    assert envelope.from_json(envelopes["1"].to_json()) == envelopes["1"]
