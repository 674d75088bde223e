"""Loading models in their frameworks' own data formats from verified bytes in memory.

XGBoost, LightGBM, ONNX, NumPy and Keras v3. Each parser gets the bytes that were hashed and
scanned, never the model's path (onnxruntime reads them from a sealed in-memory file); a file
the framework cannot parse is one :class:`~modelseal.errors.TensorFormatError` line (exit 2),
never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from typing import Any

from modelseal.errors import Reason, TensorFormatError, UnsafeModelError, UsageError, first_line
from modelseal.hashing.engine import Buffer
from modelseal.memio import ViewReader


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise a one-line UsageError naming the extra that installs it."""
    from importlib import import_module

    try:
        return import_module(module)
    except ImportError:
        raise UsageError(
            f"loading this model needs the {module.split('.')[0]} package",
            hint=f'pip install "modelseal[{extra}]"',
        ) from None


def _damaged(name: str, what: str, exc: BaseException) -> TensorFormatError:
    return TensorFormatError(
        f"{name}: not a valid {what} ({first_line(exc, 200)})",
        hint="the file is damaged or not in this format; check --framework",
    )


def native_kind(data: Buffer) -> str | None:
    """XGBoost (UBJSON or JSON), LightGBM (text) or Keras v3 (.keras zip), by content."""
    head = bytes(data[:64])
    if head.startswith(b"{") and b"learner" in head:
        return "xgboost"
    if head.startswith(b"tree\nversion=v"):
        return "lightgbm"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(ViewReader(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        if {"config.json", "model.weights.h5"} <= names:
            return "keras"
        if any(n.split("/", 1)[-1].startswith("code/") for n in names):
            return "torchscript"  # torch.jit.save: the module's TorchScript code beside its data
    return None


def load_torchscript(name: str, data: Buffer) -> tuple[Any, str, int, int]:
    """A TorchScript module (``torch.jit.save``) from the verified bytes, in eval mode."""
    import io

    torch = require("torch", "torch")
    try:
        module = torch.jit.load(io.BytesIO(bytes(data)), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise _damaged(name, "TorchScript archive", exc) from None
    params = sum(int(p.numel()) for p in module.parameters())
    return module.eval(), "torchscript", len(list(module.parameters())), params


def load_native(name: str, data: Buffer, kind: str) -> tuple[Any, str, int, int]:
    """Load an XGBoost, LightGBM, Keras or TorchScript model: ``(object, kind, tensors,
    parameters)``."""
    if kind == "torchscript":
        return load_torchscript(name, data)
    if kind == "xgboost":
        xgb = require("xgboost", "xgboost")
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(data))
        except (xgb.core.XGBoostError, ValueError, TypeError) as exc:
            raise _damaged(name, "XGBoost model", exc) from None
        return booster, kind, 0, 0
    if kind == "lightgbm":
        lgb = require("lightgbm", "lightgbm")
        try:
            text = bytes(data).decode("utf-8")
            return lgb.Booster(model_str=text), kind, 0, 0
        except (lgb.basic.LightGBMError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise _damaged(name, "LightGBM model", exc) from None
    if kind == "keras":
        return load_keras(name, data)
    raise UsageError(f"{name}: unknown model kind {kind!r}", hint="check --framework")


# Keras extracts a model's assets through saving_lib.get_temp_dir; one load at a time may
# point it into its own private directory.
_KERAS_LOCK = threading.Lock()


@contextlib.contextmanager
def _private_dir() -> Iterator[str]:
    """A fresh 0700 directory, removed on every exit path this process controls."""
    path = tempfile.mkdtemp(prefix="modelseal-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _assets_only_store(saving_lib: Any, private: str) -> Any:
    """Keras's asset store, extracting only ``assets/`` (never the weights) into ``private``."""
    base = saving_lib.DiskIOStore

    class AssetsOnlyStore(base):  # type: ignore[misc, valid-type]
        def __init__(self, root_path: str, archive: Any = None, mode: Any = None) -> None:
            if archive is None or mode != "r":
                super().__init__(root_path, archive=archive, mode=mode)
                return
            self.mode, self.root_path, self.archive = mode, root_path, archive
            self.tmp_dir = tempfile.mkdtemp(dir=private)
            prefix = root_path.rstrip("/") + "/"
            saving_lib._reject_zip_extract_bomb(archive)
            for info in archive.infolist():
                parts = info.filename.split("/")
                if info.filename.startswith(prefix) and ".." not in parts and not info.is_dir():
                    archive.extract(info, self.tmp_dir)
            self.working_dir = os.path.join(self.tmp_dir, root_path)

    return AssetsOnlyStore


def load_keras(name: str, data: Buffer) -> tuple[Any, str, int, int]:
    """Keras v3 in safe mode (no Lambda deserialization), loaded from the bytes in memory.

    The archive and its weights are read from memory (no file is written); only a model with
    assets (e.g. a lookup layer's vocabulary) has its ``assets/`` members (never the weights or
    the config) extracted, into a private 0700 directory that is removed when loading ends,
    whatever the outcome.
    """
    from importlib.util import find_spec

    if "KERAS_BACKEND" not in os.environ and find_spec("tensorflow") is None:
        os.environ["KERAS_BACKEND"] = "torch"  # the backend modelseal[keras] installs
    require("keras", "keras")
    saving_lib = require("keras.src.saving.saving_lib", "keras")
    fileobj = io.BytesIO(bytes(data))
    with _KERAS_LOCK, _private_dir() as private:
        patched = {
            "get_temp_dir": lambda: tempfile.mkdtemp(dir=private),
            "DiskIOStore": _assets_only_store(saving_lib, private),
        }
        original = {key: getattr(saving_lib, key) for key in patched}
        for key, value in patched.items():
            setattr(saving_lib, key, value)
        try:
            model = saving_lib.load_model(fileobj, compile=False, safe_mode=True)
        except json.JSONDecodeError as exc:
            raise _damaged(name, "Keras archive", exc) from None
        except (ValueError, TypeError) as exc:
            if isinstance(exc, ValueError) and "safe_mode" not in str(exc):
                raise _damaged(name, "Keras archive", exc) from None
            raise UnsafeModelError(
                f"{name}: Keras refused the model in safe mode ({first_line(exc, 200)})",
                reasons=[Reason("unsafe-content", f"{name}: rejected by Keras safe mode")],
                hint="the model uses code (e.g. Lambda layers) that safe mode does not load",
            ) from None
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise _damaged(name, "Keras archive", exc) from None
        finally:
            for key, value in original.items():
                setattr(saving_lib, key, value)
    return model, "keras", len(model.weights), int(model.count_params())


def load_onnx(name: str, data: Buffer) -> tuple[Any, str, int, int]:
    """An onnxruntime session from the bytes (the ModelProto if onnxruntime is absent).

    The model is walked first (:mod:`~modelseal.loading.onnx_facts`): a tensor whose data
    lives in another file is refused, since those bytes were never verified. onnxruntime then
    reads the verified bytes from a sealed in-memory file (:mod:`~modelseal.loading.sealed`),
    which it does without holding the interpreter lock, where handing it ``bytes`` would copy
    them with the lock held."""
    from modelseal.loading import sealed
    from modelseal.loading.onnx_facts import BadMessage, onnx_facts

    try:
        facts = onnx_facts(data)
    except BadMessage as exc:
        raise _damaged(name, "ONNX model", exc) from None
    if facts.external:
        raise TensorFormatError(
            f"{name}: tensor {facts.external[0]!r} keeps its data in another file, which is "
            "not part of the verified bytes",
            hint="save the model with its tensors inside (onnx.save_model(..., "
            "save_as_external_data=False)) and sign it again",
        )
    try:
        import onnxruntime
    except ImportError:
        onnx = require("onnx", "onnx")
        try:
            return (
                onnx.load_model_from_string(bytes(data)),
                "onnx",
                facts.initializers,
                (facts.parameters),
            )
        except Exception as exc:  # protobuf's DecodeError and friends have no common base
            raise _damaged(name, "ONNX model", exc) from None
    providers = ["CPUExecutionProvider"]
    try:
        if sealed.available():
            with sealed.sealed_file(data, name) as path:
                session = onnxruntime.InferenceSession(path, providers=providers)
        else:
            session = onnxruntime.InferenceSession(bytes(data), providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/RuntimeError types
        raise _damaged(name, "ONNX model", exc) from None
    return session, "onnx", facts.initializers, facts.parameters


def load_numpy(name: str, data: Buffer, kind: str) -> tuple[Any, str, int, int]:
    """A ``.npy`` array or a dict of ``.npz`` arrays, never unpickling object arrays."""
    np = require("numpy", "numpy")
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if kind == "npy":
            return loaded, "numpy", 1, int(loaded.size)
        arrays = {key: loaded[key] for key in loaded.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise _damaged(name, "NumPy file", exc) from None
    return arrays, "numpy", len(arrays), sum(int(a.size) for a in arrays.values())
