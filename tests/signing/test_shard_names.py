"""Shard resource names (``path:start:end``) must say exactly which bytes their digest covers, and
a file's shards must tile it from byte 0 without gaps or overlaps: anything else is an
inconsistent manifest, whoever signed it.

Each bundle is edited at run time and then re-signed with the signer's key, with the subject
digest recomputed, so that the only thing wrong with it is the edit under test."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.errors import IntegrityError, MalformedSignatureError
from modelseal.signing.bundle import OmsBundle
from modelseal.signing.dsse import IN_TOTO_PAYLOAD_TYPE, pae
from modelseal.signing.keys import key_hint, load_private_key, load_public_key, sign_bytes

SHARD = 1000
Resources = list[dict[str, str]]


def resign(
    statement: dict[str, Any], key_pair: tuple[Path, Path], edit: Callable[[Resources], object]
) -> OmsBundle:
    """``statement`` with its resources edited, the subject digest recomputed, signed again."""
    edited = json.loads(json.dumps(statement))
    resources: Resources = edited["predicate"]["resources"]
    edit(resources)
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources))
    edited["subject"][0]["digest"]["sha256"] = root.hexdigest()
    payload = json.dumps(edited).encode()
    signature = sign_bytes(load_private_key(key_pair[0]), pae(IN_TOTO_PAYLOAD_TYPE, payload))
    return OmsBundle(
        payload, IN_TOTO_PAYLOAD_TYPE, (signature,), key_hint(load_public_key(key_pair[1]))
    )


def sharded_statement(model: Path, key_pair: tuple[Path, Path]) -> dict[str, Any]:
    result = modelseal.sign(model, private_key=key_pair[0], shard_size=SHARD)
    statement: dict[str, Any] = json.loads(result.bundle.payload)
    return statement


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "w.bin").write_bytes(os.urandom(2500))  # shards 0:1000, 1000:2000, 2000:2500
    (root / "x:1:2.bin").write_bytes(os.urandom(10))  # a colon in a path is fine
    return root


def _rename(old: str, new: str) -> Callable[[Resources], None]:
    def edit(resources: Resources) -> None:
        (match,) = [r for r in resources if r["name"] == old]
        match["name"] = new

    return edit


def _drop(name: str) -> Callable[[Resources], None]:
    def edit(resources: Resources) -> None:
        resources[:] = [r for r in resources if r["name"] != name]

    return edit


def _add(name: str) -> Callable[[Resources], None]:
    def edit(resources: Resources) -> None:
        algorithm = resources[0]["algorithm"]
        digest = hashlib.sha256(b"overlap").hexdigest()
        resources.append({"name": name, "algorithm": algorithm, "digest": digest})

    return edit


EDITS: dict[str, tuple[Callable[[Resources], None], str]] = {
    "leading-zero-end": (_rename("w.bin:0:1000", "w.bin:0:01000"), "does not name its byte range"),
    "leading-zero-start": (
        _rename("w.bin:1000:2000", "w.bin:01000:2000"),
        "does not name its byte range",
    ),
    "plus-sign": (_rename("w.bin:1000:2000", "w.bin:+1000:2000"), "is not 'path:start:end'"),
    "arabic-indic-digits": (
        _rename("w.bin:0:1000", "w.bin:0:\u0661\u0660\u0660\u0660"),
        "is not 'path:start:end'",
    ),
    "superscript-digit": (_rename("w.bin:0:1000", "w.bin:0:\u00b2"), "is not 'path:start:end'"),
    "gap-first-shard-dropped": (_drop("w.bin:0:1000"), "do not tile"),
    "gap-middle-shard-dropped": (_drop("w.bin:1000:2000"), "do not tile"),
    "overlap-short-duplicate": (_add("w.bin:1000:1500"), "do not tile"),
    "short-inner-shard": (_rename("w.bin:1000:2000", "w.bin:1000:1900"), "do not tile"),
    "other-file-named": (_rename("w.bin:2000:2500", "x:1:2.bin:2000:2500"), "do not tile"),
}


def test_the_resigned_bundle_verifies_unedited(model: Path, key_pair: tuple[Path, Path]) -> None:
    statement = sharded_statement(model, key_pair)
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == ["w.bin:0:1000", "w.bin:1000:2000", "w.bin:2000:2500", "x:1:2.bin:0:10"]
    bundle = resign(statement, key_pair, lambda resources: None)
    modelseal.verify(model, signature=bundle, public_key=key_pair[1])


@pytest.mark.parametrize("edit", list(EDITS))
def test_inconsistent_shard_names_are_rejected(
    model: Path, key_pair: tuple[Path, Path], edit: str
) -> None:
    change, fragment = EDITS[edit]
    bundle = resign(sharded_statement(model, key_pair), key_pair, change)
    with pytest.raises(MalformedSignatureError, match=fragment) as err:
        modelseal.verify(model, signature=bundle, public_key=key_pair[1])
    [reason] = err.value.reasons
    assert reason.code == ("malformed" if "path:start:end" in fragment else "inconsistent-manifest")
    assert err.value.exit_code == 2


def test_inconsistent_shard_names_on_the_command_line(
    model: Path,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    run_cli: Callable[..., tuple[int, str, str]],
) -> None:
    bundle = resign(
        sharded_statement(model, key_pair), key_pair, _rename("w.bin:0:1000", "w.bin:0:01000")
    )
    sig = tmp_path / "edited.sig"
    sig.write_text(bundle.to_json())
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--public-key", key_pair[1], "--json"
    )
    assert code == 2
    assert [r["code"] for r in json.loads(out)["reasons"]] == ["inconsistent-manifest"]
    assert "'w.bin:0:01000' does not name its byte range 0..1000" in err


def test_a_truncated_last_shard_is_a_changed_file_not_a_bad_manifest(
    model: Path, key_pair: tuple[Path, Path]
) -> None:
    # A last shard that claims more bytes than the file has is a consistent manifest of a
    # longer file: the model changed.
    bundle = resign(
        sharded_statement(model, key_pair), key_pair, _rename("w.bin:2000:2500", "w.bin:2000:3000")
    )
    with pytest.raises(IntegrityError) as err:
        modelseal.verify(model, signature=bundle, public_key=key_pair[1])
    assert [(r.code, r.expected, r.actual) for r in err.value.reasons] == [
        ("modified", "3000", "2500")
    ]


def _mutations(count: int) -> st.SearchStrategy[tuple[str, int, int]]:
    """(kind, which shard, amount) for a file of ``count`` shards; each kind makes the names
    inconsistent with the bytes whatever the file and shard sizes."""
    kinds = ["pad-start", "pad-end", "overlap"]
    if count > 1:
        kinds += ["drop-not-last", "shorten-not-last", "shift-not-first"]
    return st.tuples(
        st.sampled_from(kinds),
        st.integers(min_value=0, max_value=count - 1),
        st.integers(min_value=1, max_value=3),
    )


def _mutate(resources: Resources, kind: str, index: int, amount: int, shard: int) -> None:
    target = [r for r in resources if r["name"].startswith("w.bin:")]
    path, start_text, end_text = target[index]["name"].rsplit(":", 2)
    start, end = int(start_text), int(end_text)
    if kind == "pad-start":
        target[index]["name"] = f"{path}:{'0' * amount}{start}:{end}"
    elif kind == "pad-end":
        target[index]["name"] = f"{path}:{start}:{'0' * amount}{end}"
    elif kind == "overlap":
        algorithm = target[index]["algorithm"]
        digest = hashlib.sha256(b"%d" % amount).hexdigest()
        # A second shard at the same offset: listed twice if it is the same range, else overlap.
        other_end = end - 1 if end - start > 1 else end + 1
        resources.append({"name": f"{path}:{start}:{other_end}", "algorithm": algorithm,
                          "digest": digest})  # fmt: skip
    elif kind == "drop-not-last":
        resources.remove(target[min(index, len(target) - 2)])
    elif kind == "shorten-not-last":
        victim = target[min(index, len(target) - 2)]
        v_path, v_start, v_end = victim["name"].rsplit(":", 2)
        # Shorter than the shard size (or empty: then not even a byte range).
        victim["name"] = f"{v_path}:{v_start}:{max(int(v_start), int(v_end) - amount)}"
    else:  # shift-not-first: keeps the shard size alignment, so only the tiling can tell
        victim = target[max(index, 1)]
        v_path, v_start, v_end = victim["name"].rsplit(":", 2)
        victim["name"] = f"{v_path}:{int(v_start) + shard}:{int(v_end) + shard}"


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=5000),
    shard=st.integers(min_value=1, max_value=1500),
    data=st.data(),
)
def test_any_inconsistent_shard_name_is_rejected(
    key_pair: tuple[Path, Path], size: int, shard: int, data: st.DataObject
) -> None:
    count = -(-size // shard)
    kind, index, amount = data.draw(_mutations(count))
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        model.mkdir()
        (model / "w.bin").write_bytes(os.urandom(size))
        (model / "z.bin").write_bytes(b"z" * (shard + 1))
        result = modelseal.sign(model, private_key=key_pair[0], shard_size=shard)
        statement: dict[str, Any] = json.loads(result.bundle.payload)
        intact = resign(statement, key_pair, lambda resources: None)
        modelseal.verify(model, signature=intact, public_key=key_pair[1])
        bundle = resign(
            statement, key_pair, lambda resources: _mutate(resources, kind, index, amount, shard)
        )
        with pytest.raises(MalformedSignatureError) as err:
            modelseal.verify(model, signature=bundle, public_key=key_pair[1])
    assert [r.code for r in err.value.reasons] in (["inconsistent-manifest"], ["malformed"])
