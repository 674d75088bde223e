"""Verify, scan, then load: from exactly the bytes that were verified.

Every covered file is read once into memory and hashed from that memory; those bytes are scanned
and handed to the framework. Nothing is read from the path a second time, so a file swapped after
the check is never loaded; the swap is still noticed (file identity is compared afterwards) and
reported as :class:`~modelseal.errors.ModelChangedError`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelseal.errors import (
    ModelChangedError,
    Reason,
    TensorFormatError,
    UnsafeModelError,
    UnsupportedAlgorithmError,
    UsageError,
    VerificationError,
)
from modelseal.hashing.engine import Buffer, FileIdentity, HashOutcome, Reader
from modelseal.hashing.tensors import ITEMSIZE, detect, read_tensors, tensor_payload_ranges
from modelseal.hashing.walk import open_beneath, open_root
from modelseal.memio import ViewReader
from modelseal.signing.api import PathLike, VerificationResult, verify_outcome
from modelseal.signing.bundle import OmsBundle, read_bundle
from modelseal.signing.keys import PublicKey

if TYPE_CHECKING:
    from modelseal.crypto.keyset import Keyset
    from modelseal.crypto.providers import KeyProvider

FRAMEWORKS = (
    "auto",
    "safetensors",
    "torch",
    "numpy",
    "onnx",
    "pickle",
    "xgboost",
    "lightgbm",
    "keras",
)  # fmt: skip  (pickle covers joblib)
# Where the verified bytes live -> the hashing engine's reader (see load_verified).
MEMORY_MODES: dict[str, Reader] = {"copy": "capture", "map": "map"}
_NUMPY_DTYPES = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "int32": "<i4",
    "int16": "<i2", "int8": "i1", "uint64": "<u8", "uint32": "<u4", "uint16": "<u2",
    "uint8": "u1", "bool": "?", "complex64": "<c8", "complex128": "<c16",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A verified, scanned, loaded model and what was loaded."""

    obj: Any
    framework: str
    files: tuple[str, ...]
    tensors: int
    parameters: int
    verification: VerificationResult

    def to_dict(self) -> dict[str, Any]:
        """What was loaded, as a JSON-ready dict (the object itself is not included)."""
        return {
            "loaded": True,
            "framework": self.framework,
            "files": list(self.files),
            "tensors": self.tensors,
            "parameters": self.parameters,
            "signer": self.verification.signer,
            "root_digest": {"sha256": self.verification.root_digest},
        }


def _require(module: str, extra: str) -> Any:
    from importlib import import_module

    try:
        return import_module(module)
    except ImportError:
        raise UsageError(
            f"loading this model needs the {module.split('.')[0]} package",
            hint=f'pip install "modelseal[{extra}]"',
        ) from None


# Test seam: called after verification and scanning, before anything is parsed.
_after_verification: Callable[[Path], None] | None = None


def load_verified(
    path: PathLike,
    *,
    signature: PathLike | OmsBundle,
    public_key: PathLike | PublicKey | None = None,
    trust: Sequence[PathLike] | None = None,
    framework: str = "auto",
    allow_unsigned_files: bool = False,
    allow: Iterable[str] = (),
    tensor_type: str | None = None,
    scan: bool = True,
    at: dt.datetime | None = None,
    keyset: Keyset | None = None,
    key_provider: KeyProvider | str | None = None,
    associated_data: bytes = b"",
    memory: str = "copy",
) -> LoadedModel:
    """Verify ``path`` against ``signature``, scan the verified bytes, load them.

    ``framework`` is ``auto`` (by content) or one of :data:`FRAMEWORKS`; ``tensor_type`` picks
    ``numpy`` or ``torch`` arrays for tensor files (default: torch for PyTorch checkpoints, numpy
    otherwise); ``allow`` extends the restricted unpickler's allow-list (e.g. your scikit-learn
    classes). Files the signature does not cover are refused unless ``allow_unsigned_files``
    (they are then ignored, never loaded). Raises a :class:`modelseal.errors.VerificationError`
    subclass (integrity, signature, :class:`UnsafeModelError`, :class:`ModelChangedError`) or a
    :class:`modelseal.errors.UsageError`; nothing is returned on failure.

    An encrypted model (``modelseal encrypt``: a file, or a directory) is loaded with its
    ``keyset`` (a :class:`modelseal.crypto.Keyset`) or ``key_provider`` (a
    :class:`modelseal.crypto.KeyProvider`, or a URI such as ``local:kek.json``) and the
    ``associated_data`` it was bound to: it is decrypted into memory only (every segment
    authenticated), then verified against ``signature``, scanned and loaded from those bytes.
    The plaintext never touches disk.

    ``memory`` is where the verified bytes live: ``"copy"`` (default) reads each file once into
    fresh process memory, so nothing done to the files afterwards can reach the loaded model;
    ``"map"`` keeps a safetensors file or a PyTorch checkpoint as a private mapping of the
    file, hashed, scanned and parsed from there: its structure (header, zip directory, pickle) is
    made a private copy before hashing, its tensor values stay shared with the page cache (every
    other file is copied). That saves copying the weights, but an in-place write to them by
    someone who can write the file would show through later (a replaced file would not). See
    docs/loading.md.
    """
    if memory not in MEMORY_MODES:
        raise UsageError(f"unknown memory mode {memory!r}", hint="use 'copy' or 'map'")
    if framework not in FRAMEWORKS:
        raise UsageError(
            f"unknown framework {framework!r}", hint=f"use one of: {', '.join(FRAMEWORKS)}"
        )
    if tensor_type not in (None, "numpy", "torch"):
        raise UsageError(f"unknown tensor type {tensor_type!r}", hint="use 'numpy' or 'torch'")
    allow = tuple(allow)
    encrypted = keyset is not None or key_provider is not None
    contents = (
        _decrypt_in_memory(path, keyset, key_provider, associated_data) if encrypted else None
    )
    result, outcome = verify_outcome(
        path,
        signature=signature,
        public_key=public_key,
        trust_anchors=tuple(trust or ()),
        at=at,
        reader=MEMORY_MODES[memory],
        shared_ranges=tensor_payload_ranges if memory == "map" else None,
        allow_unsigned_files=allow_unsigned_files,
        contents=contents,
    )
    buffers = outcome.captured
    if scan:
        _scan(buffers, allow)
    if _after_verification is not None:
        _after_verification(Path(path))
    shown = Path(path)
    if encrypted:  # frameworks that look at the name see the plaintext's (no ".enc")
        from modelseal.hashing.memory import model_name_of

        shown = shown.with_name(model_name_of(shown))
    obj, kind, count, params = _parse(shown, buffers, framework, tensor_type, allow)
    if not encrypted:  # ciphertext was read once and authenticated; there is no file to re-check
        _check_unchanged(Path(path), outcome)
    return LoadedModel(obj, kind, tuple(sorted(buffers)), count, params, result)


def load(
    path: PathLike,
    *,
    signature: PathLike | OmsBundle,
    public_key: PathLike | PublicKey | None = None,
    trust: Sequence[PathLike] | None = None,
    framework: str = "auto",
    **options: Any,
) -> Any:
    """Verify, scan, then load ``path``; return the framework object.

    The object is returned only if the signature verifies, the scan is clean and the bytes
    handed to the framework are the bytes that were hashed; otherwise a
    :class:`modelseal.errors.VerificationError` subclass or a :class:`modelseal.errors.UsageError`
    is raised. See :func:`load_verified` for ``options`` (encrypted models, memory mode, ...).
    """
    return load_verified(
        path,
        signature=signature,
        public_key=public_key,
        trust=trust,
        framework=framework,
        **options,
    ).obj


_KEY_OPTIONS = ("keyset", "key_provider", "associated_data")


def _decrypt_in_memory(
    path: PathLike,
    keyset: Keyset | None,
    key_provider: KeyProvider | str | None,
    associated_data: bytes,
) -> dict[str, bytes]:
    """The plaintext of an encrypted model, in memory only, named as the manifest names it."""
    if keyset is not None and key_provider is not None:
        raise UsageError("give a keyset or a key provider, not both", hint="pass only one")
    if not isinstance(associated_data, bytes):
        raise UsageError("associated_data must be bytes", hint="e.g. b'' or name.encode()")
    from modelseal.crypto.api import decrypt_to_memory

    if isinstance(key_provider, str):
        from modelseal.crypto.providers import open_provider

        key_provider = open_provider(key_provider)
    plain = decrypt_to_memory(
        path, keyset=keyset, provider=key_provider, associated_data=associated_data
    )
    source = Path(path)
    if source.is_dir() and not source.is_symlink():
        return plain
    # One encrypted file is a single-file model: OMS names it ".".
    return {".": next(iter(plain.values()))}


def _scan(buffers: Mapping[str, Buffer], allow: tuple[str, ...]) -> None:
    from modelseal.scanning.allowlist import Allowlist
    from modelseal.scanning.engine import Options, scan_bytes

    options = Options(allowlist=Allowlist().extended(allow))
    reasons: list[Reason] = []
    for name in sorted(buffers):
        report = scan_bytes(buffers[name], options, name=name)
        for finding in report.findings:
            message = (
                f"{name}: {finding.subject} ({finding.severity.label}, {finding.rule}): "
                f"{finding.message}"
            )
            reasons.append(Reason("unsafe-content", message, path=name))
        for region in report.unscannable:
            reasons.append(
                Reason("unscannable", f"{name}: cannot scan: {region.reason}", path=name)
            )
    if reasons:
        raise UnsafeModelError(
            f"refusing to load: {reasons[0].message}"
            + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""),
            reasons=reasons,
            hint="run 'modelseal scan' for details; nothing was loaded",
        )


def _check_unchanged(root: Path, outcome: HashOutcome) -> None:
    """Compare each file's identity now with when it was read (fail closed on any change)."""
    is_file = "." in outcome.identities
    changed: list[str] = []
    try:
        root_fd = open_root(root, is_file)
    except Exception:
        changed = sorted(outcome.identities)
    else:
        try:
            for name, before in outcome.identities.items():
                try:
                    fd = os.dup(root_fd) if is_file else open_beneath(root_fd, name)
                except OSError:
                    changed.append(name)
                    continue
                try:
                    if FileIdentity.of(os.fstat(fd)) != before:
                        changed.append(name)
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)
    if changed:
        reasons = [
            Reason("changed", f"{n}: changed on disk during loading", path=n) for n in changed
        ]
        raise ModelChangedError(
            f"model changed on disk while it was loaded: {', '.join(sorted(changed))}",
            reasons=reasons,
            hint="something is modifying the model; nothing was returned",
        )


def _parse(
    root: Path,
    buffers: Mapping[str, Buffer],
    framework: str,
    tensor_type: str | None,
    allow: tuple[str, ...],
) -> tuple[Any, str, int, int]:
    weights: dict[str, str] = {}
    for name, data in buffers.items():
        try:
            weights[name] = detect(name, memoryview(data))
        except (TensorFormatError, UnsupportedAlgorithmError):
            continue  # not a weights file (a config, a tokenizer, a pickle)
    if "." in buffers:  # a single-file model
        native = _native_kind(buffers["."])
        if native is not None and framework in ("auto", native):
            return _load_native(root.name, buffers["."], native)
        return _parse_file(root.name, buffers["."], weights.get("."), framework, tensor_type, allow)
    if not weights:
        raise UsageError(
            f"no weights file in {str(root)!r} to load",
            hint="point at a model file, or a directory with safetensors/PyTorch weights",
        )
    merged: dict[str, Any] = {}
    params = 0
    for name in sorted(weights):
        if weights[name] not in ("safetensors", "torch", "npz"):
            continue
        obj, _, _, count = _parse_file(
            name, buffers[name], weights[name], framework, tensor_type, allow
        )
        for key, value in obj.items():
            if key in merged:
                raise TensorFormatError(
                    f"tensor {key!r} occurs in more than one file", hint="check the model files"
                )
            merged[key] = value
        params += count
    return merged, "directory", len(merged), params


def _parse_file(
    name: str,
    data: Buffer,
    kind: str | None,
    framework: str,
    tensor_type: str | None,
    allow: tuple[str, ...],
) -> tuple[Any, str, int, int]:
    if framework == "pickle" or (framework == "auto" and kind is None):
        return _load_pickle(name, data, allow)
    if kind is None:
        raise UsageError(f"{name} is not a {framework} file", hint="check --framework")
    expected = {"safetensors": ("safetensors",), "torch": ("torch",), "numpy": ("npy", "npz")}
    if framework in expected and kind not in expected[framework]:
        raise UsageError(f"{name} is a {kind} file, not {framework}", hint="check --framework")
    if kind == "onnx" or framework == "onnx":
        return _load_onnx(name, data)
    if kind in ("npy", "npz"):
        return _load_numpy(data, kind)
    default = "torch" if kind == "torch" else "numpy"
    tensors = read_tensors(name, data=memoryview(data))
    as_torch = (tensor_type or default) == "torch"
    out = {t.name: (_to_torch(t) if as_torch else _to_numpy(t)) for t in tensors}
    return out, kind, len(tensors), sum(t.numel for t in tensors)


def _native_kind(data: Buffer) -> str | None:
    """XGBoost (UBJSON or JSON), LightGBM (text) or Keras v3 (.keras zip), by content."""
    head = bytes(data[:64])
    if head.startswith(b"{") and b"learner" in head:
        return "xgboost"
    if head.startswith(b"tree\nversion=v"):
        return "lightgbm"
    if head.startswith(b"PK\x03\x04"):
        import zipfile

        try:
            with zipfile.ZipFile(ViewReader(data)) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            return None
        if {"config.json", "model.weights.h5"} <= names:
            return "keras"
    return None


def _load_native(name: str, data: Buffer, kind: str) -> tuple[Any, str, int, int]:
    if kind == "xgboost":
        xgb = _require("xgboost", "xgboost")
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        return booster, kind, 0, 0
    if kind == "lightgbm":
        lgb = _require("lightgbm", "lightgbm")
        return lgb.Booster(model_str=bytes(data).decode("utf-8")), kind, 0, 0
    return _load_keras(name, data)


def _load_keras(name: str, data: Buffer) -> tuple[Any, str, int, int]:
    """Keras v3 in safe mode (no Lambda deserialization). Keras reads only from a path, so the
    verified bytes go to a private temporary file (0600 in a fresh 0700 directory)."""
    import tempfile
    from importlib.util import find_spec

    if "KERAS_BACKEND" not in os.environ and find_spec("tensorflow") is None:
        os.environ["KERAS_BACKEND"] = "torch"  # the backend modelseal[keras] installs
    keras = _require("keras", "keras")
    with tempfile.TemporaryDirectory(prefix="modelseal-") as tmp:
        path = os.path.join(tmp, "model.keras")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except (ValueError, TypeError) as exc:
            raise UnsafeModelError(
                f"{name}: Keras refused the model in safe mode ({str(exc).splitlines()[0]})",
                reasons=[Reason("unsafe-content", f"{name}: rejected by Keras safe mode")],
                hint="the model uses code (e.g. Lambda layers) that safe mode does not load",
            ) from None
    return model, "keras", len(model.weights), int(model.count_params())


def _to_numpy(tensor: Any) -> Any:
    np = _require("numpy", "numpy")
    dtype = _NUMPY_DTYPES.get(tensor.dtype)
    if dtype is None:
        raise UsageError(
            f"tensor {tensor.name!r} has dtype {tensor.dtype}, which NumPy cannot hold",
            hint="load with tensor_type='torch'",
        )
    return np.frombuffer(tensor.data, dtype=dtype).reshape(tensor.shape)


def _to_torch(tensor: Any) -> Any:
    torch = _require("torch", "torch")
    dtype = getattr(torch, tensor.dtype)
    if not tensor.data or len(tensor.data) == 0:
        return torch.empty(tensor.shape, dtype=dtype)
    buffer = tensor.data
    if isinstance(buffer, bytes) or (isinstance(buffer, memoryview) and buffer.readonly):
        buffer = bytearray(buffer)  # torch tensors must own writable memory
    count = len(memoryview(buffer).cast("B")) // ITEMSIZE[tensor.dtype]
    return torch.frombuffer(buffer, dtype=dtype, count=count).reshape(tensor.shape)


def _load_numpy(data: Buffer, kind: str) -> tuple[Any, str, int, int]:
    np = _require("numpy", "numpy")
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise TensorFormatError(
            f"cannot load NumPy data: {exc}", hint="the file is damaged"
        ) from None
    if kind == "npy":
        return loaded, "numpy", 1, int(loaded.size)
    arrays = {key: loaded[key] for key in loaded.files}
    return arrays, "numpy", len(arrays), sum(int(a.size) for a in arrays.values())


def _load_onnx(name: str, data: Buffer) -> tuple[Any, str, int, int]:
    onnx = _require("onnx", "onnx")
    model = onnx.load_model_from_string(bytes(data))
    inits = list(model.graph.initializer)
    params = 0
    for init in inits:
        count = 1
        for dim in init.dims:
            count *= int(dim)
        params += count
    try:
        import onnxruntime
    except ImportError:
        return model, "onnx", len(inits), params
    session = onnxruntime.InferenceSession(bytes(data), providers=["CPUExecutionProvider"])
    return session, "onnx", len(inits), params


_COMPRESSED = (b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x5d\x00\x00", b"\x04\x22\x4d\x18")


def _load_pickle(name: str, data: Buffer, allow: tuple[str, ...]) -> tuple[Any, str, int, int]:
    if bytes(data[:6]).startswith(_COMPRESSED) or b"joblib.numpy_pickle" in data[:4096]:
        return _load_joblib(name, data, allow), "joblib", 0, 0
    from modelseal.loading.safe_pickle import safe_loads

    return safe_loads(bytes(data), allow=allow), "pickle", 0, 0


def _load_joblib(name: str, data: Buffer, allow: tuple[str, ...]) -> Any:
    """joblib's own unpickler (arrays stored inline), restricted to the allow-list; object
    arrays are refused because joblib reads them with an unrestricted ``pickle.load``."""
    import pickle

    _require("joblib", "sklearn")
    from joblib import numpy_pickle, numpy_pickle_utils

    from modelseal.errors import ForbiddenGlobalError
    from modelseal.scanning.allowlist import Allowlist

    allowlist = Allowlist().extended((*allow, "joblib.numpy_pickle.NumpyArrayWrapper"))

    class RestrictedJoblibUnpickler(numpy_pickle.NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, qualname: str) -> Any:
            if not allowlist.allows(module, qualname):
                raise ForbiddenGlobalError(module, qualname)
            return super().find_class(module, qualname)

        def refuse_object_arrays(self) -> None:
            state, inst = self.stack[-1], self.stack[-2]
            is_wrapper = isinstance(inst, numpy_pickle.NumpyArrayWrapper)
            if (
                is_wrapper
                and isinstance(state, dict)
                and getattr(state.get("dtype"), "hasobject", True)
            ):
                raise pickle.UnpicklingError("joblib object arrays hold nested pickles")
            numpy_pickle.NumpyUnpickler.load_build(self)

        # The pure-Python unpickler dispatches through a class-level table, not methods.
        dispatch: ClassVar[dict[int, Any]] = dict(numpy_pickle.NumpyUnpickler.dispatch)
        dispatch[pickle.BUILD[0]] = refuse_object_arrays

    fileobj: Any = io.BytesIO(bytes(data))
    compressor = numpy_pickle_utils._detect_compressor(fileobj)
    if compressor == "compat":
        raise TensorFormatError(
            f"{name}: joblib files older than 0.10 keep arrays in companion files",
            hint="re-save the model with a current joblib",
        )
    if compressor in numpy_pickle_utils._COMPRESSORS:
        wrapper = numpy_pickle_utils._COMPRESSORS[compressor]
        fileobj = numpy_pickle_utils._buffered_read_file(wrapper.decompressor_file(fileobj))
    try:
        return RestrictedJoblibUnpickler(name, fileobj, True).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise TensorFormatError(
            f"{name}: cannot load joblib data ({exc})", hint="the file is damaged"
        ) from None


class VerifiedModel:
    """A loaded model that keeps its signed manifest, for servers.

    :meth:`check` re-hashes the files on disk (never loading anything) and returns the reasons
    they differ from what was verified; :meth:`watch` does so on a timer and calls back on a
    swap. Use as a context manager to stop the timer.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        signature: PathLike | OmsBundle,
        public_key: PathLike | PublicKey | None = None,
        trust: Sequence[PathLike] | None = None,
        **options: Any,
    ) -> None:
        self.path = Path(path)
        self._bundle = signature if isinstance(signature, OmsBundle) else read_bundle(signature)
        self._signature_path = None if isinstance(signature, OmsBundle) else signature
        self._public_key = public_key
        self._trust = tuple(trust or ())
        self._keys = {k: options[k] for k in _KEY_OPTIONS if options.get(k) is not None}
        self.loaded = load_verified(
            path, signature=self._bundle, public_key=public_key, trust=self._trust, **options
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def model(self) -> Any:
        """The loaded object, as verified when this was opened (never reloaded)."""
        return self.loaded.obj

    def check(self) -> list[Reason]:
        """Reasons the files on disk no longer match the verified model (empty if they do)."""
        try:
            contents = None
            if "keyset" in self._keys or "key_provider" in self._keys:
                contents = _decrypt_in_memory(
                    self.path,
                    self._keys.get("keyset"),
                    self._keys.get("key_provider"),
                    self._keys.get("associated_data", b""),
                )
            verify_outcome(
                self.path,
                signature=self._bundle,
                public_key=self._public_key,
                trust_anchors=self._trust,
                reader="read",
                contents=contents,
            )
        except VerificationError as exc:
            return list(exc.reasons) or [Reason("changed", exc.message)]
        return []

    def watch(self, interval: float, on_change: Callable[[list[Reason]], None]) -> None:
        """Re-check every ``interval`` seconds in a daemon thread; call ``on_change`` on a swap."""
        if interval <= 0:
            raise UsageError("the watch interval must be positive", hint="e.g. 60 (seconds)")
        if self._thread is not None:
            raise UsageError("already watching", hint="call close() first")

        def loop() -> None:
            while not self._stop.wait(interval):
                reasons = self.check()
                if reasons:
                    on_change(reasons)

        self._thread = threading.Thread(target=loop, name="modelseal-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching; returns once the watcher thread has ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> VerifiedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
