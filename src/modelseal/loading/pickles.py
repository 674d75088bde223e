"""Loading pickles from verified bytes: plain pickles, joblib files, whole PyTorch modules.

Every one goes through the restricted unpickler's checks (:mod:`modelseal.loading.safe_pickle`)
with the one allow-list the scanner used; nothing reaches ``pickle.load``, ``joblib.load`` or
``torch.load``.
"""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zipfile
from typing import Any, ClassVar

from modelseal.errors import TensorFormatError, UsageError
from modelseal.hashing.engine import Buffer
from modelseal.loading.safe_pickle import PickleGuard, RestrictedUnpickler, guarded_dispatch
from modelseal.memio import ViewReader
from modelseal.scanning.allowlist import Allowlist

# Errors a malformed pickle raises from the pure-Python unpickler (never a traceback to users).
_MALFORMED = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    struct.error,
    OverflowError,
    RecursionError,
    UnicodeDecodeError,
    MemoryError,
)
_COMPRESSED = (b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x5d\x00\x00", b"\x04\x22\x4d\x18")


def _damaged(name: str, what: str, exc: BaseException) -> TensorFormatError:
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return TensorFormatError(f"{name}: cannot load {what} ({detail})", hint="the file is damaged")


def load_pickle(name: str, data: Buffer, allowlist: Allowlist) -> tuple[Any, str]:
    """A plain pickle or a joblib file (plain or compressed) as ``(object, kind)``."""
    head = bytes(data[:6])
    if head.startswith(b"PK\x03\x04"):
        raise UsageError(
            f"{name} is a zip archive, not a pickle",
            hint="use --framework auto (PyTorch checkpoints and .npz are zip archives)",
        )
    # joblib keeps array bytes between pickle opcodes, after each NumpyArrayWrapper.
    if head.startswith(_COMPRESSED) or b"NumpyArrayWrapper" in data:
        return load_joblib(name, data, allowlist), "joblib"
    try:
        return RestrictedUnpickler(io.BytesIO(data), allowlist=allowlist).load(), "pickle"
    except _MALFORMED as exc:
        raise _damaged(name, "pickle data", exc) from None


def load_joblib(name: str, data: Buffer, allowlist: Allowlist) -> Any:
    """joblib's own unpickler (arrays stored inline) under the restricted unpickler's checks;
    an object array's nested pickle goes through the restricted unpickler too."""
    try:
        from joblib import numpy_pickle, numpy_pickle_utils
    except ImportError:
        raise UsageError(
            "loading this model needs the joblib package", hint='pip install "modelseal[sklearn]"'
        ) from None

    def load_build(self: Any) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        if not isinstance(inst, numpy_pickle.NumpyArrayWrapper):
            numpy_pickle.NumpyUnpickler.load_build(self)
            return
        if not isinstance(state, dict) or not hasattr(state.get("dtype"), "hasobject"):
            raise pickle.UnpicklingError("malformed joblib array wrapper")
        if not state["dtype"].hasobject:
            numpy_pickle.NumpyUnpickler.load_build(self)
            return
        # An object array is a nested pickle; joblib would read it without these checks.
        pickle._Unpickler.dispatch[pickle.BUILD[0]](self)  # plain BUILD: the wrapper's state
        self.stack.pop()
        nested = RestrictedUnpickler(self.file_handle, allowlist=self.allowlist)
        self.stack.append(nested.load())

    base = dict(numpy_pickle.NumpyUnpickler.dispatch)
    base[pickle.BUILD[0]] = load_build

    class RestrictedJoblibUnpickler(PickleGuard, numpy_pickle.NumpyUnpickler):  # type: ignore[misc]
        # The pure-Python unpickler dispatches through a class-level table, not methods.
        dispatch: ClassVar[dict[int, Any]] = guarded_dispatch(base)

    fileobj: Any = io.BytesIO(bytes(data))
    try:
        compressor = numpy_pickle_utils._detect_compressor(fileobj)
        if compressor == "compat":
            raise TensorFormatError(
                f"{name}: joblib files older than 0.10 keep arrays in companion files",
                hint="re-save the model with a current joblib",
            )
        if compressor in numpy_pickle_utils._COMPRESSORS:
            wrapper = numpy_pickle_utils._COMPRESSORS[compressor]
            fileobj = numpy_pickle_utils._buffered_read_file(wrapper.decompressor_file(fileobj))
        unpickler = RestrictedJoblibUnpickler(name, fileobj, True)
        unpickler.allowlist = allowlist
        return unpickler.load()
    except (*_MALFORMED, OSError) as exc:
        raise _damaged(name, "joblib data", exc) from None


def load_torch_module(name: str, data: Buffer, allowlist: Allowlist) -> Any:
    """A whole pickled object from a PyTorch zip checkpoint (``torch.save(model)``).

    Storages are rebuilt from the verified archive's members; every global goes through the
    restricted unpickler, so the model's own classes must be on the allow-list.
    """
    try:
        import torch
    except ImportError:
        raise UsageError(
            "loading this model needs the torch package", hint='pip install "modelseal[torch]"'
        ) from None
    try:
        archive = zipfile.ZipFile(ViewReader(data))
    except zipfile.BadZipFile as exc:
        raise _damaged(name, "the PyTorch checkpoint", exc) from None
    with archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise TensorFormatError(f"{name}: no data.pkl in the checkpoint", hint="damaged?")
        prefix = pkl[: -len("data.pkl")]
        storages: dict[str, Any] = {}

        def persistent_load(pid: Any) -> Any:
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise pickle.UnpicklingError("unexpected persistent id")
            storage_type, key = pid[1], str(pid[2])
            with warnings.catch_warnings():  # legacy storage classes warn on .dtype
                warnings.simplefilter("ignore")
                dtype = getattr(storage_type, "dtype", None)
            if not isinstance(dtype, torch.dtype):
                raise pickle.UnpicklingError("persistent id without a storage type")
            if key not in storages:
                member = f"{prefix}data/{key}"
                if member not in names:
                    raise pickle.UnpicklingError(f"storage {key!r} is missing")
                raw = bytearray(archive.read(member))
                untyped: Any = torch.UntypedStorage(0)  # type: ignore[no-untyped-call]
                if raw:
                    untyped = torch.frombuffer(raw, dtype=torch.uint8).untyped_storage()
                typed: Any = torch.storage.TypedStorage
                storages[key] = typed(wrap_storage=untyped, dtype=dtype, _internal=True)
            return storages[key]

        unpickler = RestrictedUnpickler(
            io.BytesIO(archive.read(pkl)), allowlist=allowlist, persistent_load=persistent_load
        )
        try:
            return unpickler.load()
        except _MALFORMED as exc:
            raise _damaged(name, "the PyTorch checkpoint", exc) from None
