"""A restricted unpickler that resolves only allow-listed globals.

It uses the same :class:`~modelseal.scanning.allowlist.Allowlist` as the scanner, so a gadget the
scanner does not know about still cannot run: anything not listed is refused before it is
imported. Every global goes through ``find_class`` in CPython's unpickler (GLOBAL, STACK_GLOBAL,
INST and extension codes alike).
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from collections.abc import Callable, Iterable
from typing import IO, Any

from modelseal.errors import ForbiddenGlobalError
from modelseal.scanning.allowlist import Allowlist


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` refuses globals outside ``allowlist``."""

    def __init__(
        self,
        file: IO[bytes],
        *,
        allowlist: Allowlist | None = None,
        persistent_load: Callable[[Any], Any] | None = None,
        encoding: str = "ASCII",
    ) -> None:
        super().__init__(file, encoding=encoding, fix_imports=True)
        self._allowlist = allowlist or Allowlist()
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        """Resolve a global only if the allowlist allows it (after Python 2 name mapping).

        Anything else raises :class:`ForbiddenGlobalError`; nothing is imported for a refused name.
        """
        # Overriding find_class bypasses the Python 2 name mapping, so apply it here first.
        mapped = _compat_pickle.NAME_MAPPING.get((module, name))
        if mapped is None and module in _compat_pickle.IMPORT_MAPPING:
            mapped = (_compat_pickle.IMPORT_MAPPING[module], name)
        module, name = mapped or (module, name)
        if not self._allowlist.allows(module, name):
            raise ForbiddenGlobalError(module, name)
        return super().find_class(module, name)

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
    """Unpickle one object from ``file``; raises ForbiddenGlobalError for any unlisted global."""
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
