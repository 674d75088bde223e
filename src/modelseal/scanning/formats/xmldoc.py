"""XML documents (OpenVINO IR, PMML, any XML next to a model): entity declarations are read
from the DTD and weighed without expanding anything.

* Entities that expand exponentially (billion laughs) or refer to themselves are a bomb.
* External entities (``SYSTEM``/``PUBLIC``) make a parser read local files or fetch URLs (XXE).
"""

from __future__ import annotations

import re

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.report import Location, Severity

MAX_ENTITIES = 10_000
MAX_ENTITY_SIZE = 1 << 20  # characters one entity may expand to
MAX_DOCUMENT = 64 << 20  # characters all references in the document may expand to

_DECL = re.compile(
    r"<!ENTITY\s+(%\s+)?([^\s\"'>%]+)\s+"
    r"(?:\"([^\"]*)\"|'([^']*)'|((?:SYSTEM|PUBLIC)\b[^>]*))\s*>",
    re.DOTALL,
)
_OPEN = re.compile(r"<!ENTITY\b")
_REF = re.compile(r"[&%]([A-Za-z_:][\w.:-]*);")
_BUILTIN = {"lt": 1, "gt": 1, "amp": 1, "apos": 1, "quot": 1}


def scan_xml(ctx: Context, text: str, location: Location) -> None:
    """Report entity bombs and external entities in ``text`` (an XML document)."""
    ctx.saw("xml")
    opens = len(_OPEN.findall(text))
    if not opens:
        return
    decls = list(_DECL.finditer(text))
    if len(decls) != opens:
        ctx.fail(location, "XML entity declarations that cannot be analysed")
    if len(decls) > MAX_ENTITIES:
        _bomb(ctx, location, f"{len(decls)} entity declarations", "too many entities")
        return
    values: dict[str, str] = {}
    for m in decls:
        name = ("%" if m.group(1) else "&") + m.group(2)
        external = m.group(5)
        if external is not None:
            ctx.find(
                rules.XML_EXTERNAL_ENTITY,
                Severity.HIGH,
                location.at(m.start()),
                f"{name}: {external.strip()[:120]}",
                "external XML entity: parsers that resolve it read a local file or fetch a "
                "URL (XXE)",
            )
            values.setdefault(name, "")
            continue
        values.setdefault(name, m.group(3) if m.group(3) is not None else m.group(4) or "")
    sizes: dict[str, int] = {}
    for name in values:
        size = _size(name, values, sizes, set())
        if size is None:
            _bomb(ctx, location, name, "entity refers to itself")
            return
        if size > MAX_ENTITY_SIZE:
            _bomb(ctx, location, f"{name} ({size} characters)", "entity expands exponentially")
            return
    end = decls[-1].end() if decls else 0
    total = 0
    for m in _REF.finditer(text, end):
        total += sizes.get("&" + m.group(1), 0)
        if total > MAX_DOCUMENT:
            _bomb(ctx, location, f"{total} characters", "entity references expand too far")
            return


def _size(name: str, values: dict[str, str], sizes: dict[str, int], path: set[str]) -> int | None:
    """Characters ``name`` expands to; None on a reference cycle. Iterative over references
    in one value, recursive along a chain of distinct entities (bounded by their number)."""
    if name in sizes:
        return sizes[name]
    if name in path:
        return None
    if len(path) > 256:  # a chain of hundreds of entities is a bomb in itself
        return 1 << 62
    value = values.get(name)
    if value is None:
        return _BUILTIN.get(name[1:], len(name) + 1)
    path.add(name)
    total = len(_REF.sub("", value))
    for m in _REF.finditer(value):
        kind = "%" if m.group(0).startswith("%") else "&"
        sub = _size(kind + m.group(1), values, sizes, path)
        if sub is None:
            return None
        total = min(total + sub, 1 << 62)
    path.discard(name)
    sizes[name] = total
    return total


def _bomb(ctx: Context, location: Location, subject: str, why: str) -> None:
    ctx.find(
        rules.XML_ENTITY_EXPANSION,
        Severity.HIGH,
        location,
        subject,
        f"XML entity expansion bomb (billion laughs): {why}; parsers that expand entities "
        "exhaust memory and time",
    )
