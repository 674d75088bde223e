"""HDF5 files (Keras ``.h5``): the model config, external links and external storage."""

from __future__ import annotations

from typing import Any, BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.formats.keras import scan_keras_text
from modelseal.scanning.report import Location, Severity

MAX_OBJECTS = 200_000
_CONFIG_ATTRS = ("model_config", "training_config")


def scan_hdf5(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
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
            _walk(ctx, f, location, [0])
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        ctx.fail(location, f"HDF5 file cannot be read: {exc}")


def _walk(ctx: Context, group: Any, location: Location, count: list[int]) -> None:
    import h5py

    for name in group:
        count[0] += 1
        if count[0] > MAX_OBJECTS:
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
        elif isinstance(obj, h5py.Group):
            _walk(ctx, obj, location, count)
