"""HDF5 files (Keras ``.h5``, PyTables, pandas ``HDFStore``, h5py): the Keras model config,
external links and storage, and pickles hidden in attributes and datasets.

PyTables unpickles every string attribute ending in ``.`` when it is read, and every row of an
``ObjectAtom`` array (a variable-length ``uint8`` dataset); h5py opaque and byte-string values
are what custom loaders ``pickle.loads``. All of them go through the pickle VM.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.formats.hidden import maybe_pickle, probe_pickle
from modelseal.scanning.formats.keras import scan_keras_text
from modelseal.scanning.report import Location, Severity

MAX_OBJECTS = 200_000
MAX_VALUES = 200_000  # pickle-like values run through the VM per file
MAX_DATASET_BYTES = 256 << 20  # byte-like datasets larger than this are not read
_CONFIG_ATTRS = ("model_config", "training_config")


class _State:
    def __init__(self) -> None:
        self.objects = 0
        self.values = 0


def scan_hdf5(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Scan an HDF5 file: configs, links, external storage and hidden pickles."""
    ctx.saw("hdf5")
    try:
        import h5py  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        ctx.fail(location, "HDF5 files need the 'h5py' package to be scanned")
        return
    try:
        with h5py.File(stream, "r") as f:
            for name in _CONFIG_ATTRS:
                if name in f.attrs:
                    value = f.attrs[name]
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    ctx.saw("keras-h5")
                    scan_keras_text(ctx, str(text), location.inside(f"@{name}"))
            state = _State()
            _attrs(ctx, f, location, state)
            _walk(ctx, f, location, state)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        ctx.fail(location, f"HDF5 file cannot be read: {exc}")


def _walk(ctx: Context, group: Any, location: Location, state: _State) -> None:
    import h5py

    for name in group:
        state.objects += 1
        if state.objects > MAX_OBJECTS:
            ctx.fail(location, f"more than {MAX_OBJECTS} HDF5 objects")
            return
        link = group.get(name, getlink=True)
        path = f"{group.name.rstrip('/')}/{name}"
        if isinstance(link, h5py.ExternalLink):
            ctx.find(
                rules.HDF5_EXTERNAL_LINK,
                Severity.HIGH,
                location.inside(path),
                f"{link.filename}:{link.path}",
                "external link: reading the model opens another file",
            )
            continue
        if isinstance(link, h5py.SoftLink):
            continue
        obj = group[name]
        _attrs(ctx, obj, location.inside(path), state)
        if isinstance(obj, h5py.Dataset):
            if obj.external:
                files = ", ".join(str(e[0]) for e in obj.external)
                ctx.find(
                    rules.HDF5_EXTERNAL_STORAGE,
                    Severity.HIGH,
                    location.inside(path),
                    files,
                    "dataset stored in external raw files: reading it reads those files",
                )
                continue
            _dataset(ctx, obj, location.inside(path), state)
        elif isinstance(obj, h5py.Group):
            _walk(ctx, obj, location, state)


def _bytes_kind(dtype: Any) -> str | None:
    """``"bytes"`` for string/opaque types, ``"rows"`` for variable-length uint8 (PyTables
    ObjectAtom), ``"str"`` for variable-length text, None for numbers and everything else."""
    import h5py
    import numpy as np

    if dtype.kind in ("S", "V") and dtype.names is None:
        return "bytes"
    if dtype.kind == "O":
        base = h5py.check_vlen_dtype(dtype)
        if base in (bytes, str):
            return "bytes"
        if base is not None and np.dtype(base) in (np.dtype("uint8"), np.dtype("int8")):
            return "rows"
    return None


def _as_bytes(value: Any) -> bytes | None:
    import numpy as np

    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")  # h5py decodes vlen bytes so
    if isinstance(value, np.void):
        return value.tobytes()
    if isinstance(value, np.ndarray) and value.dtype in (np.uint8, np.int8):
        return value.tobytes()
    return None


def _values(value: Any) -> list[Any]:
    import numpy as np

    if isinstance(value, np.ndarray) and value.dtype.kind in ("S", "V", "O", "U"):
        return list(value.ravel())
    return [value]


def _attrs(ctx: Context, obj: Any, location: Location, state: _State) -> None:
    for name in obj.attrs:
        try:
            dtype = obj.attrs.get_id(name).dtype
        except (OSError, KeyError, TypeError, ValueError) as exc:
            ctx.fail(location.inside(f"@{name}"), f"HDF5 attribute cannot be read: {exc}")
            continue
        if dtype.kind not in ("S", "V", "O", "U"):
            continue  # numbers and fixed-width unicode are never unpickled
        try:
            value = obj.attrs[name]
        except (OSError, KeyError, TypeError, ValueError) as exc:
            ctx.fail(location.inside(f"@{name}"), f"HDF5 attribute cannot be read: {exc}")
            continue
        _probe_all(ctx, _values(value), location.inside(f"@{name}"), state)


def _probe_all(
    ctx: Context, values: list[Any], location: Location, state: _State, *, text: bool = True
) -> None:
    """Probe each value that could be a pickle; ``text`` False: only binary protocols (no
    loader unpickles dataset strings, so only a pickle that says so is one)."""
    for value in values:
        data = _as_bytes(value)
        if data is None or not maybe_pickle(data) or not (text or data[:1] == b"\x80"):
            continue
        state.values += 1
        if state.values > MAX_VALUES:
            ctx.fail(location, f"more than {MAX_VALUES} pickle-like values in one HDF5 file")
            return
        if not ctx.budget.spend(len(data)):
            ctx.fail(location, "scan budget exhausted")
            return
        if probe_pickle(ctx, data, location):
            ctx.saw("hdf5-pickle")


def _dataset(ctx: Context, ds: Any, location: Location, state: _State) -> None:
    kind = _bytes_kind(ds.dtype)
    pseudo = ds.attrs.get("PSEUDOATOM") if "PSEUDOATOM" in ds.attrs else None
    if kind is None and not (ds.dtype.kind in ("u", "i") and ds.dtype.itemsize == 1):
        return
    if ds.shape is None:  # null dataspace: no data
        return
    nbytes = int(ds.size) * max(ds.dtype.itemsize, 1)
    if nbytes > MAX_DATASET_BYTES:
        if kind is not None:
            ctx.fail(location, f"byte-string dataset of {nbytes} bytes is too large to inspect")
        return
    if kind is None:
        # A plain 1-D uint8 dataset holding one pickle (custom loaders: pickle.loads(ds[()])).
        if len(ds.shape) != 1 or not ds.size:
            return
        head = bytes(ds[:2].tobytes())
        if not head.startswith(b"\x80"):
            return
        _probe_all(ctx, [ds[()]], location, state)
        return
    if not ctx.budget.spend(nbytes):
        ctx.fail(location, "scan budget exhausted")
        return
    values = ds[()]
    rows = _values(values) if kind == "bytes" else list(values.ravel()) if ds.shape else [values]
    before = len(ctx.findings) + len(ctx.unscannable)
    _probe_all(ctx, rows, location, state, text=False)
    if pseudo in (b"object", "object") and len(ctx.findings) + len(ctx.unscannable) == before:
        _object_rows(ctx, rows, location)


def _object_rows(ctx: Context, rows: list[Any], location: Location) -> None:
    """PyTables ObjectAtom rows are unpickled unconditionally: each must be a clean pickle."""
    for row in rows:
        data = _as_bytes(row)
        if data and not probe_pickle(ctx, data, location):
            ctx.fail(location, "PyTables object row is not a pickle the scanner can read")
            return
