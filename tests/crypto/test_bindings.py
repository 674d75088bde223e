"""Encrypted directories: every part is bound to its artifact, position, path and size.

Issue 14: with one keyset and the same (e.g. empty) associated data, blobs and indexes of two
encrypted directories could be mixed unnoticed. Each case here decrypted before the v2 format.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.crypto import api, directory, streaming
from modelseal.crypto import keyset as ks
from modelseal.errors import DecryptionError, EnvelopeError
from tests.crypto.conftest import leftovers, tree

KEYSET = ks.new_streaming_keyset(segment_size=4096)
FILES = ("a.bin", "b.bin", "sub/c.bin")


def make_model(root: Path, seed: int) -> Path:
    """Three files of one size (so a size check alone cannot catch a swap)."""
    (root / "sub").mkdir(parents=True)
    for i, name in enumerate(FILES):
        (root / name).write_bytes(bytes([seed, i]) * 3000)
    return root


def encrypt(tmp: Path, name: str, seed: int, ad: bytes = b"") -> Path:
    model = make_model(tmp / f"model-{name}", seed)
    out = tmp / name
    api.encrypt(model, out, keyset=KEYSET, associated_data=ad)
    return out


def refused(tmp: Path, enc: Path, error: type[Exception] = DecryptionError, ad: bytes = b"") -> str:
    """Decrypting ``enc`` fails with ``error``, leaves no output and nothing partial."""
    with pytest.raises(error) as caught:
        api.decrypt(enc, tmp / "out", keyset=KEYSET, associated_data=ad)
    assert not (tmp / "out").exists()
    assert leftovers(tmp) == []
    with pytest.raises(error):
        api.decrypt_to_memory(enc, keyset=KEYSET, associated_data=ad)
    return str(caught.value)


def blob(enc: Path, i: int) -> Path:
    return enc / "blobs" / directory.blob_name(i)


@pytest.mark.parametrize("ad", [b"", b'{"model":"m","version":"1"}'])
def test_a_blob_from_another_artifact_with_the_same_key_and_ad_fails(
    tmp_path: Path, ad: bytes
) -> None:
    one, two = encrypt(tmp_path, "one", 1, ad), encrypt(tmp_path, "two", 2, ad)
    shutil.copy(blob(two, 1), blob(one, 1))  # same position, same path, same size
    assert "'b.bin' (blob 1)" in refused(tmp_path, one, ad=ad)


def test_an_index_from_another_artifact_with_the_same_key_and_ad_fails(tmp_path: Path) -> None:
    one, two = encrypt(tmp_path, "one", 1), encrypt(tmp_path, "two", 2)
    shutil.copy(two / directory.INDEX_NAME, one / directory.INDEX_NAME)
    assert "the index of" in refused(tmp_path, one)
    # Header and index of two with the blobs of one: the blobs do not open.
    shutil.copy(two / directory.HEADER_NAME, one / directory.HEADER_NAME)
    assert "(blob 0)" in refused(tmp_path, one)


def test_swapped_or_renamed_blobs_fail(tmp_path: Path) -> None:
    enc = encrypt(tmp_path, "enc", 1)
    os.rename(blob(enc, 0), tmp_path / "held")
    os.rename(blob(enc, 2), blob(enc, 0))
    os.rename(tmp_path / "held", blob(enc, 2))
    assert "'a.bin' (blob 0)" in refused(tmp_path, enc)


def test_a_changed_artifact_id_fails(tmp_path: Path) -> None:
    enc = encrypt(tmp_path, "enc", 1)
    header = json.loads((enc / directory.HEADER_NAME).read_text())
    artifact = bytearray.fromhex(header["artifact"])
    artifact[0] ^= 0x01
    header["artifact"] = artifact.hex()
    (enc / directory.HEADER_NAME).write_text(json.dumps(header))
    refused(tmp_path, enc)
    header["artifact"] = "00" * 5  # malformed: refused before any key is used
    (enc / directory.HEADER_NAME).write_text(json.dumps(header))
    assert "artifact id" in refused(tmp_path, enc, EnvelopeError)


def rewrite_index(enc: Path, edit: Callable[[list[dict[str, object]]], None]) -> None:
    """Re-encrypt the index with the key after editing its file list (an insider with the key
    who cannot re-encrypt the blobs: they stay as they are)."""
    artifact = bytes.fromhex(json.loads((enc / directory.HEADER_NAME).read_text())["artifact"])
    ad = directory.index_associated_data(b"", artifact)
    keys = ks.decryption_keys(KEYSET)
    doc = json.loads(
        streaming.decrypt_bytes(keys, (enc / "index.enc").read_bytes(), associated_data=ad)
    )
    edit(doc["files"])
    key = ks.primary_streaming_key(KEYSET)
    (enc / "index.enc").write_bytes(
        streaming.encrypt_bytes(key, json.dumps(doc).encode(), associated_data=ad)
    )


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda f: f.reverse(), DecryptionError, "(blob 0)"),  # reorder
        (lambda f: f.pop(), DecryptionError, "holds 3 blobs but its index lists 2"),  # drop
        (lambda f: f.__setitem__(2, dict(f[1])), EnvelopeError, "twice"),  # duplicate
        (lambda f: f[0].__setitem__("path", "z.bin"), DecryptionError, "'z.bin' (blob 0)"),
        (lambda f: f[0].__setitem__("size", 5999), DecryptionError, "(blob 0)"),  # size bound
    ],
    ids=["reorder", "drop", "duplicate", "rename", "resize"],
)
def test_edited_index_entries_fail(
    tmp_path: Path,
    edit: Callable[[list[dict[str, object]]], None],
    error: type[Exception],
    message: str,
) -> None:
    enc = encrypt(tmp_path, "enc", 1)
    rewrite_index(enc, edit)
    assert message in refused(tmp_path, enc, error)


PARTS = ("header", "index", *(f"blob{i}" for i in range(len(FILES))))


def part_path(enc: Path, part: str) -> Path:
    if part == "header":
        return enc / directory.HEADER_NAME
    if part == "index":
        return enc / directory.INDEX_NAME
    return blob(enc, int(part[4:]))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, bytes]]:
    """Three encryptions under one keyset and empty associated data: two of the same model."""
    tmp = tmp_path_factory.mktemp("artifacts")
    found = []
    for name, seed in (("x", 1), ("y", 1), ("z", 2)):
        enc = encrypt(tmp, name, seed)
        found.append({part: part_path(enc, part).read_bytes() for part in PARTS})
    return found


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(draw=st.data())
def test_any_mix_of_parts_fails(
    tmp_path_factory: pytest.TempPathFactory,
    artifacts: list[dict[str, bytes]],
    draw: st.DataObject,
) -> None:
    """Each part of the result is drawn from any part of the same role of any artifact, or a
    blob from any position; unless every part is artifact 0's own, decryption fails closed."""
    which = st.integers(0, len(artifacts) - 1)
    blobs = st.sampled_from([p for p in PARTS if p.startswith("blob")])
    plan = {
        part: draw.draw(
            st.tuples(which, blobs if part.startswith("blob") else st.just(part)), label=part
        )
        for part in PARTS
    }
    tmp = tmp_path_factory.mktemp("mix")
    enc = tmp / "enc"
    (enc / "blobs").mkdir(parents=True)
    for part, (a, p) in plan.items():
        part_path(enc, part).write_bytes(artifacts[a][p])
    if plan == {part: (0, part) for part in PARTS}:  # nothing moved: it must still open
        assert api.decrypt_to_memory(enc, keyset=KEYSET) == {
            name: bytes([1, i]) * 3000 for i, name in enumerate(FILES)
        }
        return
    with pytest.raises((DecryptionError, EnvelopeError)):
        api.decrypt(enc, tmp / "out", keyset=KEYSET)
    assert not (tmp / "out").exists() and leftovers(tmp) == []


# --- the previous format ----------------------------------------------------------------------


def write_v1(src: Path, out: Path, ad: bytes = b"") -> None:
    """An encrypted directory in the old v1 format, as modelseal 0.1 wrote it."""
    files, dirs = directory.walk(src)
    key = ks.primary_streaming_key(KEYSET)
    (out / "blobs").mkdir(parents=True)
    sizes = []
    for i, rel in enumerate(files):
        data = (src / rel).read_bytes()
        sizes.append(len(data))
        v1_ad = directory.v1_part_associated_data(ad, b"file", str(i).encode(), rel.encode())
        blob(out, i).write_bytes(streaming.encrypt_bytes(key, data, associated_data=v1_ad))
    index = {
        "files": [{"path": p, "size": s} for p, s in zip(files, sizes, strict=True)],
        "dirs": dirs,
    }
    (out / "index.enc").write_bytes(
        streaming.encrypt_bytes(
            key,
            json.dumps(index).encode(),
            associated_data=directory.v1_part_associated_data(ad, b"index"),
        )
    )
    (out / directory.HEADER_NAME).write_text(json.dumps({"modelseal": directory.V1_FORMAT}))


def test_the_v1_format_is_refused_unless_asked_for(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", 1)
    write_v1(model, tmp_path / "old")
    with pytest.raises(EnvelopeError) as caught:
        api.decrypt(tmp_path / "old", tmp_path / "plain", keyset=KEYSET)
    assert "encrypted-directory/v1" in caught.value.message and "allow_v1" in caught.value.hint
    refused(tmp_path, tmp_path / "old", EnvelopeError)
    api.decrypt(tmp_path / "old", tmp_path / "plain", keyset=KEYSET, allow_v1=True)
    assert tree(tmp_path / "plain") == tree(model)
    # Re-encrypted, it is v2.
    api.encrypt(tmp_path / "plain", tmp_path / "new", keyset=KEYSET)
    header = json.loads((tmp_path / "new" / directory.HEADER_NAME).read_text())
    assert header["modelseal"] == directory.DIR_FORMAT
    assert api.decrypt_to_memory(tmp_path / "new", keyset=KEYSET) == tree(model)


def test_the_cli_names_a_swap_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelseal.cli.main import main

    keyset = tmp_path / "ks.json"
    keyset.write_text(ks.to_json(KEYSET))
    one, two = encrypt(tmp_path, "one", 1), encrypt(tmp_path, "two", 2)
    shutil.copy(blob(two, 2), blob(one, 2))
    capsys.readouterr()
    code = main(["decrypt", str(one), str(tmp_path / "out"), "--keyset", str(keyset)])
    err = capsys.readouterr().err
    assert code == 1, err
    (line,) = err.strip().splitlines()
    assert line.startswith("modelseal: error: 'sub/c.bin' (blob 2)"), line
    assert not (tmp_path / "out").exists()
    write_v1(make_model(tmp_path / "m1", 3), tmp_path / "old")
    code = main(["decrypt", str(tmp_path / "old"), str(tmp_path / "out"), "--keyset", str(keyset)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "--allow-v1-format" in line
    code = main(
        [
            "decrypt",
            str(tmp_path / "old"),
            str(tmp_path / "out"),
            "--keyset",
            str(keyset),
            "--allow-v1-format",
        ]
    )
    assert code == 0 and tree(tmp_path / "out") == tree(tmp_path / "m1")
