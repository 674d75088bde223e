"""Bundle and statement parsing: known answers for DSSE PAE, strict rejection of anything an OMS
v1.0 signer could not have written, and no crash on arbitrary input (hypothesis)."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.errors import MalformedSignatureError, ModelsealError, UnsupportedSignatureError
from modelseal.signing.bundle import parse_bundle
from modelseal.signing.dsse import pae
from modelseal.signing.statement import parse_payload


def test_pae_known_answer() -> None:
    # The DSSE v1 protocol's own example: type "http://example.com/HelloWorld", body "hello world".
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.fixture(scope="module")
def statement(
    tmp_path_factory: pytest.TempPathFactory, key_pair: tuple[Path, Path]
) -> dict[str, Any]:
    from tests.conftest import build_model

    model = build_model(tmp_path_factory.mktemp("fmt") / "model")
    result = modelseal.sign(model, private_key=key_pair[0], shard_size=10_000)
    parsed: dict[str, Any] = json.loads(result.bundle.payload)
    return parsed


def _payload(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_valid_statement_round_trips(statement: dict[str, Any]) -> None:
    parsed = parse_payload(_payload(statement))
    assert parsed.manifest.serialization.method == "shards"
    assert parsed.manifest.root_digest.hex() == statement["subject"][0]["digest"]["sha256"]
    assert parsed.extensions["modelseal"]["empty_files"] == ["weights/empty.bin"]


def test_shard_size_written_as_float_by_model_signing_is_accepted(
    statement: dict[str, Any],
) -> None:
    statement = json.loads(json.dumps(statement))
    statement["predicate"]["serialization"]["shard_size"] = 10000.0
    assert parse_payload(_payload(statement)).manifest.serialization.shard_size == 10_000


MUTATIONS = [
    (lambda s: s.update({"_type": "x"}), "statement type"),
    (lambda s: s.update({"subject": []}), "exactly one subject"),
    (lambda s: s["predicate"]["serialization"].update({"shard_size": 0}), "positive integer"),
    (lambda s: s["predicate"]["serialization"].update({"shard_size": 1.5}), "positive integer"),
    (lambda s: s["predicate"]["serialization"].update({"allow_symlinks": "no"}), "wrong type"),
    (lambda s: s["predicate"]["serialization"].update({"ignore_paths": "x"}), "list of strings"),
    (lambda s: s["predicate"]["resources"][0].update({"algorithm": "sha256"}), "uses algorithm"),
    (lambda s: s["predicate"]["resources"][0].update({"digest": "zz"}), "hex"),
    (
        lambda s: s["predicate"]["resources"][0].update({"name": "../etc/passwd:0:10"}),
        "normalized relative",
    ),
    (lambda s: s["predicate"]["resources"][0].update({"name": "/abs:0:10"}), "normalized relative"),
    (lambda s: s["predicate"]["resources"][0].update({"name": "a:0"}), "path:start:end"),
    (lambda s: s["predicate"]["resources"][0].update({"name": "a:5:3"}), "does not fit"),
    (
        lambda s: s["predicate"]["resources"].append(dict(s["predicate"]["resources"][0])),
        "listed twice",
    ),
    (lambda s: s["subject"][0]["digest"].update({"sha256": "00" * 32}), "inconsistent"),
    (lambda s: s["predicate"]["resources"].reverse(), "inconsistent"),
]


@pytest.mark.parametrize(("mutate", "fragment"), MUTATIONS)
def test_malformed_statements_are_rejected_precisely(
    statement: dict[str, Any], mutate: Callable[[dict[str, Any]], object], fragment: str
) -> None:
    bad = json.loads(json.dumps(statement))
    mutate(bad)
    with pytest.raises(MalformedSignatureError, match=fragment) as err:
        parse_payload(_payload(bad))
    assert err.value.exit_code == 2 and err.value.reasons


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("predicateType", "https://model_signing/Digests/v0.1", "unsupported predicate type"),
        ("predicateType", "https://slsa.dev/provenance/v1", "unsupported predicate type"),
    ],
)
def test_unsupported_predicates(
    statement: dict[str, Any], field: str, value: str, fragment: str
) -> None:
    bad = dict(statement, **{field: value})
    with pytest.raises(UnsupportedSignatureError, match=fragment):
        parse_payload(_payload(bad))


def test_unsupported_methods_and_hashes(statement: dict[str, Any]) -> None:
    for key, value in (("method", "tensors"), ("hash_type", "md5")):
        bad = json.loads(json.dumps(statement))
        bad["predicate"]["serialization"][key] = value
        with pytest.raises(UnsupportedSignatureError):
            parse_payload(_payload(bad))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_parse_bundle_never_crashes_on_bytes(data: bytes) -> None:
    with contextlib.suppress(ModelsealError):
        parse_bundle(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_parse_payload_never_crashes_on_json(value: object) -> None:
    with contextlib.suppress(ModelsealError):
        parse_payload(json.dumps(value).encode())


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_statement_values_never_crash(
    statement: dict[str, Any], data: st.DataObject
) -> None:
    bad = json.loads(json.dumps(statement))
    target = data.draw(st.sampled_from(["serialization", "resource", "subject"]))
    value = data.draw(_json)
    if target == "serialization":
        key = data.draw(
            st.sampled_from(["method", "hash_type", "shard_size", "allow_symlinks", "ignore_paths"])
        )
        bad["predicate"]["serialization"][key] = value
    elif target == "resource":
        key = data.draw(st.sampled_from(["name", "algorithm", "digest"]))
        bad["predicate"]["resources"][0][key] = value
    else:
        bad["subject"][0][data.draw(st.sampled_from(["name", "digest"]))] = value
    with contextlib.suppress(ModelsealError):
        parse_payload(_payload(bad))


def test_bundle_structure_errors() -> None:
    good = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "ab"}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(b"{}").decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": base64.b64encode(b"sig").decode(), "keyid": ""}],
        },
    }
    assert parse_bundle(json.dumps(good).encode()).key_hint == "ab"
    edits: list[tuple[Callable[[dict[str, Any]], object], str]] = [
        (lambda b: b["dsseEnvelope"].update({"payload": "***"}), "not valid base64"),
        (lambda b: b["dsseEnvelope"].update({"payloadType": "text/plain"}), "payload type"),
        (lambda b: b["dsseEnvelope"].update({"signatures": []}), "no signatures"),
        (lambda b: b.pop("verificationMaterial"), "no verificationMaterial"),
        (lambda b: b["verificationMaterial"].pop("publicKey"), "neither a public key"),
        (
            lambda b: b["verificationMaterial"].update({"publicKey": {"hint": 5}}),
            "hint is not a string",
        ),
        (
            lambda b: b["verificationMaterial"].update(
                {"x509CertificateChain": {"certificates": []}}
            ),
            "has no certificates",
        ),
    ]
    for edit, fragment in edits:
        bad = json.loads(json.dumps(good))
        edit(bad)
        with pytest.raises(MalformedSignatureError, match=fragment):
            parse_bundle(json.dumps(bad).encode())
