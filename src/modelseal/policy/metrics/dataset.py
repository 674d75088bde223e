"""Validation data: CSV, Parquet or NPZ, read once, its SHA-256 taken from the same bytes.

A dataset is a table of named columns of equal length (an NPZ file's arrays are its columns;
a 2-D array is a block of feature columns). Nothing in it is executed or unpickled: NPZ is read
with ``allow_pickle=False``, CSV as text. Anything unusable (unreadable, malformed, ragged,
empty, a missing or non-numeric feature column) is an :class:`~modelseal.errors.InputError`
naming the file and what to fix.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelseal.errors import InputError, UsageError, first_line

FORMATS = ("csv", "parquet", "npz")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A validation dataset as read: its columns and what identifies it."""

    path: str
    format: str
    sha256: str
    rows: int
    columns: dict[str, Any]

    def details(self) -> dict[str, Any]:
        """What the evidence records about the dataset (read by the ML-BOM)."""
        return {"path": self.path, "sha256": self.sha256, "rows": self.rows, "format": self.format}

    def column(self, name: str, role: str) -> Any:
        """A 1-D column; :class:`InputError` if it is missing or not 1-D."""
        value = self.columns.get(name)
        if value is None:
            raise InputError(
                f"dataset {self.path!r} has no column {name!r} ({role})",
                hint=f"its columns are: {', '.join(self.columns) or 'none'}; fix the policy's "
                "metrics section",
            )
        if value.ndim != 1:
            raise InputError(
                f"dataset {self.path!r}: {role} column {name!r} is not one value per row",
                hint="give a 1-D column",
            )
        return value

    def features(self, names: Sequence[str] | None, exclude: Sequence[str]) -> Any:
        """The feature matrix (rows x features, float64): ``names`` in order, or every column
        not in ``exclude``."""
        chosen = list(names) if names is not None else [c for c in self.columns if c not in exclude]
        if not chosen:
            raise InputError(
                f"dataset {self.path!r} has no feature columns",
                hint="list them in the policy's metrics.features",
            )
        blocks = []
        for name in chosen:
            value = self.columns.get(name)
            if value is None:
                raise InputError(
                    f"dataset {self.path!r} has no feature column {name!r}",
                    hint=f"its columns are: {', '.join(self.columns)}; fix metrics.features",
                )
            if value.dtype.kind not in "biuf":
                raise InputError(
                    f"dataset {self.path!r}: feature column {name!r} is not numeric"
                    + _first_text(value),
                    hint="features must be numbers; encode the column or leave it out of "
                    "metrics.features",
                )
            blocks.append(value.reshape(self.rows, -1))
        if len(blocks) == 1 and blocks[0].dtype == np.float64:
            return np.ascontiguousarray(blocks[0])
        return np.concatenate([b.astype(np.float64, copy=False) for b in blocks], axis=1)


def read_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read ``path`` (format by extension, else by content) and digest its bytes."""
    where = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InputError(
            f"cannot read dataset {where!r}: {exc.strerror}", hint="check the --data path"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    kind = _format(Path(where), data)
    reader = {"csv": _csv, "parquet": _parquet, "npz": _npz}[kind]
    columns = reader(where, data)
    lengths = {name: len(value) for name, value in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(
            f"dataset {where!r}: columns have different lengths "
            + ", ".join(f"{n}={k}" for n, k in lengths.items()),
            hint="every column needs one value per row",
        )
    rows = next(iter(lengths.values()), 0)
    if rows == 0:
        raise InputError(f"dataset {where!r} has no rows", hint="give validation data with rows")
    return Dataset(where, kind, digest, rows, columns)


def _format(path: Path, data: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq") or data[:4] == b"PAR1":
        return "parquet"
    if suffix == ".npz" or data[:4] == b"PK\x03\x04":
        return "npz"
    return "csv"


def _csv(where: str, data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"dataset {where!r} is not UTF-8 text (byte {exc.start})",
            hint="give CSV in UTF-8, or Parquet or NPZ",
        ) from None
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InputError(
            f"dataset {where!r} is not valid CSV: {exc}", hint="fix the file"
        ) from None
    if not records or not any(records[0]):
        raise InputError(
            f"dataset {where!r} has no header row", hint="the first row names the columns"
        )
    header, body = records[0], records[1:]
    _unique(where, header)
    width = len(header)
    ragged = next((i for i, r in enumerate(body) if len(r) != width), None)
    if ragged is not None:
        raise InputError(
            f"dataset {where!r}: row {ragged + 2} has {len(body[ragged])} fields, the header has "
            f"{width}",
            hint="every row needs one value per column",
        )
    if not body:
        return {name: np.empty(0) for name in header}
    columns = zip(*body, strict=True)  # every row has the header's width (checked above)
    return {name: _numbers_or_text(values) for name, values in zip(header, columns, strict=True)}


def _numbers_or_text(values: Sequence[str]) -> Any:
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=str)


def _npz(where: str, data: bytes) -> dict[str, Any]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            columns = {name: archive[name] for name in archive.files}
    except Exception as exc:  # any failure to parse untrusted bytes is one line, never a trace
        raise InputError(
            f"dataset {where!r} is not a usable NPZ file: {first_line(exc, None)}",
            hint="save plain numeric or text arrays with numpy.savez (no object arrays)",
        ) from None
    for name, value in columns.items():
        if not isinstance(value, np.ndarray):  # a member that is not a .npy array
            raise InputError(
                f"dataset {where!r}: member {name!r} is not a NumPy array",
                hint="save the dataset with numpy.savez",
            )
        if value.ndim not in (1, 2):
            raise InputError(
                f"dataset {where!r}: array {name!r} has {value.ndim} dimensions",
                hint="give 1-D columns or a 2-D feature block (rows x features)",
            )
    return columns


def _parquet(where: str, data: bytes) -> dict[str, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            f"reading Parquet ({where!r}) needs the pyarrow package",
            hint='pip install "modelseal[parquet]", or give CSV or NPZ',
        ) from None
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # any failure to parse untrusted bytes is one line, never a trace
        raise InputError(
            f"dataset {where!r} is not a usable Parquet file: {first_line(exc, None)}",
            hint="check the file",
        ) from None
    _unique(where, table.column_names)
    columns: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if column.null_count:
            raise InputError(
                f"dataset {where!r}: column {name!r} has {column.null_count} missing value(s)",
                hint="fill or drop missing values before gating",
            )
        value = column.to_numpy()
        if value.dtype.kind == "O":
            kinds = {type(v) for v in value[:1000]}
            if not kinds <= {str}:
                raise InputError(
                    f"dataset {where!r}: column {name!r} is not numbers or text",
                    hint="give flat numeric or string columns",
                )
            value = value.astype(str)
        columns[name] = value
    return columns


def _unique(where: str, names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(
                f"dataset {where!r} has two columns named {name!r}", hint="rename one of them"
            )
        seen.add(name)


def _first_text(value: Any) -> str:
    for row, item in enumerate(value.ravel()[:1_000_000]):
        try:
            float(item)
        except (TypeError, ValueError):
            return f" (data row {row + 1}: {str(item)[:40]!r})"
    return ""
