"""The token of an ``Authorization`` header, as the registry server and the inference server
both read it."""

from __future__ import annotations

import pytest

from modelseal.access.tokens import bearer_token


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer msk_a", "msk_a"), ("bearer  msk_a ", "msk_a"), ("BEARER msk_a", "msk_a"),
     ("", None), ("Bearer", None), ("Bearer   ", None), ("Basic msk_a", None),
     ("msk_a", None)],
)  # fmt: skip
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token
