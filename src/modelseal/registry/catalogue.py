"""Every operation the registry offers, found in the modules that define them.

The HTTP server builds its routes from this catalogue and the client its requests, so an
operation added to one of these modules is served and callable without touching either.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from modelseal.operation import Operation

# The modules that define operations, one per concern.
MODULES = (
    "modelseal.registry.versions",
    "modelseal.registry.uploads",
    "modelseal.registry.receive",
    "modelseal.registry.gc",
    "modelseal.registry.trusted_keys",
    "modelseal.registry.datakeys",
    "modelseal.registry.attestations",
    "modelseal.registry.audit_trail",
    "modelseal.access.principals",
)


@functools.cache
def operations() -> tuple[type[Operation[Any]], ...]:
    """Every operation class with a route, in module order, then by definition order."""
    found: list[type[Operation[Any]]] = []
    for name in MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Operation)
                and value.__module__ == name
                and "route" in vars(value)
            ):
                found.append(value)
    return tuple(found)


def by_name(name: str) -> type[Operation[Any]]:
    """The operation class called ``name`` (e.g. ``"SetAlias"``)."""
    for operation in operations():
        if operation.__name__ == name:
            return operation
    raise KeyError(name)
