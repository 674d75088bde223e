"""A restricted unpickler: it resolves only allow-listed globals and calls nothing else.

It uses the same :class:`~modelseal.scanning.allowlist.Allowlist` as the scanner, so a gadget the
scanner does not know about still cannot run: anything not listed is refused before it is
imported. On top of the names, it checks what the names resolve to and what the pickle does
with them, so an allowed name cannot become a way to change the running process:

* a global never resolves to a module (``torch.nn.modules.linear.F`` is ``torch.nn.functional``);
  one allowed by a pattern or prefix must be a class defined under exactly that name;
* REDUCE, NEWOBJ, OBJ and INST call only objects that an allowed global named in this pickle
  (never a method, an instance or anything built along the way);
* BUILD sets state only on instances of allowed classes, never on a class, a module or a
  function (``__setstate__`` on a type would rebind attributes for the whole process);
* APPEND, SETITEM and ADDITEMS never target a class, a module or a function.

Every global goes through ``find_class`` (GLOBAL, STACK_GLOBAL, INST and extension codes
alike). The pure-Python unpickler is used because only it lets each opcode be checked.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickle
import types
from collections.abc import Callable, Iterable
from typing import IO, Any, ClassVar

from modelseal.errors import ForbiddenGlobalError, UnsafePickleError
from modelseal.scanning.allowlist import Allowlist

_Dispatch = dict[int, Callable[[Any], None]]
# Objects a pickle may never call, build or write into (they are process-wide state).
_NEVER_TARGET = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
)


# Allowed functions that call or instantiate one of their arguments: (argument positions).
_HIGHER_ORDER: dict[tuple[str, str], tuple[int, ...]] = {
    ("copyreg", "_reconstructor"): (0, 1),
    ("copyreg", "__newobj__"): (0,),
    ("copyreg", "__newobj_ex__"): (0,),
    ("torch._tensor", "_rebuild_from_type_v2"): (0, 1),
    ("numpy.core.multiarray", "_reconstruct"): (0,),
    ("numpy._core.multiarray", "_reconstruct"): (0,),
    ("numpy.ma.core", "_mareconstruct"): (0, 1),
    ("sklearn.neighbors._kd_tree", "newObj"): (0,),
    ("sklearn.neighbors._ball_tree", "newObj"): (0,),
    ("sklearn.metrics._dist_metrics", "newObj"): (0,),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"): (0,),
}


def _describe(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


class PickleGuard:
    """The checks shared by every restricted unpickler (mixed into a pure-Python unpickler).

    Subclasses set ``allowlist`` in ``__init__`` and take their ``dispatch`` table from
    :func:`guarded_dispatch`.
    """

    allowlist: Allowlist
    stack: list[Any]
    metastack: list[list[Any]]

    def _granted_store(self) -> dict[int, Any]:
        granted: dict[int, Any] | None = self.__dict__.get("_granted")
        if granted is None:
            granted = {}
            self.__dict__["_granted"] = granted
        return granted

    def find_class(self, module: str, name: str) -> Any:
        """Resolve a global only if the allow-list allows it (after Python 2 name mapping).

        Anything else raises :class:`ForbiddenGlobalError` before anything is imported; an
        allowed name that resolves to a module, or (allowed by pattern) to anything but a class
        defined under that name, raises :class:`UnsafePickleError`.
        """
        # Overriding find_class bypasses the Python 2 name mapping, so apply it here first.
        mapped = _compat_pickle.NAME_MAPPING.get((module, name))
        if mapped is None and module in _compat_pickle.IMPORT_MAPPING:
            mapped = (_compat_pickle.IMPORT_MAPPING[module], name)
        module, name = mapped or (module, name)
        kind = self.allowlist.match(module, name)
        if kind is None:
            raise ForbiddenGlobalError(module, name)
        try:
            obj: Any = importlib.import_module(module)
            for part in name.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise pickle.UnpicklingError(f"cannot resolve {module}.{name}: {exc}") from None
        if isinstance(obj, types.ModuleType):
            raise UnsafePickleError(
                f"refused pickle global {module}.{name}: it is a module, not a class or function",
                hint="a pickle that reaches a module can change it for the whole process",
            )
        if kind == "class" and not (
            isinstance(obj, type)
            and getattr(obj, "__module__", None) == module
            and getattr(obj, "__qualname__", None) == name
        ):
            raise UnsafePickleError(
                f"refused pickle global {module}.{name}: a pattern allows only classes "
                f"defined under that name, and it is {_describe(obj)}",
                hint="list a function by its exact name if you trust it",
            )
        arguments = _HIGHER_ORDER.get((module, name))
        if arguments is not None:
            obj = self._checked_higher_order(obj, arguments, f"{module}.{name}")
        self._granted_store()[id(obj)] = obj
        return obj

    def _checked_higher_order(self, func: Any, arguments: tuple[int, ...], what: str) -> Any:
        """``func`` whose class/function arguments at ``arguments`` must be granted too."""

        def checked(*args: Any, **kwargs: Any) -> Any:
            for index in arguments:
                if index < len(args):
                    self._check_callable(args[index], f"call of {what}")
            return func(*args, **kwargs)

        return checked

    # ---- per-opcode checks ------------------------------------------------------------------

    def _check_callable(self, func: Any, opcode: str) -> None:
        if self._granted_store().get(id(func)) is not func:
            raise UnsafePickleError(
                f"refused pickle {opcode}: it calls {_describe(func)}, which no allowed global "
                "named",
                hint="the pickle calls something outside the allow-list; do not load it",
            )

    def _check_class(self, cls: Any, opcode: str) -> None:
        self._check_callable(cls, opcode)
        if not isinstance(cls, type):
            raise UnsafePickleError(
                f"refused pickle {opcode}: {_describe(cls)} is not a class",
                hint="the pickle is malformed or malicious; do not load it",
            )

    def _check_build(self, inst: Any) -> None:
        granted = self._granted_store()
        kind = type(inst)
        allowed = granted.get(id(kind)) is kind or (
            self.allowlist.match(kind.__module__, kind.__qualname__) is not None
        )
        # A granted object is shared by the whole process (torch.float32, a singleton).
        if isinstance(inst, _NEVER_TARGET) or not allowed or granted.get(id(inst)) is inst:
            raise UnsafePickleError(
                f"refused pickle BUILD on {_describe(inst)}: state may be set only on instances "
                "of allowed classes",
                hint="the pickle tries to change an object it may not; do not load it",
            )

    def _check_target(self, target: Any, opcode: str) -> None:
        if isinstance(target, _NEVER_TARGET) or self._granted_store().get(id(target)) is target:
            raise UnsafePickleError(
                f"refused pickle {opcode} into {_describe(target)}",
                hint="the pickle tries to change an object it may not; do not load it",
            )


def guarded_dispatch(base: _Dispatch) -> _Dispatch:
    """``base`` (a pure-Python unpickler's opcode table) with every call and write checked."""
    table = dict(base)

    def wrap(opcode: bytes, check: Callable[[Any], None]) -> None:
        original = base[opcode[0]]

        def run(self: Any) -> None:
            check(self)
            original(self)

        table[opcode[0]] = run

    def stack_item(index: int, what: str, method: str) -> Callable[[Any], None]:
        def check(self: Any) -> None:
            if len(self.stack) >= -index:
                getattr(self, method)(self.stack[index], what)

        return check

    def obj(self: Any) -> None:
        if self.stack:
            self._check_callable(self.stack[0], "OBJ")

    def build(self: Any) -> None:
        if len(self.stack) >= 2:
            self._check_build(self.stack[-2])

    def before_mark(what: str) -> Callable[[Any], None]:
        def check(self: Any) -> None:
            if self.metastack and self.metastack[-1]:
                self._check_target(self.metastack[-1][-1], what)

        return check

    wrap(pickle.REDUCE, stack_item(-2, "REDUCE", "_check_callable"))
    wrap(pickle.NEWOBJ, stack_item(-2, "NEWOBJ", "_check_class"))
    wrap(pickle.NEWOBJ_EX, stack_item(-3, "NEWOBJ_EX", "_check_class"))
    wrap(pickle.OBJ, obj)
    wrap(pickle.BUILD, build)
    wrap(pickle.APPEND, stack_item(-2, "APPEND", "_check_target"))
    wrap(pickle.SETITEM, stack_item(-3, "SETITEM", "_check_target"))
    wrap(pickle.APPENDS, before_mark("APPENDS"))
    wrap(pickle.SETITEMS, before_mark("SETITEMS"))
    wrap(pickle.ADDITEMS, before_mark("ADDITEMS"))
    return table


class RestrictedUnpickler(PickleGuard, pickle._Unpickler):
    """An unpickler that imports only allow-listed globals and calls nothing else.

    See the module docstring for every check. Refusals raise :class:`ForbiddenGlobalError`
    (an unlisted global) or :class:`UnsafePickleError` (an operation outside the allow-list),
    both exit 1; a malformed pickle raises ``pickle.UnpicklingError``.
    """

    dispatch: ClassVar[_Dispatch] = guarded_dispatch(pickle._Unpickler.dispatch)

    def __init__(
        self,
        file: IO[bytes],
        *,
        allowlist: Allowlist | None = None,
        persistent_load: Callable[[Any], Any] | None = None,
        encoding: str = "ASCII",
    ) -> None:
        super().__init__(file, encoding=encoding, fix_imports=True)
        self.allowlist = allowlist or Allowlist()
        self._persistent = persistent_load

    def persistent_load(self, pid: Any) -> Any:
        """Resolve a persistent id with the ``persistent_load`` given, or refuse it."""
        if self._persistent is None:
            raise pickle.UnpicklingError("persistent ids are not supported by this loader")
        return self._persistent(pid)


def safe_load(
    file: IO[bytes],
    *,
    allow: Iterable[str] = (),
    allowlist: Allowlist | None = None,
    encoding: str = "ASCII",
) -> Any:
    """Unpickle one object from ``file`` through :class:`RestrictedUnpickler`.

    ``allow`` extends ``allowlist`` (default: the built-in list). Raises
    :class:`ForbiddenGlobalError` or :class:`UnsafePickleError` on anything outside it.
    """
    base = (allowlist or Allowlist()).extended(allow)
    return RestrictedUnpickler(file, allowlist=base, encoding=encoding).load()


def safe_loads(
    data: bytes,
    *,
    allow: Iterable[str] = (),
    allowlist: Allowlist | None = None,
    encoding: str = "ASCII",
) -> Any:
    """Like :func:`safe_load` for bytes in memory."""
    return safe_load(io.BytesIO(data), allow=allow, allowlist=allowlist, encoding=encoding)
