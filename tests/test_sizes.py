"""Sizes people write (`--shard-size`, `max_file_bytes`): one parser for both."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelseal.sizes import parse_size

FACTORS = {"": 1, "k": 1000, "KB": 1000, "m": 10**6, "MiB": 1 << 20, "g": 10**9, "GiB": 1 << 30,
           "T": 10**12, "tib": 1 << 40}  # fmt: skip


@given(n=st.integers(min_value=1, max_value=10**6), unit=st.sampled_from(sorted(FACTORS)))
def test_numbers_with_units(n: int, unit: str) -> None:
    assert parse_size(f"{n}{unit}") == n * FACTORS[unit]
    assert parse_size(f" {n} {unit} ") == n * FACTORS[unit]


@pytest.mark.parametrize(
    "text", ["", "0", "0GiB", "-1", "1.5G", "ten", "5 PB", "1ki", "GiB", "1 2"]
)
def test_not_sizes(text: str) -> None:
    assert parse_size(text) is None
