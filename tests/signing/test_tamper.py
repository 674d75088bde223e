"""Tamper detection as properties: every edit to the model or the signature is detected with its
precise reason, and nothing else changes the verdict."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.errors import IntegrityError, SignatureMismatchError, VerificationError
from modelseal.signing.bundle import OmsBundle, parse_bundle
from tests.conftest import build_model

FILES = ["config.json", "tokenizer.txt", "weights/model-00001.bin", "weights/model-00002.bin"]
ALL_FILES = [*FILES, "weights/empty.bin"]
MODES = {"files": None, "shards": 4096}


@pytest.fixture(scope="module")
def signed(
    tmp_path_factory: pytest.TempPathFactory, key_pair: tuple[Path, Path]
) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("signed")
    model = build_model(base / "model")
    out = {"model": model}
    for mode, shard in MODES.items():
        sig = base / f"{mode}.sig"
        modelseal.sign(model, private_key=key_pair[0], signature=sig, shard_size=shard)
        out[mode] = sig
    return out


def _copy(signed: dict[str, Path]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "model"
        shutil.copytree(signed["model"], dest, symlinks=True)
        yield dest


def _reasons(model: Path, sig: Path | OmsBundle, pub: Path) -> list[tuple[str, str | None]]:
    with pytest.raises(VerificationError) as err:
        modelseal.verify(model, signature=sig, public_key=pub)
    return [(r.code, r.path) for r in err.value.reasons]


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from(list(MODES)),
    target=st.sampled_from(FILES),
    position=st.floats(min_value=0, max_value=1, exclude_max=True),
    xor=st.integers(min_value=1, max_value=255),
)
def test_any_flipped_byte_is_detected(
    signed: dict[str, Path],
    key_pair: tuple[Path, Path],
    mode: str,
    target: str,
    position: float,
    xor: int,
) -> None:
    for model in _copy(signed):
        path = model / target
        data = bytearray(path.read_bytes())
        offset = int(position * len(data))
        data[offset] ^= xor
        path.write_bytes(bytes(data))
        reasons = _reasons(model, signed[mode], key_pair[1])
        assert len(reasons) == 1
        code, where = reasons[0]
        assert code == "modified"
        assert where is not None and where.split(":")[0] == target
        if mode == "shards":
            start = offset - offset % 4096
            assert where == f"{target}:{start}:{min(start + 4096, len(data))}"


@settings(max_examples=30, deadline=None)
@given(
    mode=st.sampled_from(list(MODES)),
    target=st.sampled_from(FILES),
    keep=st.floats(min_value=0, max_value=1, exclude_max=True),
    extra=st.binary(min_size=1, max_size=64),
    truncate=st.booleans(),
)
def test_truncation_and_appending_are_detected(
    signed: dict[str, Path],
    key_pair: tuple[Path, Path],
    mode: str,
    target: str,
    keep: float,
    extra: bytes,
    truncate: bool,
) -> None:
    for model in _copy(signed):
        path = model / target
        data = path.read_bytes()
        new = data[: int(keep * len(data))] if truncate else data + extra
        path.write_bytes(new)
        with pytest.raises(IntegrityError) as err:
            modelseal.verify(model, signature=signed[mode], public_key=key_pair[1])
        (reason,) = err.value.reasons
        assert reason.code == "modified" and reason.path is not None
        assert reason.path.split(":")[0] == target
        if mode == "shards":
            assert reason.expected == str(len(data)) and reason.actual == str(len(new))


_new_name = st.text(alphabet="abcxyz_-.", min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..") and not n.startswith(".git")
)


@settings(max_examples=25, deadline=None)
@given(mode=st.sampled_from(list(MODES)), target=st.sampled_from(FILES), new=_new_name)
def test_rename_add_remove_are_detected(
    signed: dict[str, Path], key_pair: tuple[Path, Path], mode: str, target: str, new: str
) -> None:
    for model in _copy(signed):
        assume(not (model / new).exists())  # never pass by testing nothing
        os.rename(model / target, model / new)
        assert _reasons(model, signed[mode], key_pair[1]) == [("renamed", target)]
        os.rename(model / new, model / target)
        (model / new).write_bytes(b"unsigned")
        assert _reasons(model, signed[mode], key_pair[1]) == [("extra", new)]
        os.unlink(model / new)
        os.unlink(model / target)
        assert _reasons(model, signed[mode], key_pair[1]) == [("missing", target)]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("target", ALL_FILES)
def test_file_replaced_by_symlink_is_detected(
    signed: dict[str, Path], key_pair: tuple[Path, Path], mode: str, target: str
) -> None:
    for model in _copy(signed):
        saved = model.parent / "saved"
        os.rename(model / target, saved)
        os.symlink(saved, model / target)
        assert _reasons(model, signed[mode], key_pair[1]) == [("symlink", target)]


def _edit_bundle(sig: Path, edit: Callable[[dict[str, Any]], None]) -> OmsBundle:
    raw = json.loads(sig.read_text())
    edit(raw)
    return parse_bundle(json.dumps(raw).encode())


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(list(MODES)), data=st.data())
def test_edited_payload_is_detected(
    signed: dict[str, Path], key_pair: tuple[Path, Path], mode: str, data: st.DataObject
) -> None:
    raw = json.loads(signed[mode].read_text())
    payload = bytearray(base64.b64decode(raw["dsseEnvelope"]["payload"]))
    index = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    payload[index] ^= data.draw(st.integers(min_value=1, max_value=255))

    def edit(b: dict[str, Any]) -> None:
        b["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()

    bundle = _edit_bundle(signed[mode], edit)
    with pytest.raises(SignatureMismatchError) as err:
        modelseal.verify(signed["model"], signature=bundle, public_key=key_pair[1])
    assert [r.code for r in err.value.reasons] == ["bad-signature"]


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(list(MODES)), data=st.data())
def test_edited_signature_bytes_are_detected(
    signed: dict[str, Path], key_pair: tuple[Path, Path], mode: str, data: st.DataObject
) -> None:
    raw = json.loads(signed[mode].read_text())
    sig = bytearray(base64.b64decode(raw["dsseEnvelope"]["signatures"][0]["sig"]))
    index = data.draw(st.integers(min_value=0, max_value=len(sig) - 1))
    sig[index] ^= data.draw(st.integers(min_value=1, max_value=255))

    def edit(b: dict[str, Any]) -> None:
        b["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()

    bundle = _edit_bundle(signed[mode], edit)
    with pytest.raises(SignatureMismatchError) as err:
        modelseal.verify(signed["model"], signature=bundle, public_key=key_pair[1])
    assert [r.code for r in err.value.reasons] == ["bad-signature"]


def test_wrong_key_is_named(
    signed: dict[str, Path], key_pair: tuple[Path, Path], other_key_pair: tuple[Path, Path]
) -> None:
    with pytest.raises(SignatureMismatchError) as err:
        modelseal.verify(signed["model"], signature=signed["files"], public_key=other_key_pair[1])
    (reason,) = err.value.reasons
    assert reason.code == "wrong-key"


def test_edited_key_hint_is_detected(signed: dict[str, Path], key_pair: tuple[Path, Path]) -> None:
    def edit(b: dict[str, Any]) -> None:
        b["verificationMaterial"]["publicKey"]["hint"] = "00" * 32

    bundle = _edit_bundle(signed["files"], edit)
    with pytest.raises(SignatureMismatchError) as err:
        modelseal.verify(signed["model"], signature=bundle, public_key=key_pair[1])
    assert [r.code for r in err.value.reasons] == ["key-hint-mismatch"]


@pytest.mark.parametrize("mode", list(MODES))
def test_neutral_changes_do_not_change_the_verdict(
    signed: dict[str, Path], key_pair: tuple[Path, Path], tmp_path: Path, mode: str
) -> None:
    for model in _copy(signed):
        moved = tmp_path / "renamed-root"
        shutil.move(model, moved)
        for path in moved.rglob("*"):
            if path.is_file():
                os.utime(path, (1, 1))
                path.chmod(0o400)
        (moved / ".git").mkdir()
        (moved / ".git" / "HEAD").write_text("ref\n")
        sig = tmp_path / "elsewhere.sig"
        shutil.copy(signed[mode], sig)
        result = modelseal.verify(moved, signature=sig, public_key=key_pair[1])
        assert result.manifest.model_name == "model"
        inside = moved / "model.sig"
        shutil.copy(signed[mode], inside)
        modelseal.verify(moved, signature=inside, public_key=key_pair[1])
        shutil.move(moved, model)


def test_several_differences_are_all_reported(
    signed: dict[str, Path], key_pair: tuple[Path, Path]
) -> None:
    for model in _copy(signed):
        (model / "config.json").write_text("{}")
        (model / "tokenizer.txt").unlink()
        (model / "new.bin").write_bytes(b"new")
        reasons = _reasons(model, signed["files"], key_pair[1])
        assert sorted(reasons) == [
            ("extra", "new.bin"),
            ("missing", "tokenizer.txt"),
            ("modified", "config.json"),
        ]


@pytest.mark.parametrize("mode", list(MODES))
def test_empty_files_are_covered_in_both_methods(
    signed: dict[str, Path], key_pair: tuple[Path, Path], mode: str
) -> None:
    """OMS records no shard for an empty file; modelseal's signed extension closes that gap."""
    for model in _copy(signed):
        (model / "__init__.py").write_bytes(b"")
        assert _reasons(model, signed[mode], key_pair[1]) == [("extra", "__init__.py")]
        (model / "__init__.py").unlink()
        (model / "weights" / "empty.bin").unlink()
        assert _reasons(model, signed[mode], key_pair[1]) == [("missing", "weights/empty.bin")]
        (model / "weights" / "empty.bin").write_bytes(b"now code")
        assert _reasons(model, signed[mode], key_pair[1]) == [("modified", "weights/empty.bin")]
        (model / "config.json").write_bytes(b"")
        (model / "weights" / "empty.bin").write_bytes(b"")
        reasons = _reasons(model, signed[mode], key_pair[1])
        assert reasons == [("modified", "config.json")]
