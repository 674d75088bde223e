"""YAML documents, read as parser events only: no constructor ever runs, so no tag is acted on.

* ``!!python/...`` tags (``tag:yaml.org,2002:python/object/apply:...`` and friends, through any
  ``%TAG`` handle or URI escape: the parser resolves them) make ``yaml.load`` with the unsafe,
  full or default loaders import and call Python (CVE-2017-18342, CVE-2020-1747, CVE-2020-14343).
* Anchors and aliases are weighed as the tree a loader that copies them (OmegaConf, Hydra, a
  JSON dump) would build: exponential "billion laughs" expansion is a finding.
* The event stream is also built into a plain tree (aliases shared, never copied) for the
  Hydra ``_target_`` check.
"""

from __future__ import annotations

import re
from typing import Any

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.formats.doctree import (
    MAX_NESTING,
    TooDeep,
    TooLarge,
    iter_dicts,
)
from modelseal.scanning.formats.hfconfig import scan_hf_doc
from modelseal.scanning.formats.hydra import scan_hydra_dicts
from modelseal.scanning.formats.keras import scan_keras_doc
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.severity import rank_global

PYTHON_TAG = "tag:yaml.org,2002:python/"
CVES = "CVE-2017-18342, CVE-2020-1747, CVE-2020-14343"
MAX_EVENTS = 5_000_000
MAX_EXPANDED = 1_000_000  # nodes a copying loader would build
MAX_RATIO = 100
MAX_PURE_PYTHON = 4 << 20  # PyYAML's own parser (about 1 MB/s) retries only streams this small
# Tags PyYAML's non-safe loaders turn into plain values (yaml.dump writes python/tuple).
_PLAIN_PYTHON = frozenset(
    {
        "none",
        "bool",
        "str",
        "unicode",
        "bytes",
        "int",
        "long",
        "float",
        "complex",
        "list",
        "tuple",
        "dict",
    }
)
_HOOKS_TEXT = re.compile(rb"![!<A-Za-z]|_target_|auto_map|trust_remote_code")
_CALLS = ("object/apply:", "object/new:")
_TAG_TEXT = re.compile(
    r"(!!python/|tag:yaml\.org,2002:python/|%TAG\b|![\w-]*![^\s]*%[0-9A-Fa-f]{2}|!<[^>]*%)",
    re.IGNORECASE,
)


def scan_yaml(ctx: Context, data: bytes, location: Location) -> bool | None:
    """Scan ``data`` as a YAML stream: True when it holds mappings or sequences (a config),
    None when it is only scalars (any text is), False when it is not YAML (nothing was recorded
    then, except findings from a python tag the parser reached or the text shows)."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency of the scanner
        if _TAG_TEXT.search(data.decode("utf-8", "replace")):
            ctx.fail(location, "YAML with tags cannot be scanned without the 'pyyaml' package")
        return False
    # libyaml first (fast); the pure-Python parser (what yaml.Loader uses) when libyaml refuses.
    loaders = [getattr(yaml, "CSafeLoader", None)]
    if len(data) <= MAX_PURE_PYTHON or loaders[0] is None:
        loaders.append(yaml.SafeLoader)
    error: Exception | None = None
    for loader in [x for x in loaders if x is not None]:
        probe = Context(ctx.options, ctx.path)
        walk = _Walk(probe, location)
        try:
            for event in yaml.parse(data, Loader=loader):
                walk.event(event)
        except (yaml.YAMLError, UnicodeError, ValueError) as exc:
            error = exc
            continue
        except _Over as exc:
            ctx.find(
                rules.CONFIG_NESTING, Severity.MEDIUM, location, "size", f"YAML stream is {exc}"
            )
            ctx.fail(location, f"YAML stream is {exc}")
            return True
        walk.finish()
        ctx.findings.extend(probe.findings)
        ctx.unscannable.extend(probe.unscannable)
        return True if any(isinstance(d, (dict, list)) for d in walk.docs) else None
    # Not YAML to any parser: a loader fails too, after acting on the documents before the
    # error (load_all). Python tags seen by the parser or visible in the text still count.
    ctx.findings.extend(probe.findings)
    if not walk.tagged:
        walk.ctx = ctx
        walk.raw_tags(data)
    if walk.tagged:
        reason = " ".join(str(error).split())  # PyYAML's messages span lines
        ctx.fail(location, f"YAML stream breaks after a python tag: {reason}")
    elif len(loaders) == 1 and _HOOKS_TEXT.search(data):
        # Too large for PyYAML's own parser, which may accept what libyaml refused.
        ctx.fail(location, "YAML stream with tags or targets that libyaml cannot parse")
    return False


class _Over(Exception):
    pass


class _Walk:
    """Turn parser events into findings, alias weights and a plain tree."""

    def __init__(self, ctx: Context, location: Location) -> None:
        self.ctx = ctx
        self.loc = location
        self.events = 0
        self.tagged = False
        self.weights: dict[str, int] = {}
        self.nodes: dict[str, Any] = {}
        # frames: [container, weight, pending key, anchor, is_mapping, key_set]
        self.stack: list[list[Any]] = []
        self.docs: list[Any] = []
        self.total = 0

    def event(self, event: Any) -> None:
        import yaml

        self.events += 1
        if self.events > MAX_EVENTS:
            raise _Over(f"longer than {MAX_EVENTS} parser events")
        tag = getattr(event, "tag", None)
        if isinstance(tag, str) and tag.startswith(PYTHON_TAG):
            self._python_tag(tag[len(PYTHON_TAG) :], event)
        if isinstance(event, yaml.ScalarEvent):
            value: Any = event.value
            if event.implicit[0] and event.tag is None:  # plain scalar: booleans and null
                value = _PLAIN.get(value, value)
            self._value(value, 1, event.anchor)
        elif isinstance(event, yaml.AliasEvent):
            anchor = event.anchor or ""
            self._value(self.nodes.get(anchor), self.weights.get(anchor, 1), None)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            mapping = isinstance(event, yaml.MappingStartEvent)
            container: Any = {} if mapping else []
            if len(self.stack) >= MAX_NESTING:  # parsers slow down with depth: stop early
                raise _Over(f"nested deeper than {MAX_NESTING} levels")
            self.stack.append([container, 1, _NO_KEY, event.anchor, mapping])
            if event.anchor:
                self.nodes[event.anchor] = container
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            container, weight, _, anchor, _ = self.stack.pop()
            self._value(container, weight, anchor, opened=True)

    def _value(self, value: Any, weight: int, anchor: str | None, opened: bool = False) -> None:
        weight = min(weight, 1 << 62)
        if anchor:
            self.weights[anchor] = weight
            if not opened:
                self.nodes[anchor] = value
        if not self.stack:
            self.docs.append(value)
            self.total = min(self.total + weight, 1 << 62)
            return
        frame = self.stack[-1]
        frame[1] = min(frame[1] + weight, 1 << 62)
        if frame[4]:
            if frame[2] is _NO_KEY:
                frame[2] = value if isinstance(value, str) else f"<key {id(value)}>"
            else:
                frame[0][frame[2]] = value
                frame[2] = _NO_KEY
        else:
            frame[0].append(value)

    def _python_tag(self, suffix: str, event: Any) -> None:
        self.tagged = True
        kind, _, target = suffix.partition(":")
        if kind in _PLAIN_PYTHON:
            return
        module, _, name = target.rpartition(".")
        # PyYAML resolves a name without a module among the builtins (python/name:exec).
        severity, why = rank_global(module or "builtins", name)
        if suffix.startswith(_CALLS):
            severity = max(severity, Severity.HIGH)
        mark = getattr(event, "start_mark", None)
        offset = getattr(mark, "index", None)
        self.ctx.find(
            rules.YAML_PYTHON_TAG,
            max(severity, Severity.MEDIUM),
            self.loc.at(offset),
            f"!!python/{suffix}"[:200],
            f"YAML python tag: yaml.load with the default, full or unsafe loader imports "
            f"{'and calls ' if suffix.startswith(_CALLS) else ''}{target or kind} ({CVES}): {why}",
        )

    def raw_tags(self, data: bytes) -> None:
        """After a parse error: python tags the parser never reached still count."""
        text = data.decode("utf-8", "replace")
        for m in _TAG_TEXT.finditer(text):
            near = text[m.end() : m.end() + 200]
            if m.group(1).upper() == "%TAG" and "python" not in near and "%" not in near:
                continue
            self.tagged = True
            self.ctx.find(
                rules.YAML_UNPARSED_PYTHON_TAG,
                Severity.HIGH,
                self.loc.at(m.start()),
                text[m.start() : m.start() + 80].split("\n")[0],
                f"python tag in a YAML stream that does not parse: other YAML readers, or "
                f"earlier documents of the stream, may still construct it ({CVES})",
            )
            break

    def finish(self) -> None:
        if self.total > MAX_EXPANDED and self.total > MAX_RATIO * self.events:
            self.ctx.find(
                rules.YAML_ALIAS_BOMB,
                Severity.HIGH,
                self.loc,
                f"{self.total} nodes from {self.events} events",
                "YAML anchors and aliases expand exponentially (billion laughs): loaders that "
                "copy them (OmegaConf, Hydra, JSON export) exhaust memory and time",
            )
        try:
            dicts = [d for doc in self.docs for d in iter_dicts(doc)]
        except (TooDeep, TooLarge) as exc:
            self.ctx.find(
                rules.CONFIG_NESTING, Severity.MEDIUM, self.loc, "nesting", f"YAML is {exc}"
            )
            self.ctx.fail(self.loc, f"YAML document is {exc}")
            return
        scan_hydra_dicts(self.ctx, dicts, self.loc)
        scan_hf_doc(self.ctx, None, dicts, self.loc)
        if any("class_name" in d for d in dicts):  # a Keras config JSON parsers also read
            for doc in self.docs:
                scan_keras_doc(self.ctx, doc, self.loc)


_NO_KEY = object()
_PLAIN: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE", "yes", "Yes", "on", "On"), True),
    **dict.fromkeys(("false", "False", "FALSE", "no", "No", "off", "Off"), False),
    **dict.fromkeys(("null", "Null", "NULL", "~", ""), None),
}
