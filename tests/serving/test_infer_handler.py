"""The inference route's own ASGI handler: bodies in pieces, clients that go away, the
documented route answering the same, and the prepared signature checks agreeing with the
plain NumPy ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelseal.errors import InferenceInputError
from modelseal.serving.signature import TensorSpec, _check_tensor
from tests.serving.conftest import Signed, source_for

ROW = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                   "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip


def _scope(
    path: str = "/v2/models/m/infer", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": headers or [],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}  # fmt: skip


def _call(app: Any, messages: list[dict[str, Any]], scope: dict[str, Any] | None = None,
          *, entry: Callable[..., Any] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run one ASGI request through ``app`` (or ``entry``) with these receive messages."""
    sent: list[dict[str, Any]] = []
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await (entry or app)(scope or _scope(), receive, send)

    anyio.run(run)
    return sent


def _answer(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    return sent[0]["status"], json.loads(sent[1]["body"])


@pytest.fixture
def app(models: Callable[[str], Signed], serve_app: Callable[..., Any]) -> Any:
    return serve_app([source_for(models("sklearn"))]).app


def test_a_body_in_pieces_answers_as_one_piece(app: Any) -> None:
    body = json.dumps(ROW).encode()
    whole = _answer(_call(app, [{"type": "http.request", "body": body}]))
    pieces = [{"type": "http.request", "body": body[i : i + 7], "more_body": True}
              for i in range(0, len(body), 7)]  # fmt: skip
    pieces.append({"type": "http.request", "body": b"", "more_body": False})
    assert _answer(_call(app, pieces)) == whole
    assert whole[0] == 200 and whole[1]["outputs"][0]["name"] == "predict"


def test_a_client_that_leaves_mid_body_gets_nothing_and_is_counted(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(ROW).encode()
    repository = app.state.repository
    calls: list[Any] = []
    loaded = repository.get("m")
    real = loaded.runtime.predict

    def spy(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(loaded.runtime, "predict", spy)
    sent = _call(app, [{"type": "http.request", "body": body[:10], "more_body": True}])
    assert sent == [] and calls == []
    exposition = repository.metrics.exposition().decode()
    assert 'modelseal_inference_requests_total{code="499",model="m",version="1"} 1.0' in (
        exposition
    )


def test_the_documented_route_answers_as_the_fast_path(app: Any) -> None:
    body = [{"type": "http.request", "body": json.dumps(ROW).encode()}]

    async def through_the_router(scope: Any, receive: Any, send: Any) -> None:
        await FastAPI.__call__(app, scope, receive, send)  # past ServingApp's interception

    fast = _answer(_call(app, list(body)))
    routed = _answer(_call(app, list(body), entry=through_the_router))
    assert routed == fast
    bad = [{"type": "http.request", "body": b"{"}]
    assert _answer(_call(app, list(bad), entry=through_the_router))[0] == 400


def test_the_first_of_repeated_length_headers_counts(app: Any) -> None:
    body = json.dumps(ROW).encode()
    scope = _scope(headers=[(b"content-length", b"99999999"), (b"content-length", b"5")])
    status, answer = _answer(_call(app, [{"type": "http.request", "body": body}], scope))
    assert status == 413 and answer["code"] == "request-too-large"


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=40), elements=FLOATS)
)
def test_prepared_checks_agree_with_numpy(array: np.ndarray[Any, Any]) -> None:
    """Small tensors are checked value by value, large ones by NumPy: the same verdicts."""
    spec = TensorSpec("x", "FP64", (-1, array.shape[1]), minimum=-1e300, maximum=1e300)
    finite = bool(np.isfinite(array).all())
    inside = bool(((array >= -1e300) & (array <= 1e300)).all()) if finite else False
    try:
        checked = _check_tensor(spec, array, max_batch=1 << 20)
    except InferenceInputError as exc:
        assert not (finite and inside) or array.size == 0, exc
        if array.size and not finite:
            assert "NaN or infinite" in exc.message
    else:
        assert array.size == 0 or (finite and inside)
        assert checked is array


def test_prepared_dtype_conversion_and_refusal() -> None:
    spec = TensorSpec("x", "FP64", (-1, 2), also=("FP32", "INT64"))
    converted = _check_tensor(spec, np.ones((1, 2), dtype=np.float32), max_batch=8)
    assert converted.dtype == np.float64
    with pytest.raises(InferenceInputError, match="must be FP64, got INT8"):
        _check_tensor(spec, np.ones((1, 2), dtype=np.int8), max_batch=8)
    with pytest.raises(InferenceInputError, match="must have shape"):
        _check_tensor(spec, np.ones((1, 3)), max_batch=8)


@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [(ValueError, 400, "model-refused-input"), (KeyError, 400, "model-refused-input"),
     (RuntimeError, 500, "model-failed"), (MemoryError, 500, "model-failed")],
)  # fmt: skip
def test_a_model_that_raises_is_a_protocol_error_and_its_message_is_not_logged(
    app: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    raised: type[BaseException],
    status: int,
    code: str,
) -> None:
    """The framework's message (which may quote the input) goes to the caller, never to the
    log; an input problem is the caller's (400), anything else the model's (500)."""
    loaded = app.state.repository.get("m")

    def fails(inputs: Any, outputs: Any) -> Any:
        raise raised("found unknown category 'SECRET-VALUE-42' in column 0")

    monkeypatch.setattr(loaded.runtime, "predict", fails)
    with caplog.at_level("DEBUG"):
        got, answer = _answer(
            _call(app, [{"type": "http.request", "body": json.dumps(ROW).encode()}])
        )
    assert got == status and answer["code"] == code, answer
    assert raised.__name__ in answer["error"]
    if status == 400:
        assert "SECRET-VALUE-42" in answer["error"]  # the caller's own input, back to them
    assert "SECRET-VALUE-42" not in caplog.text
