"""The leaf encoding: the fast paths (flat details, string roles, hand-built record JSON) give
byte for byte what the general JSON encoder gives, for any record."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.audit.record import AuditEvent, AuditRecord, encode_details, encode_roles


def _reference(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_text = st.text(st.characters(codec="utf-8"), max_size=12)
_scalar = st.none() | st.booleans() | st.integers() | _text | st.floats(allow_nan=False)
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(details=st.dictionaries(_text, _value, max_size=5), roles=st.lists(_text, max_size=4))
def test_fast_encodings_match_the_json_encoder(details: dict[str, Any], roles: list[str]) -> None:
    assert encode_details(details) == _reference(details)
    assert encode_roles(tuple(roles)) == _reference(roles)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(min_value=0, max_value=2**62),
    fields=st.lists(_text, min_size=8, max_size=8),
    digest=st.none() | _text,
    details=st.dictionaries(_text, _value, max_size=4),
    roles=st.lists(_text, max_size=3),
)
def test_leaf_bytes_match_the_json_encoder(
    seq: int, fields: list[str], digest: str | None, details: dict[str, Any], roles: list[str]
) -> None:
    time, actor, action, resource, outcome, reason, request_id, source = fields
    event = AuditEvent(actor=actor, roles=tuple(roles), action=action, resource=resource,
                       outcome="allowed", reason=reason, digest=digest, request_id=request_id,
                       source=source, details=details)  # fmt: skip
    record = AuditRecord.from_event(seq, time, event)
    record = AuditRecord(**{**record.to_dict(), "roles": record.roles, "outcome": outcome})
    assert record.canonical() == _reference(record.to_dict()).encode("utf-8")


def test_unusual_values_take_the_general_encoder() -> None:
    odd = {"n": 1.5, "nested": {"b": [1, None]}, "flag": True}
    assert encode_details(odd) == _reference(odd)
    assert encode_details({1: "x"}) == _reference({1: "x"})  # type: ignore[dict-item]
    record = AuditRecord(seq=3, time="t", actor="a", roles=("r",), action="x", resource="y",
                         digest=None, outcome="allowed", reason="", request_id="", source="",
                         details={})  # fmt: skip
    object.__setattr__(record, "actor", 7)  # not a string: still the JSON encoder's bytes
    assert record.canonical() == _reference(record.to_dict()).encode("utf-8")
