"""The symbolic values the unpickler model pushes, its resource limits and its errors."""

from __future__ import annotations

import dataclasses
from typing import Any

HIGHEST_PROTOCOL = 5
MAX_TEXT = 1 << 16  # longest str/bytes value kept; longer ones become Opaque
MAX_LINE = 1 << 20  # longest text-opcode line kept
MAX_ITEMS = 256  # container items remembered (enough for dtype/shape descriptions)
MAX_NESTED = 1 << 24  # bytes handed to a nested loader that we scan as a pickle
ALLOC_CHECK = 1 << 16  # bytes of pickle between two checks of the memory estimate
# No pickler writes containers nested deeper than Python's recursion limit; code that walks
# them (repr, copy, ==, json, the model's own loader) overflows its stack.
MAX_DEPTH = 1000
# Containers reached when shared references are expanded (memo GETs): billion laughs.
MAX_EXPANDED = 1 << 32


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds that turn expansion and exhaustion attacks into findings instead of hangs."""

    max_memo: int = 1 << 23
    max_stack: int = 1 << 24
    max_marks: int = 1 << 20
    max_memo_index: int = 1 << 26
    max_pickles: int = 100_000
    max_nesting: int = 4
    # An expansion bomb: loading needs more than max_alloc bytes *and* more than
    # max_alloc_ratio times the pickle's size (plain data stays well under 32x).
    max_alloc: int = 64 << 20
    max_alloc_ratio: int = 40


class Number:
    """An int outside 0..255 pushed inside a long run of number opcodes (its value not kept).

    The quick pass pushes it for runs of BININT2/BININT that hold no byte value; everything that
    could tell it from such an int treats it as one (a non-byte ``int``).
    """

    __slots__ = ()


NUMBER = Number()


class GlobalRef:
    """What GLOBAL/STACK_GLOBAL/INST would import (``allowed``: the allow-list admits it)."""

    __slots__ = ("allowed", "module", "name")

    def __init__(self, module: str, name: str, allowed: bool) -> None:
        self.module = module
        self.name = name
        self.allowed = allowed

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


class Made:
    """The result of calling something (REDUCE, NEWOBJ, OBJ, INST); ``state`` is set by BUILD."""

    __slots__ = ("args", "func", "state")

    def __init__(self, func: Any, args: Any) -> None:
        self.func = func
        self.args = args
        self.state: Any = None


_NO_ITEMS: Any = ()


class Seq:
    """A list/tuple/set/frozenset/dict/bytearray; only the first few items are remembered."""

    __slots__ = ("depth", "expanded", "items", "kind", "n")

    def __init__(self, kind: str, items: list[Any] | None = None) -> None:
        self.kind = kind
        # Empty containers share one empty tuple: a list bomb must not cost the scanner a list
        # per item.
        self.items: list[Any] = items[:MAX_ITEMS] if items else _NO_ITEMS
        self.n = len(items) if items else 0
        self.depth = 0  # containers nested below this one
        self.expanded = 1  # containers in it with shared references counted each time
        if items:
            self.absorb(items)

    def absorb(self, items: list[Any]) -> None:
        """Account for the containers among ``items`` (flat, or a dict's [key, value] pairs);
        raise LimitExceeded past MAX_DEPTH or MAX_EXPANDED."""
        kinds = set(map(type, items))
        if Seq not in kinds and list not in kinds:
            return
        for item in items:
            if type(item) is list:
                self.absorb(item)
            elif type(item) is Seq and item is not self:  # a list holding itself is a cycle
                if item.depth >= self.depth:
                    self.depth = item.depth + 1
                self.expanded += item.expanded
        if self.depth > MAX_DEPTH:
            raise LimitExceeded(f"containers nested more than {MAX_DEPTH} deep: a recursion bomb")
        if self.expanded > MAX_EXPANDED:
            raise LimitExceeded(
                f"shared references expand to more than {MAX_EXPANDED} containers: "
                "a billion-laughs bomb"
            )

    def extend(self, items: list[Any]) -> None:
        """Count ``items`` in, remembering them while there is room."""
        self.absorb(items)
        room = MAX_ITEMS - len(self.items)
        if room > 0 and items:
            if self.items:
                self.items.extend(items[:room])
            else:
                self.items = items[:room]
        self.n += len(items)

    def get(self, key: Any) -> Any:
        """Value for a str key of a dict (kept as [k, v] pairs), or None."""
        for pair in self.items:
            if isinstance(pair, list) and len(pair) == 2 and pair[0] == key:
                return pair[1]
        return None


class Opaque:
    """A value we do not track (huge strings, buffers, unknown extension objects)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


class PickleError(Exception):
    """The real unpickler would stop here (internal to the scanner)."""


class Truncated(PickleError):
    """The stream ended inside an opcode."""


class LimitExceeded(PickleError):
    """A resource bound was hit."""


def unhashable(value: Any, depth: int = 0) -> bool:
    """True when the real unpickler's value would be unhashable (a dict key or set item fails)."""
    if isinstance(value, Seq):
        if value.kind in ("list", "dict", "set", "bytearray"):
            return True
        return depth < 8 and any(unhashable(v, depth + 1) for v in value.items)
    return False


def dotted(text: str) -> bool:
    """True for names the import system could resolve (identifiers joined by dots)."""
    return all(part.isidentifier() for part in text.split("."))
