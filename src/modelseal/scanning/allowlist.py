"""The allow-list that decides which pickle globals may be imported, and its config file.

A global is safe only if it is listed here (or added by the user). Everything else is a finding;
:mod:`modelseal.scanning.severity` only ranks how bad it is.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from collections.abc import Iterable
from typing import Literal

from modelseal.errors import AllowlistError
from modelseal.scanning.allowlist_frameworks import FRAMEWORK_GLOBALS

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_RE = re.compile(rf"{_IDENT}(\.{_IDENT})*\Z")
_CLASS_RE = re.compile(r"[A-Z][A-Za-z0-9_]*\Z")

_TORCH_DTYPES = [
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "complex32",
    "complex64",
    "complex128",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "bool",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "half",
    "float",
    "double",
    "cfloat",
    "cdouble",
    "long",
    "int",
    "short",
    "contiguous_format",
    "channels_last",
    "channels_last_3d",
    "preserve_format",
    "strided",
    "sparse_coo",
    "sparse_csr",
    "sparse_csc",
    "sparse_bsr",
    "sparse_bsc",
    "_mkldnn",
    "per_tensor_affine",
    "per_channel_affine",
    "per_tensor_symmetric",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
    "Size",
    "device",
    "dtype",
    "layout",
    "memory_format",
    "qscheme",
    "Tensor",
]
_TORCH_STORAGES = [
    "FloatStorage",
    "DoubleStorage",
    "HalfStorage",
    "BFloat16Storage",
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "ByteStorage",
    "CharStorage",
    "ShortStorage",
    "IntStorage",
    "LongStorage",
    "BoolStorage",
    "QInt8Storage",
    "QUInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
]

# Globals that only build plain data when unpickled by a real loader.
DEFAULT_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [
        *(
            ("builtins", n)
            for n in [
                "set",
                "frozenset",
                "dict",
                "list",
                "tuple",
                "int",
                "float",
                "complex",
                "bool",
                "str",
                "bytes",
                "bytearray",
                "slice",
                "range",
                "object",
                "NoneType",
                "Ellipsis",
                "NotImplemented",
            ]
        ),
        *(("collections", n) for n in ("OrderedDict", "defaultdict", "deque", "Counter")),
        ("copyreg", "_reconstructor"),
        ("copyreg", "__newobj__"),
        ("_codecs", "encode"),
        *(("datetime", n) for n in ("date", "datetime", "time", "timedelta", "timezone")),
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("uuid", "UUID"),
        ("argparse", "Namespace"),
        *(
            (m, n)
            for m in ("numpy.core.multiarray", "numpy._core.multiarray")
            for n in ("_reconstruct", "scalar")
        ),
        *((m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.ma.core", "_mareconstruct"),
        ("numpy.ma.core", "MaskedArray"),
        *(
            ("numpy.random._pickle", n)
            for n in ("__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor")
        ),
        *(
            ("numpy.random._mt19937", "MT19937"),
            ("numpy.random._pcg64", "PCG64"),
            ("numpy.random.mtrand", "RandomState"),
            ("numpy.random._generator", "Generator"),
        ),
        *(("torch", n) for n in (*_TORCH_DTYPES, *_TORCH_STORAGES)),
        *(
            ("torch._utils", n)
            for n in (
                "_rebuild_tensor",
                "_rebuild_tensor_v2",
                "_rebuild_tensor_v3",
                "_rebuild_parameter",
                "_rebuild_parameter_with_state",
                "_rebuild_sparse_tensor",
                "_rebuild_qtensor",
                "_rebuild_meta_tensor_no_storage",
                "_rebuild_wrapper_subclass",
                "_rebuild_device_tensor_from_numpy",
                "_rebuild_nested_tensor",
            )
        ),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.storage", "UntypedStorage"),
        ("torch.storage", "TypedStorage"),
        ("torch.nn.parameter", "Parameter"),
        ("torch.serialization", "_get_layout"),
        ("torch.torch_version", "TorchVersion"),
        *(
            ("torch.jit._pickle", n)
            for n in (
                "build_intlist",
                "build_tensorlist",
                "build_doublelist",
                "build_boollist",
                "build_tensor_from_id",
                "restore_type_tag",
            )
        ),
        # Not the pre-0.10 NDArrayWrapper/ZNDArrayWrapper: they open a file named in the pickle.
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        # scikit-learn, XGBoost, LightGBM and NumPy classes their own pickles name.
        *FRAMEWORK_GLOBALS,
    ]
)

# Module prefixes whose plain class names (never functions, never dotted) are safe to rebuild.
DEFAULT_CLASS_PREFIXES: tuple[str, ...] = ("torch.nn.modules.", "numpy.dtypes")
# Namespaces that only TorchScript's C++ unpickler resolves (to compiled TorchScript classes);
# Python cannot import them, so any plain name there is safe.
DEFAULT_MODULE_PREFIXES: tuple[str, ...] = ("__torch__",)


_GLOB_CHARS = frozenset("*?[")
_PATTERN_RE = re.compile(r"[A-Za-z0-9_.*?\[\]!-]+\Z")

Match = Literal["exact", "class"]
"""How a global is allowed: ``exact`` (listed by name: any object but a module) or ``class``
(through a pattern or a prefix: only a class defined under exactly that name)."""


def _split(entry: str) -> tuple[str, str]:
    """``module:qualname`` or ``module.name`` (last dot splits); ``module:*`` is one module."""
    entry = entry.strip()
    if ":" in entry:
        module, _, name = entry.partition(":")
    else:
        module, _, name = entry.rpartition(".")
    if not module or not name or not _MODULE_RE.match(module):
        raise AllowlistError(
            f"allow-list entry {entry!r} is not 'module.name', 'module:qualname' or a pattern "
            "such as 'sklearn.*'",
            hint="write entries like 'sklearn.linear_model._logistic.LogisticRegression'",
        )
    if name != "*" and not _MODULE_RE.match(name):
        raise AllowlistError(
            f"allow-list entry {entry!r} has an invalid name",
            hint="names are Python identifiers joined by dots",
        )
    return module, name


def _pattern(entry: str) -> str | None:
    """A glob over the full dotted name (``sklearn.*``, ``mypkg.models.*Net``), or None."""
    entry = entry.strip()
    if ":" in entry or not _GLOB_CHARS & set(entry):
        return None
    head = entry.split(".", 1)[0]
    if not _PATTERN_RE.match(entry) or not head or _GLOB_CHARS & set(head):
        raise AllowlistError(
            f"allow-list pattern {entry!r} must start with a package name",
            hint="e.g. 'sklearn.*' or 'mypkg.models.*'",
        )
    return entry


def _is_plain(name: str) -> bool:
    """A class-like name: one identifier, no dunder (``__reduce__``, ``__builtins__``...)."""
    return "." not in name and "__" not in name and bool(_MODULE_RE.match(name))


@dataclasses.dataclass(frozen=True)
class Allowlist:
    """Globals that may be imported: exact ``(module, qualname)`` pairs plus patterns.

    ``modules`` entries (``module:*``) allow every class in exactly that module; ``patterns``
    (``sklearn.*``, ``sklearn.linear_model.*``, ``mypkg.models.*Net``) are shell globs over the
    full dotted name, ``*`` crossing dots, so ``sklearn.*`` covers every submodule. A name
    allowed only through a module, a pattern or a prefix must be a plain name (no dots, no
    dunders), and the restricted unpickler accepts it only if it is a class defined under that
    very name (:meth:`match` says ``"class"``): never a module, a function or a re-export.
    Functions must be listed by their exact name.
    """

    globals: frozenset[tuple[str, str]] = DEFAULT_GLOBALS
    modules: frozenset[str] = frozenset()
    class_prefixes: tuple[str, ...] = DEFAULT_CLASS_PREFIXES
    module_prefixes: tuple[str, ...] = DEFAULT_MODULE_PREFIXES
    patterns: frozenset[str] = frozenset()

    def match(self, module: str, name: str) -> Match | None:
        """``"exact"``, ``"class"`` (see the class docstring) or None if not allowed."""
        if (module, name) in self.globals:
            return "exact"
        if not _is_plain(name) or not _MODULE_RE.match(module):
            return None
        if module in self.modules or any(
            module == p or module.startswith(p + ".") for p in self.module_prefixes
        ):
            return "class"
        if self.patterns:
            full = f"{module}.{name}"
            if any(fnmatch.fnmatchcase(full, p) for p in self.patterns):
                return "class"
        if _CLASS_RE.match(name) and any(
            module == p.rstrip(".") or module.startswith(p) for p in self.class_prefixes
        ):
            return "class"
        return None

    def allows(self, module: str, name: str) -> bool:
        """Whether the global ``module.name`` may be imported at all."""
        return self.match(module, name) is not None

    def extended(self, entries: Iterable[str]) -> Allowlist:
        """A copy that also allows ``entries`` (``module.name``, ``module:qualname``,
        ``module:*``, or a glob such as ``sklearn.*``)."""
        exact = set(self.globals)
        modules = set(self.modules)
        patterns = set(self.patterns)
        for entry in entries:
            pattern = _pattern(entry)
            if pattern is not None:
                patterns.add(pattern)
                continue
            module, name = _split(entry)
            if name == "*":
                modules.add(module)
            else:
                exact.add((module, name))
        return dataclasses.replace(
            self,
            globals=frozenset(exact),
            modules=frozenset(modules),
            patterns=frozenset(patterns),
        )

    @classmethod
    def default(cls) -> Allowlist:
        """The built-in allow-list (plain data, NumPy, PyTorch, scikit-learn, XGBoost, LightGBM)."""
        return cls()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, base: Allowlist | None = None) -> Allowlist:
        """Load ``[scan] allow = [...]`` from a TOML file on top of ``base`` (default list)."""
        import tomllib

        base = base or cls()
        try:
            from modelseal.fsinput import read_regular

            data = tomllib.loads(
                read_regular(path, 16 << 20).decode("utf-8")
            )  # never waits on a FIFO
        except OSError as exc:
            raise AllowlistError(
                f"cannot read allow-list config {str(path)!r}: {exc.strerror}",
                hint="check the path given to --allow-config",
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise AllowlistError(
                f"allow-list config {str(path)!r} is not valid TOML: {exc}",
                hint="see docs/scan.md for the format",
            ) from None
        section = data.get("scan", {})
        entries = section.get("allow", []) if isinstance(section, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise AllowlistError(
                f"allow-list config {str(path)!r} needs [scan] allow = [strings]",
                hint="see docs/scan.md for the format",
            )
        return base.extended(entries)
