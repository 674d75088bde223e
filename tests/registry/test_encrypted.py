"""Encrypted versions (Protect x Keep): client-side envelope encryption of registry blobs.

Embedded store on SQLite and PostgreSQL, the HTTP server, the local KEK provider (and SoftHSM2
when present): round trips, nothing plaintext in the blob store, wrong or missing key, tampered
ciphertext, swapped keys and blobs, missing permission, key rotation (audited, old wrapped keys
dead afterwards), GC, the CLI's one-line errors, and a property over file sizes.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from modelseal.audit.verify import verify_log
from modelseal.crypto.providers.local import LocalProvider
from modelseal.errors import (
    DecryptionError,
    DigestMismatchError,
    InputError,
    KeyRequiredError,
    PermissionDeniedError,
    UnwrapError,
    UsageError,
    VersionTakenError,
)
from modelseal.registry import encryption as enc
from modelseal.registry.backend import LocalBackend, pull, push
from modelseal.registry.datakeys import ListVersionKeys, RotateVersionKeys
from modelseal.registry.gc import CollectGarbage
from modelseal.registry.keys import rotate_version_keys
from modelseal.registry.models import VersionInfo, VersionRef
from modelseal.registry.receive import UploadFile
from modelseal.registry.uploads import BeginUpload, GetUploadState, PublishUpload
from modelseal.registry.versions import DeleteVersion, ListModels, ResolveVersion, get_version
from modelseal.registry.views import KeyChange, SealedVersion
from modelseal.store import db
from modelseal.store.schema import version_files, version_keys
from tests.registry.fixtures import Env, SignedModel, make_signed_model, open_env


def backend(env: Env) -> LocalBackend:
    return LocalBackend(env.registry, env.admin)


def stored(env: Env, name: str, number: int) -> VersionInfo:
    """The version as the registry stores it (with its ciphertext blobs)."""
    return get_version(env.registry.session(env.admin), VersionRef(name, number=number))


def new_kek(path: Path) -> LocalProvider:
    return LocalProvider.create(path, passphrase=None)


def audit(env: Env) -> list[Any]:
    with db.reading(env.engine()) as conn:
        return list(env.registry.audit.records(conn))


def assert_log_verifies(env: Env) -> None:
    with db.reading(env.engine()) as conn:
        verify_log(conn, env.registry.audit.signer.verifier).raise_for_findings()


def stored_bytes(env: Env) -> list[bytes]:
    blobs = env.registry.blobs
    return [b"".join(blobs.read(d)) for d, _ in blobs.digests()]


def model_files(model: SignedModel) -> dict[str, bytes]:
    root = model.path
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def tree(dest: Path) -> dict[str, bytes]:
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def push_encrypted(env: Env, model: SignedModel, kek: Any, name: str = "fraud") -> Any:
    return push(
        backend(env), model.path, name=name, signature=model.signature,
        public_key=model.public_key, kek=kek,
    )  # fmt: skip


# ----------------------------------------------------------------------------- round trips


def test_round_trip_nothing_plaintext_stored(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    kek = new_kek(tmp_path / "kek.json")
    info = push_encrypted(registry, signed_model, kek)
    assert info.encrypted and info.version == 1
    assert info.model_dump()["encryption"]["provider"] == "local"
    assert info.model_dump()["encryption"]["envelope"] is None
    plain = model_files(signed_model)
    # Files are identified by their plaintext digests; the blob store holds only ciphertext.
    import hashlib

    for entry in info.files:
        assert entry.sha256 == hashlib.sha256(plain[entry.path]).hexdigest()
        assert entry.stored_size == enc.ciphertext_size(entry.size)
    stored = stored_bytes(registry)
    assert len(stored) == len(info.files)
    for content in plain.values():
        if len(content) >= 16:
            assert all(content[:16] not in blob for blob in stored)
    for digest, _ in registry.registry.blobs.digests():
        assert digest not in {e.sha256 for e in info.files if e.size}
    dest = tmp_path / "out"
    pull(backend(registry), VersionRef.parse("fraud:1"), dest, kek=kek)
    assert tree(dest) == plain
    assert (dest.stat().st_mode & 0o777) == 0o700
    # The publish record says the version is encrypted, under which KEK; the log verifies.
    publish = [r for r in audit(registry) if r.action == "version.publish"][-1]
    assert publish.details["encrypted"] == {"provider": "local", "kek_id": kek.current_kek_id()}
    assert_log_verifies(registry)


def test_plain_and_encrypted_versions_do_not_share_blobs(
    sqlite_url: str, tmp_path: Path, signed_model: SignedModel
) -> None:
    env = open_env(tmp_path / "home", sqlite_url)
    try:
        kek = new_kek(tmp_path / "kek.json")
        b = backend(env)
        plain = push(b, signed_model.path, name="m", signature=signed_model.signature,
                     public_key=signed_model.public_key)  # fmt: skip
        sealed = push_encrypted(env, signed_model, kek, name="m")
        push_encrypted(env, signed_model, kek, name="m")
        assert [e.sha256 for e in plain.files] == [e.sha256 for e in sealed.files]
        # Per-version data keys: the same plaintext is stored once per encrypted version.
        first, second = stored(env, "m", 2), stored(env, "m", 3)
        assert {e.stored for e in first.files}.isdisjoint({e.stored for e in second.files})
        # Tombstoning the plaintext version frees its blobs even though encrypted versions
        # have the same plaintext digests (only ciphertext keeps an encrypted version alive).
        b.call(DeleteVersion(name="m", number=1, reason="superseded"))
        report = b.call(CollectGarbage(grace_seconds=0))
        assert report.blobs_deleted == len(plain.files)
        for n in (2, 3):
            pull(b, VersionRef("m", number=n), tmp_path / f"v{n}", kek=kek)
    finally:
        env.registry.close()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=st.one_of(st.integers(0, 3000), st.sampled_from([
    enc.SEGMENT - enc.HEADER - enc.TAG - 1, enc.SEGMENT - enc.HEADER - enc.TAG,
    enc.SEGMENT - enc.HEADER - enc.TAG + 1, 2 * enc.SEGMENT - enc.HEADER - 2 * enc.TAG,
])))  # fmt: skip
def test_property_any_size_round_trips(size: int, tmp_path_factory: Any, key_pair: Any) -> None:
    import modelseal

    root = tmp_path_factory.mktemp("prop")
    model = root / "model.bin"
    # Raw weights (a leading zero byte: random bytes can look like the start of a pickle).
    model.write_bytes((b"\x00" + os.urandom(size))[:size])
    sig = root / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=sig)
    env = open_env(root / "home", f"sqlite:///{root / 'r.db'}")
    try:
        kek = new_kek(root / "kek.json")
        push(backend(env), model, name="p", signature=sig, public_key=key_pair[1], kek=kek)
        (entry,) = stored(env, "p", 1).files
        assert entry.size == size and entry.stored_size == enc.ciphertext_size(size)
        assert enc.plaintext_size(enc.ciphertext_size(size)) == size
        pull(backend(env), VersionRef("p", number=1), root / "out.bin", kek=kek)
        assert (root / "out.bin").read_bytes() == model.read_bytes()
    finally:
        env.registry.close()


def test_a_decrypted_single_file_is_staged_only_in_a_private_directory(
    tmp_path: Path, key_pair: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a pulled plaintext is not yet verified, nothing beside the destination is a file
    (a kill -9 then leaves no plaintext file there), only a private (0700) directory."""
    import modelseal
    import modelseal.signing.api as signing_api

    model = tmp_path / "model.bin"
    model.write_bytes(b"\x00" + os.urandom(5000))
    modelseal.sign(model, private_key=key_pair[0], signature=tmp_path / "model.sig")
    env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'r.db'}")
    out = tmp_path / "out"
    out.mkdir()
    seen: list[tuple[str, bool, int]] = []
    real = signing_api.verify

    def spying(path: Any, **kw: Any) -> Any:
        seen.extend((p.name, p.is_dir(), p.stat().st_mode & 0o777) for p in out.iterdir())
        return real(path, **kw)

    monkeypatch.setattr(signing_api, "verify", spying)
    try:
        kek = new_kek(tmp_path / "kek.json")
        push(backend(env), model, name="p", signature=tmp_path / "model.sig",
             public_key=key_pair[1], kek=kek)  # fmt: skip
        pull(backend(env), VersionRef("p", number=1), out / "model.bin", kek=kek)
    finally:
        env.registry.close()
    assert len(seen) == 1 and seen[0][1:] == (True, 0o700), seen
    assert (out / "model.bin").read_bytes() == model.read_bytes()
    assert [p.name for p in out.iterdir()] == ["model.bin"]


@given(n=st.integers(0, 5 * enc.SEGMENT), length=st.integers(0, 5 * enc.SEGMENT))
def test_property_sizes_invert(n: int, length: int) -> None:
    assert enc.plaintext_size(enc.ciphertext_size(n)) == n
    found = enc.plaintext_size(length)  # any length: no plaintext, or exactly one
    assert found is None or enc.ciphertext_size(found) == length
    assert all(enc.plaintext_size(k) is None for k in range(enc.HEADER + enc.TAG))


@settings(max_examples=25, deadline=None)
@given(
    data=st.binary(max_size=5000),
    cuts=st.lists(st.integers(1, 700), min_size=1, max_size=8),
    flip=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_property_stream_round_trip_any_chunking(
    data: bytes, cuts: list[int], flip: int | None
) -> None:
    """Ciphertext made while hashing decrypts whatever the download's chunking; any flipped
    bit fails closed."""
    import hashlib
    import io

    from modelseal.crypto import keyset as ks
    from modelseal.errors import DecryptionError
    from modelseal.hashing.manifest import ManifestItem
    from modelseal.registry.encryption import SignedFiles

    digest = hashlib.sha256(data).digest()
    serialization = type("S", (), {"method": "files", "hash_type": "sha256", "shard_size": 0})()
    signed = SignedFiles(serialization, {"f": ((None, None, digest),)}, frozenset(), "0" * 64)
    assert ManifestItem("f", digest).start is None
    key = ks.new_streaming_keyset()
    result = enc.PlainDigest()
    ad = enc.blob_associated_data("m", "0" * 64, "f")
    ciphertext: bytes | bytearray = b"".join(
        enc.encrypted_chunks(ks.primary_streaming_key(key), lambda: io.BytesIO(data), path="f",
                             signed=signed, associated_data=ad, result=result)
    )  # fmt: skip
    assert len(ciphertext) == enc.ciphertext_size(len(data)) and result.sha256 == digest.hex()
    if flip is not None:
        flip %= len(ciphertext) * 8
        ciphertext = bytearray(ciphertext)
        ciphertext[flip // 8] ^= 1 << (flip % 8)
    pieces, at, i = [], 0, 0
    while at < len(ciphertext):
        pieces.append(bytes(ciphertext[at : at + cuts[i % len(cuts)]]))
        at, i = at + cuts[i % len(cuts)], i + 1
    out = io.BytesIO()

    def decrypt() -> None:
        enc.decrypt_file(
            ks.decryption_keys(key), pieces, out, path="f", associated_data=ad,
            expected_sha256=digest.hex(), expected_size=len(data),
        )  # fmt: skip

    if flip is None:
        decrypt()
        assert out.getvalue() == data
    else:
        with pytest.raises(DecryptionError):
            decrypt()


def test_shards_signature(sqlite_url: str, tmp_path: Path, key_pair: Any) -> None:
    model = make_signed_model(tmp_path, key_pair, shard_size=4096)
    env = open_env(tmp_path / "home", sqlite_url)
    try:
        kek = new_kek(tmp_path / "kek.json")
        push_encrypted(env, model, kek)
        pull(backend(env), VersionRef.parse("fraud:1"), tmp_path / "out", kek=kek)
        assert tree(tmp_path / "out") == model_files(model)
    finally:
        env.registry.close()


# ----------------------------------------------------------------------------- error paths


def test_pull_without_or_with_the_wrong_key(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    kek = new_kek(tmp_path / "kek.json")
    push_encrypted(registry, signed_model, kek)
    b = backend(registry)
    with pytest.raises(KeyRequiredError, match="fraud:1 is encrypted") as missing:
        pull(b, VersionRef.parse("fraud:1"), tmp_path / "a")
    assert missing.value.exit_code == 2
    other = new_kek(tmp_path / "other.json")
    with pytest.raises(UnwrapError, match="cannot unwrap the data key of fraud:1") as wrong:
        pull(b, VersionRef.parse("fraud:1"), tmp_path / "b", kek=other)
    assert wrong.value.exit_code == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_tampered_ciphertext_fails_closed(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    kek = new_kek(tmp_path / "kek.json")
    push_encrypted(registry, signed_model, kek)
    big = max(stored(registry, "fraud", 1).files, key=lambda e: e.size)
    assert big.stored is not None
    path = Path(registry.registry.blobs.path(big.stored))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    # The blob store's own check (the name is the ciphertext's digest) catches it first ...
    with pytest.raises(InputError, match="does not match its digest"):
        pull(backend(registry), VersionRef.parse("fraud:1"), tmp_path / "out", kek=kek)
    assert not (tmp_path / "out").exists()
    # ... and a re-addressed tampered ciphertext does not authenticate.
    import hashlib

    forged = hashlib.sha256(data).hexdigest()
    Path(registry.registry.blobs.path(forged)).parent.mkdir(parents=True, exist_ok=True)
    Path(registry.registry.blobs.path(forged)).write_bytes(bytes(data))
    with db.writing(registry.engine()) as conn:
        conn.execute(
            update(version_files).where(version_files.c.stored == big.stored).values(stored=forged)
        )
    with pytest.raises(DecryptionError, match=r"does not (decrypt|authenticate)") as failed:
        pull(backend(registry), VersionRef.parse("fraud:1"), tmp_path / "out", kek=kek)
    assert failed.value.exit_code == 1
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial*"))


def test_swapped_blobs_and_keys_are_detected(
    sqlite_url: str, tmp_path: Path, signed_model: SignedModel
) -> None:
    env = open_env(tmp_path / "home", sqlite_url)
    try:
        kek = new_kek(tmp_path / "kek.json")
        push_encrypted(env, signed_model, kek)
        push_encrypted(env, signed_model, kek)
        v1 = stored(env, "fraud", 1)
        b = backend(env)
        a, c = sorted((e for e in v1.files if e.size), key=lambda e: e.path)[:2]
        with db.writing(env.engine()) as conn:
            ids = conn.execute(text("SELECT id FROM versions ORDER BY number")).scalars().all()
        # The same file of version 2 (same model, path, size and signed digest) put in version
        # 1's place: it was sealed under version 2's own data key, so it does not open.
        twin = next(e for e in stored(env, "fraud", 2).files if e.path == a.path)
        assert twin.stored != a.stored
        with db.writing(env.engine()) as conn:
            conn.execute(
                update(version_files)
                .where(version_files.c.version_id == ids[0], version_files.c.path == a.path)
                .values(stored=twin.stored, stored_size=twin.stored_size)
            )
        with pytest.raises(DecryptionError):
            pull(b, VersionRef("fraud", number=1), tmp_path / "w", kek=kek)
        assert not (tmp_path / "w").exists()
        # A file's ciphertext moved to another path of the same version: wrong binding.
        with db.writing(env.engine()) as conn:
            conn.execute(
                update(version_files)
                .where(version_files.c.version_id == ids[0], version_files.c.path == a.path)
                .values(stored=c.stored, stored_size=c.stored_size)
            )
        with pytest.raises(DecryptionError):
            pull(b, VersionRef("fraud", number=1), tmp_path / "x", kek=kek)
        # Version 1's wrapped key given to version 2: bound to another version number.
        with db.writing(env.engine()) as conn:
            row = (
                conn.execute(select(version_keys).where(version_keys.c.version_id == ids[0]))
                .mappings()
                .one()
            )
            conn.execute(
                update(version_keys).where(version_keys.c.version_id == ids[1]).values(
                    wrapped=row["wrapped"], ad_sha256=row["ad_sha256"], kek_id=row["kek_id"]
                )
            )  # fmt: skip
        with pytest.raises(DecryptionError, match="associated data does not match"):
            pull(b, VersionRef("fraud", number=2), tmp_path / "y", kek=kek)
        # ... and with its binding digest left alone, the KEK refuses to unwrap it.
        with db.writing(env.engine()) as conn:
            good = enc.version_associated_data("fraud", 2, v1.root_digest)
            import hashlib

            conn.execute(
                update(version_keys).where(version_keys.c.version_id == ids[1])
                .values(ad_sha256=hashlib.sha256(good).hexdigest())
            )  # fmt: skip
        with pytest.raises(UnwrapError):
            pull(b, VersionRef("fraud", number=2), tmp_path / "z", kek=kek)
    finally:
        env.registry.close()


def test_modified_file_is_refused_while_encrypting_and_audited(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    kek = new_kek(tmp_path / "kek.json")
    target = signed_model.path / "config.json"
    target.write_bytes(target.read_bytes() + b" ")
    with pytest.raises(DigestMismatchError, match=r"config\.json"):
        push_encrypted(registry, signed_model, kek)
    denied = [r for r in audit(registry) if r.outcome == "denied"]
    assert denied and denied[-1].details["encrypted"] is True
    assert backend(registry).call(ListModels()) == []
    # No complete ciphertext of the refused file was kept.
    report = backend(registry).call(CollectGarbage(grace_seconds=0))
    assert report.temporaries_deleted == 0
    assert_log_verifies(registry)


def test_registry_checks_what_it_can_without_the_key(
    sqlite_url: str, tmp_path: Path, signed_model: SignedModel
) -> None:
    from modelseal.crypto import keyset as ks

    env = open_env(tmp_path / "home", sqlite_url)
    try:
        reg, admin = env.registry, env.admin
        bundle = signed_model.signature.read_bytes()
        key = signed_model.public_key.read_bytes()
        kek = new_kek(tmp_path / "kek.json")
        begin = BeginUpload(name="m", bundle=bundle.decode(), public_key=key.decode(),
                            encrypted=True)  # fmt: skip
        upload = reg.run(admin, begin)
        root = upload.root_digest.sha256
        signed = enc.SignedFiles.from_bundle(bundle)
        data_key = enc.new_data_key()
        digests = {}
        for path in upload.files:
            result = enc.PlainDigest()
            chunks = enc.encrypted_chunks(
                ks.primary_streaming_key(data_key),
                lambda path=path: open(signed_model.path / path, "rb"),  # type: ignore[misc]  # noqa: SIM115
                path=path, signed=signed,
                associated_data=enc.blob_associated_data("m", root, path),
                result=result,
            )  # fmt: skip
            reg.receive(admin, UploadFile(upload_id=upload.upload_id, path=path), chunks)
            digests[path] = result.sha256
        # Not a ciphertext length: refused and audited.
        with pytest.raises(DigestMismatchError, match="ciphertext's length"):
            reg.receive(admin, UploadFile(upload_id=upload.upload_id, path="config.json"),
                        [b"x" * 20])  # fmt: skip

        def publish(sealed: SealedVersion | None = None) -> Any:
            return reg.run(admin, PublishUpload(upload_id=upload.upload_id, encryption=sealed))

        def seal(number: int, envelope: Any, plain: Any) -> SealedVersion:
            return SealedVersion(version=number, envelope=envelope, plaintext_sha256=plain)

        # The key wrapped for a number that is not next, or for another version identity.
        with pytest.raises(VersionTakenError) as taken:
            env_doc = enc.wrap_data_key(data_key, kek, model="m", number=2,
                                        root_digest=root).to_dict()  # fmt: skip
            publish(seal(2, env_doc, digests))
        state = reg.run(admin, GetUploadState(upload_id=upload.upload_id))
        assert taken.value.next_version == 1 == state.next_version
        wrong = enc.wrap_data_key(data_key, kek, model="other", number=1,
                                  root_digest=root).to_dict()  # fmt: skip
        with pytest.raises(InputError, match=r"not made for m:1"):
            publish(seal(1, wrong, digests))
        # A plaintext digest the signature contradicts (files/sha256 manifests).
        right = enc.wrap_data_key(data_key, kek, model="m", number=1,
                                  root_digest=root).to_dict()  # fmt: skip
        lying = dict(digests, **{"config.json": "0" * 64})
        with pytest.raises(DigestMismatchError):
            publish(seal(1, right, lying))
        with pytest.raises(InputError, match="published with its wrapped data key"):
            publish()
        info = publish(seal(1, right, digests))
        assert info.version == 1 and info.encrypted
        # A registry that requires encryption refuses plaintext pushes (audited).
        reg.require_encryption = True
        with pytest.raises(UsageError, match="only encrypted pushes"):
            reg.run(admin, BeginUpload(name="m", bundle=bundle.decode(), public_key=key.decode()))
        actions = [(r.action, r.outcome) for r in audit(env)]
        assert actions.count(("version.publish", "denied")) == 3
        assert_log_verifies(env)
    finally:
        env.registry.close()


# ---------------------------------------------------------------------------------- rotation


def test_rotation_rewraps_audits_and_kills_old_keys(
    registry: Env, signed_model: SignedModel, tmp_path: Path
) -> None:
    kek = new_kek(tmp_path / "kek.json")
    b = backend(registry)
    push_encrypted(registry, signed_model, kek)
    push_encrypted(registry, signed_model, kek, name="other")
    old_id = kek.current_kek_id()
    before = {(k.model, k.version): k.envelope for k in b.call(ListVersionKeys(provider="local"))}
    ciphertexts = sorted(d for d, _ in registry.registry.blobs.digests())
    report = rotate_version_keys(b, provider=kek)
    assert report.committed and report.retired == (old_id,)
    assert set(report.rewrapped) == {"fraud:1", "other:1"}
    assert report.new_kek_id == kek.current_kek_id() != old_id
    after = {(k.model, k.version): k for k in b.call(ListVersionKeys(provider="local"))}
    assert {k.kek_id for k in after.values()} == {report.new_kek_id}
    # No data was re-encrypted.
    assert sorted(d for d, _ in registry.registry.blobs.digests()) == ciphertexts
    # Reopened from the file, the provider still pulls; the old wrapped keys no longer unwrap.
    reopened = LocalProvider(tmp_path / "kek.json", passphrase=None)
    pull(b, VersionRef.parse("fraud:1"), tmp_path / "out", kek=reopened)
    from modelseal.crypto import envelope as env

    for doc in before.values():
        old = env.from_dict(doc)
        with pytest.raises(UnwrapError):
            reopened.unwrap(old.wrapped, context=old.context)
    (record,) = [r for r in audit(registry) if r.action == "keys.rotate"]
    assert record.outcome == "allowed" and record.details["count"] == 2
    assert record.details["from"] == [f"local:{old_id}"]
    assert record.details["to"] == [f"local:{report.new_kek_id}"]
    assert record.details["retiring"] == [old_id]
    assert_log_verifies(registry)


def test_rotation_keep_old_then_commit_and_to_another_kek(
    sqlite_url: str, tmp_path: Path, signed_model: SignedModel
) -> None:
    env = open_env(tmp_path / "home", sqlite_url)
    try:
        kek = new_kek(tmp_path / "kek.json")
        b = backend(env)
        push_encrypted(env, signed_model, kek)
        first = kek.current_kek_id()
        report = rotate_version_keys(b, provider=kek, commit=False)
        assert not report.committed and first in kek.kek_ids()
        # To a KEK in another file: the old file's keys used here are retired.
        target = new_kek(tmp_path / "new.json")
        report = rotate_version_keys(b, provider=kek, new_provider=target)
        assert report.new_kek_id == target.current_kek_id()
        pull(b, VersionRef.parse("fraud:1"), tmp_path / "out", kek=target)
        with pytest.raises(UnwrapError):
            pull(b, VersionRef.parse("fraud:1"), tmp_path / "out2", kek=LocalProvider(
                tmp_path / "kek.json", passphrase=None) if (tmp_path / "kek.json").exists()
                else kek)  # fmt: skip
        # Nothing left under the old KEK: a second rotation says so.
        with pytest.raises(Exception, match="no version in the registry"):
            rotate_version_keys(b, provider=new_kek(tmp_path / "empty.json"))
        assert [r.action for r in audit(env)].count("keys.rotate") == 2
    finally:
        env.registry.close()


def test_rotation_is_compare_and_swap(
    sqlite_url: str, tmp_path: Path, signed_model: SignedModel
) -> None:
    from modelseal.errors import ConflictError

    env = open_env(tmp_path / "home", sqlite_url)
    try:
        kek = new_kek(tmp_path / "kek.json")
        push_encrypted(env, signed_model, kek)
        (key,) = backend(env).call(ListVersionKeys())
        stale = dict(key.envelope)
        stale["dataKey"] = dict(stale["dataKey"], wrapped=base64.b64encode(b"x" * 40).decode())
        change = KeyChange(model="fraud", version=1, old=stale, new=key.envelope)
        with pytest.raises(ConflictError, match="changed during the rotation"):
            backend(env).call(RotateVersionKeys(changes=[change], new_kek_id="1", retiring=[]))
        assert [r.action for r in audit(env)].count("keys.rotate") == 0
    finally:
        env.registry.close()


# ------------------------------------------------------------------------- over HTTP, RBAC


def test_over_http_client_side_encryption_and_permissions(
    tmp_path: Path, signed_model: SignedModel
) -> None:
    from modelseal.client import Client as RemoteBackend
    from tests.server.conftest import start_server, stop_server

    env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'r.db'}")
    running = start_server(env)
    try:
        kek = new_kek(tmp_path / "kek.json")
        ds = RemoteBackend(running.url, token=running.token_for("dana", "data-scientist"))
        eng = RemoteBackend(running.url, token=running.token_for("eve", "ml-engineer"))
        sec = RemoteBackend(running.url, token=running.token_for("sam", "security-engineer"))
        info = push(ds, signed_model.path, name="fraud", signature=signed_model.signature,
                    public_key=signed_model.public_key, kek=kek)  # fmt: skip
        assert info.encrypted
        # The data scientist may push but not download; the engineer may, with the key.
        with pytest.raises(PermissionDeniedError):
            pull(ds, VersionRef.parse("fraud:1"), tmp_path / "no", kek=kek)
        with pytest.raises(KeyRequiredError):
            pull(eng, VersionRef.parse("fraud:1"), tmp_path / "no")
        pull(eng, VersionRef.parse("fraud:1"), tmp_path / "out", kek=kek)
        assert tree(tmp_path / "out") == model_files(signed_model)
        # Only the download answer carries the wrapped key.
        answer = eng.call(ResolveVersion(name="fraud", version=1))
        assert answer.encryption is not None and answer.encryption.envelope is None
        # Rotation needs the key-management permission (security engineers).
        with pytest.raises(PermissionDeniedError):
            rotate_version_keys(eng, provider=kek)
        report = rotate_version_keys(sec, provider=kek)
        assert report.rewrapped == ("fraud:1",)
        pull(eng, VersionRef.parse("fraud:1"), tmp_path / "out2", kek=kek)
        actions = [(r.actor, r.action, r.outcome) for r in audit(env)]
        assert ("sam", "keys.rotate", "allowed") in actions
        assert ("eve", "keys.list", "denied") in actions
        assert ("dana", "model.download", "denied") in actions
        # The server never stored plaintext.
        plain = model_files(signed_model)
        for blob in stored_bytes(env):
            assert all(c[:16] not in blob for c in plain.values() if len(c) >= 16)
        for b in (ds, eng, sec):
            b.close()
        assert_log_verifies(env)
    finally:
        stop_server(running)
        env.registry.close()


# ---------------------------------------------------------------------------------- CLI


def test_cli_push_pull_rotate(
    tmp_path: Path, signed_model: SignedModel, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from modelseal.cli.main import main

    monkeypatch.setenv("MODELSEAL_HOME", str(tmp_path / "home"))
    for name in ("MODELSEAL_DB_URL", "MODELSEAL_BLOB_URL", "MODELSEAL_SERVER",
                 "MODELSEAL_ENCRYPTION_KEK"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    new_kek(tmp_path / "kek.json")
    kek = f"local:{tmp_path / 'kek.json'}"
    sm = signed_model
    code = main(["push", str(sm.path), "--name", "fraud", "--signature", str(sm.signature),
                 "--public-key", str(sm.public_key), "--encrypt-with", kek, "--json"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["encryption"]["provider"] == "local"
    assert main(["pull", "fraud:1", str(tmp_path / "nokey")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fraud:1 is encrypted" in err and "--kek" in err
    new_kek(tmp_path / "other.json")
    assert main(["pull", "fraud:1", str(tmp_path / "wrong"), "--kek",
                 f"local:{tmp_path / 'other.json'}"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot unwrap" in err and "Traceback" not in err
    assert main(["pull", "fraud:1", str(tmp_path / "ok"), "--kek", kek]) == 0
    assert tree(tmp_path / "ok") == model_files(sm)
    capsys.readouterr()
    assert main(["registry", "keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["version"] for k in listed] == [1]
    assert main(["registry", "keys", "rotate", "--kek", kek, "--json"]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert rotated["rewrapped"] == ["fraud:1"] and rotated["committed"]
    # `modelseal keys rotate --registry` is the same rotation (and refuses TARGETS with it).
    assert main(["keys", "rotate", "--registry", "--kek", kek, "x.enc"]) == 2
    capsys.readouterr()
    assert main(["keys", "rotate", "--registry", "--kek", kek]) == 0
    assert "re-wrapped 1 version data key(s)" in capsys.readouterr().out
    assert main(["keys", "rotate", "--kek", kek]) == 2  # no targets, no --registry
    # The config default applies to push and pull alike.
    monkeypatch.setenv("MODELSEAL_ENCRYPTION_KEK", kek)
    assert main(["pull", "fraud:1", str(tmp_path / "ok2")]) == 0
    assert main(["audit", "verify"]) == 0


# ------------------------------------------------------------------------------- PKCS#11


def test_pkcs11_kek_through_the_cli(tmp_path: Path, signed_model: SignedModel) -> None:
    """A KEK on a SoftHSM2 token: push, rotate (the old key object destroyed), pull. In a child
    process: a PKCS#11 library reads its configuration once per process, and the crypto tests
    keep their own token in theirs."""
    import subprocess
    import sys

    from tests.crypto.conftest import require, require_module, require_tool

    util = require_tool("softhsm2-util", "softhsm2")
    require_module("pkcs11", "pip install 'modelseal[crypto]'")
    from modelseal.crypto.pkcs11_token import DEFAULT_MODULES

    require(any(os.path.exists(m) for m in DEFAULT_MODULES), "libsofthsm2.so not found")
    root = tmp_path / "softhsm"
    (root / "tokens").mkdir(parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = dict(os.environ, SOFTHSM2_CONF=str(conf), MODELSEAL_HOME=str(tmp_path / "home"))
    for name in ("MODELSEAL_DB_URL", "MODELSEAL_BLOB_URL", "MODELSEAL_SERVER",
                 "MODELSEAL_ENCRYPTION_KEK"):  # fmt: skip
        env.pop(name, None)
    pin = "4321"
    init = [util, "--init-token", "--free", "--label", "reg", "--so-pin", "0000", "--pin", pin]
    subprocess.run(init, check=True, capture_output=True, env=env)
    kek = f"pkcs11:token=reg;object=registry-kek?pin-value={pin}"
    sm = signed_model
    script = f"""
import json, sys
from modelseal.cli.main import main
def run(*args):
    code = main(list(args))
    if code != 0:
        sys.exit(f"{{args[0]}} {{args[1]}}: exit {{code}}")
run("keys", "create", "--kek", {kek!r})
run("push", {str(sm.path)!r}, "--name", "fraud", "--signature", {str(sm.signature)!r},
    "--public-key", {str(sm.public_key)!r}, "--encrypt-with", {kek!r})
run("keys", "rotate", "--registry", "--kek", {kek!r})
run("pull", "fraud:1", {str(tmp_path / "out")!r}, "--kek", {kek!r})
run("audit", "verify")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "retired 1 old KEK(s)" in done.stdout
    assert tree(tmp_path / "out") == model_files(sm)
