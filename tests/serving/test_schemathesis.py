"""Schemathesis over the inference API (positive and negative data for every route): no 5xx,
every status documented, every body matching its schema. Two models are served (an ONNX
graph with a declared signature, a LightGBM booster) and one failed, so the generated requests
meet ready, not-ready and unknown models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
import schemathesis.specs.openapi.checks as oa
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

from modelseal.serving.run import ServeSettings, build
from tests.serving.conftest import Signed, source_for

EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    oa.status_code_conformance,
    oa.content_type_conformance,
    oa.response_schema_conformance,
]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_error_and_every_answer_matches_its_schema(
    mode: str, models: Callable[[str], Signed], other_key_pair: tuple[Path, Path]
) -> None:
    from schemathesis import GenerationMode

    sources = [
        source_for(models("onnx"), name="m"),
        source_for(models("lightgbm"), name="churn"),
        source_for(models("xgboost"), name="broken", public_key=other_key_pair[1]),
    ]
    app = build(sources, ServeSettings(auth=False, poll_interval=0, reverify_interval=0))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    tried = 0
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=generation))
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            check()
            tried += 1
        except Unsatisfiable:
            assert mode == "negative", operation.label
    # Negative data needs an input to spoil: routes without parameters or body have none.
    assert tried == len(operations) if mode == "positive" else tried >= 2
