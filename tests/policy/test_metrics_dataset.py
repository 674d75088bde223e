"""Validation data: CSV, Parquet and NPZ read to the same table with the digest of the file's
bytes; anything unusable is one InputError line naming the file and the fix; arbitrary bytes
never escape as anything else."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError, UsageError
from modelseal.policy.metrics.dataset import read_dataset


def _table(rows: int = 5) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    return {
        "a": rng.normal(size=rows),
        "b": rng.integers(0, 9, rows).astype(np.float64),
        "region": np.array(["eu", "us", "eu", "apac", "us"][:rows] * (rows // 5 + 1))[:rows],
        "label": rng.integers(0, 2, rows).astype(np.float64),
    }


def _write(path: Path, table: dict[str, Any]) -> Path:
    if path.suffix == ".csv":
        names = list(table)
        lines = [",".join(names)] + [
            ",".join(repr(float(v)) if isinstance(v, np.floating) else str(v) for v in row)
            for row in zip(*(table[n] for n in names), strict=True)
        ]
        path.write_text("\n".join(lines) + "\n")
    elif path.suffix == ".npz":
        with open(path, "wb") as handle:
            np.savez(handle, **table)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(table), path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".npz", ".parquet"])
def test_every_format_reads_to_the_same_table_with_its_digest(tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    table = _table()
    path = _write(tmp_path / f"valid{suffix}", table)
    data = read_dataset(path)
    assert data.format == suffix[1:] and data.rows == 5
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert data.details() == {
        "path": str(path),
        "sha256": data.sha256,
        "rows": 5,
        "format": suffix[1:],
    }
    for name, column in table.items():
        assert data.columns[name].tolist() == column.tolist(), name
    features = data.features(None, ["label", "region"])
    assert features.shape == (5, 2) and features.dtype == np.float64
    assert features[:, 0].tolist() == table["a"].tolist()


def test_an_npz_feature_block_is_many_columns(tmp_path: Path) -> None:
    path = tmp_path / "valid.npz"
    np.savez(path, X=np.arange(12.0).reshape(4, 3), y=np.array([0, 1, 0, 1]))
    data = read_dataset(path)
    assert data.features(["X"], []).tolist() == np.arange(12.0).reshape(4, 3).tolist()
    assert data.column("y", "label").tolist() == [0, 1, 0, 1]


def _bad(tmp_path: Path, name: str, content: bytes | None) -> str:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_dataset(path)
    assert "\n" not in info.value.message and info.value.exit_code == 2
    return info.value.message


def test_unusable_datasets_are_one_line_each(tmp_path: Path) -> None:
    where = str(tmp_path)
    assert _bad(tmp_path, "missing.csv", None) == (
        f"cannot read dataset '{where}/missing.csv': No such file or directory"
    )
    assert _bad(tmp_path, "ragged.csv", b"a,b,label\n1,2,0\n3,4\n") == (
        f"dataset '{where}/ragged.csv': row 3 has 2 fields, the header has 3"
    )
    assert _bad(tmp_path, "empty.csv", b"") == f"dataset '{where}/empty.csv' has no header row"
    assert _bad(tmp_path, "header.csv", b"a,label\n") == f"dataset '{where}/header.csv' has no rows"
    assert _bad(tmp_path, "twice.csv", b"a,a\n1,2\n") == (
        f"dataset '{where}/twice.csv' has two columns named 'a'"
    )
    assert _bad(tmp_path, "latin.csv", b"a,label\n\xe9,1\n") == (
        f"dataset '{where}/latin.csv' is not UTF-8 text (byte 8)"
    )
    assert _bad(tmp_path, "broken.npz", b"PK\x03\x04 not a zip").startswith(
        f"dataset '{where}/broken.npz' is not a usable NPZ file: "
    )


def test_pickled_npz_arrays_are_refused_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, X=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    message = _bad(tmp_path, "objects.npz", None)
    assert message.startswith(f"dataset '{path}' is not a usable NPZ file: Object arrays")


def test_an_npz_member_that_is_not_an_array_is_refused(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "odd.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not an array")
    assert _bad(tmp_path, "odd.npz", None) == (
        f"dataset '{path}': member 'notes.txt' is not a NumPy array"
    )


def test_missing_and_non_numeric_columns_name_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "valid.csv"
    path.write_text("a,region,label\n1,eu,0\n2,us,1\n")
    data = read_dataset(path)
    with pytest.raises(InputError) as info:
        data.features(["a", "region"], [])
    assert info.value.message == (
        f"dataset '{path}': feature column 'region' is not numeric (data row 1: 'eu')"
    )
    with pytest.raises(InputError) as info:
        data.column("target", "label")
    assert info.value.message == f"dataset '{path}' has no column 'target' (label)"
    assert "its columns are: a, region, label" in info.value.hint


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    path = tmp_path / "valid.parquet"
    path.write_bytes(b"PAR1....PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(UsageError) as info:
        read_dataset(path)
    assert info.value.message == f"reading Parquet ('{path}') needs the pyarrow package"
    assert info.value.hint == 'pip install "modelseal[parquet]", or give CSV or NPZ'


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300), st.sampled_from([".csv", ".npz", ".parquet", ".bin"]))
def test_arbitrary_bytes_read_or_fail_as_input_errors(
    tmp_path: Path, data: bytes, suffix: str
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        table = read_dataset(path)
    except UsageError as exc:  # InputError, or a missing optional reader
        assert exc.message and "\n" not in exc.message
    else:
        assert table.rows > 0 and table.sha256 == hashlib.sha256(data).hexdigest()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(0, 3),
            st.text("abcxyz", min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_csv_round_trips_numbers_and_text(
    tmp_path: Path, rows: list[tuple[float, int, str]]
) -> None:
    path = tmp_path / "round.csv"
    path.write_text("x,label,group\n" + "".join(f"{x!r},{y},{g}\n" for x, y, g in rows))
    data = read_dataset(path)
    assert data.columns["x"].tolist() == [x for x, _, _ in rows]
    assert data.columns["label"].tolist() == [float(y) for _, y, _ in rows]
    assert data.columns["group"].tolist() == [g for _, _, g in rows]
