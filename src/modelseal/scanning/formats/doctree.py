"""Bounded, iterative walks over parsed configuration documents (JSON and YAML trees).

Documents from hostile files may nest arbitrarily deep or share nodes (YAML aliases), so walks
never recurse and visit each container once; a document over the bounds is reported, not walked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MAX_NESTING = 256
MAX_NODES = 5_000_000


class TooDeep(Exception):
    """The document nests deeper than :data:`MAX_NESTING` levels."""


class TooLarge(Exception):
    """The document has more than :data:`MAX_NODES` containers."""


def iter_dicts(doc: Any) -> Iterator[dict[Any, Any]]:
    """Every mapping in ``doc`` once (depth first, document order); raises :class:`TooDeep`
    or :class:`TooLarge` when the document is over the bounds."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    seen: set[int] = set()
    count = 0
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)) or id(node) in seen:
            continue
        seen.add(id(node))
        count += 1
        if count > MAX_NODES:
            raise TooLarge(f"more than {MAX_NODES} mappings and lists")
        if depth > MAX_NESTING:
            raise TooDeep(f"nested deeper than {MAX_NESTING} levels")
        if isinstance(node, dict):
            yield node
            children = list(node.values())
        else:
            children = node
        stack.extend((child, depth + 1) for child in reversed(children))


def dotted(value: Any) -> tuple[str, str] | None:
    """``("a.b", "C")`` for a string ``"a.b.C"`` (also ``"a.b:C"``); None if not a dotted name."""
    if not isinstance(value, str) or not value or len(value) > 1000:
        return None
    text = value.strip().replace(":", ".")
    if "." not in text:
        return None
    module, _, name = text.rpartition(".")
    return module, name
