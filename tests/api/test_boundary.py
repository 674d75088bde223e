"""What the registry refuses at its boundary, in process and over HTTP alike: text it could not
give back intact, numbers out of range, documents nested too deeply, bodies too large, and
requests from callers it has not authenticated yet."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.access import principals
from modelseal.errors import InputError
from modelseal.operation import MAX_DEPTH, check_value
from modelseal.registry import audit_trail, gc, uploads, versions
from modelseal.registry.views import VersionView
from tests.registry.fixtures import SignedModel, make_signed_model, open_env
from tests.server.conftest import Running, start_server, stop_server


@pytest.fixture
def live(tmp_path: Path, key_pair: tuple[Path, Path]) -> Iterator[tuple[Running, str, SignedModel]]:
    env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'registry.db'}")
    running = start_server(env)
    admin, reg = env.admin, env.registry
    reg.run(admin, principals.CreateUser(name="ci"))
    for role in ("data-scientist", "admin", "compliance-officer", "ml-engineer"):
        reg.run(admin, principals.GrantRole(name="ci", role=role))
    token = reg.run(admin, principals.CreateToken(name="ci")).token
    model = make_signed_model(tmp_path / "m", key_pair)
    try:
        yield running, token, model
    finally:
        stop_server(running)
        env.registry.close()


def _deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"note": "\ud800"}, "not valid Unicode"),
        ({"\udfff": "key"}, "not valid Unicode"),
        ({"note": "a\x00b"}, "NUL"),
        ({"score": float("nan")}, "not a finite number"),
        ({"score": float("inf")}, "not a finite number"),
        ({"deep": _deep(MAX_DEPTH + 1)}, "nested deeper"),
    ],
)
def test_unreadable_inputs_are_refused_before_anything_is_written(
    metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        uploads.BeginUpload(name="m", bundle="{}", metadata=metadata)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=20))  # fmt: skip
def test_what_passes_the_check_survives_a_json_round_trip(value: Any) -> None:
    try:
        check_value(value, "metadata")
    except InputError:
        return
    text = json.dumps(value, allow_nan=False)
    assert json.loads(text) == value
    text.encode("utf-8")
    assert "\x00" not in text.replace("\\u0000", "")


@pytest.mark.parametrize(
    "operation",
    [
        lambda: versions.SetAlias(name="m", alias="prod", version=2**31),
        lambda: versions.DeleteVersion(name="m", number=0, reason="x"),
        lambda: gc.CollectGarbage(grace_seconds=5.7e16),
        lambda: gc.CollectGarbage(grace_seconds=float("nan")),
        lambda: gc.CollectGarbage(grace_seconds=-1),
        lambda: principals.CreateToken(name="bob", expires_in_seconds=10**17),
        lambda: principals.CreateToken(name="bob", expires_in_seconds=0),
        lambda: audit_trail.ProveInclusion(index=2**63),
        lambda: audit_trail.ListAuditRecords(start=-1),
        lambda: principals.CreateUser(name="anonymous"),
        lambda: principals.CreateUser(name="Anonymous"),
    ],
)
def test_out_of_range_inputs_are_input_errors(operation: Any) -> None:
    with pytest.raises(InputError):
        operation()


def test_http_refuses_the_same_values_with_400(live: tuple[Running, str, SignedModel]) -> None:
    running, token, model = live
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=running.url, headers=headers) as http:
        body = {"bundle": model.signature.read_text(), "metadata": {"note": "\ud800"}}
        answer = http.post("/v1/models/m/uploads", content=json.dumps(body),
                           headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 400
        assert "not valid Unicode" in answer.json()["error"]["message"]
        for bad in ({"score": "NaN"}, {"deep": _deep(MAX_DEPTH + 1)}, {"n": "a\u0000b"}):
            raw = json.dumps({"bundle": "{}", "metadata": bad}).replace('"NaN"', "NaN")
            answer = http.post("/v1/models/m/uploads", content=raw,
                               headers={"Content-Type": "application/json"})  # fmt: skip
            assert answer.status_code == 400, (bad, answer.text)
        # Nesting far past any parser's comfort is a 400, never a 500.
        raw = '{"bundle": "{}", "metadata": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
        answer = http.post("/v1/models/m/uploads", content=raw,
                           headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 400
        assert http.post("/v1/gc", json={"grace_seconds": 5.7e16}).status_code == 400
        assert (
            http.post("/v1/users/ci/tokens", json={"expires_in_seconds": 10**17}).status_code == 400
        )
        assert http.put("/v1/models/m/aliases/prod", json={"version": 2**63}).status_code == 400
        assert http.get("/v1/audit/proofs/inclusion", params={"index": 2**63}).status_code == 400
        # A range past the end of the log is an error, not a stream cut short.
        answer = http.get("/v1/audit/records", params={"start": 10**9})
        assert answer.status_code == 400 and "the log holds" in answer.json()["error"]["message"]
        # Nothing above was stored: the registry still lists and resolves fine.
        assert http.get("/v1/models").json() == []


def test_a_model_with_unusual_but_valid_text_round_trips(
    live: tuple[Running, str, SignedModel],
) -> None:
    from modelseal.client import Client

    running, token, model = live
    metadata = {"emoji": "model \U0001f9e0", "rtl": "\u05e9\u05dc\u05d5\u05dd", "quote": '"\\'}
    with Client(running.url, token=token) as client:
        pushed = client.push(model.path, name="m", signature=model.signature,
                             public_key=model.public_key, metadata=metadata)  # fmt: skip
        assert pushed.metadata == metadata
        listed = client.call(versions.ListVersions(name="m"))
        assert isinstance(listed[0], VersionView) and listed[0].metadata == metadata


def _answer_to_head(url: str, head: str, wait: float = 10.0) -> int:
    """Send only a request line and headers (the body they announce never comes): the status
    the server answers without it (0 if it waits for the body)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head.encode("latin-1"))
        answer = b""
        try:
            while b"\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except TimeoutError:
            return 0
    return int(answer.split(b" ", 2)[1]) if answer else 0


def test_an_unauthenticated_body_is_never_read(live: tuple[Running, str, SignedModel]) -> None:
    running, token, _model = live
    for size, want in ((300 << 20, 413), (1 << 20, 401)):
        head = (f"POST /v1/models/m/uploads HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n")  # fmt: skip
        # Too large for the route: refused at once; within the limit but no token: refused
        # before a byte of the body arrives.
        assert _answer_to_head(running.url, head) == want
    # With a token the server does wait for the body it was promised.
    head = (f"POST /v1/models/m/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
            "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")  # fmt: skip
    assert _answer_to_head(running.url, head, wait=2.0) == 0


def test_an_authenticated_chunked_body_past_the_limit_is_413(
    live: tuple[Running, str, SignedModel],
) -> None:
    running, token, _model = live

    def body() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * (1 << 20)

    with httpx.Client(base_url=running.url) as http:
        answer = http.post("/v1/gc", content=body(),
                           headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too-large"
