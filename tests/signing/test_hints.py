"""The Python API's hints in signing/ and hashing/ never name the command line (project issue
"Reshape", item 5): no option (``--flag``), no ``modelseal COMMAND``, no ``MODELSEAL_*`` variable.
The CLI adds that wording by the error's topic (modelseal.cli.hints), and every topic these
packages raise has CLI wording there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import modelseal
from modelseal.cli.hints import BY_TOPIC
from modelseal.cli.main import COMMANDS

PACKAGES = [Path(modelseal.__file__).parent / name for name in ("signing", "hashing")]
SOURCES = sorted(p for package in PACKAGES for p in package.rglob("*.py"))
# "--" then a letter, not inside a run of dashes (a PEM armour line is not an option).
FLAG = re.compile(r"(?<!-)--[A-Za-z]")
COMMAND = re.compile(r"\bmodelseal (?:" + "|".join(map(re.escape, COMMANDS)) + r")\b")


def offends(text: str) -> bool:
    """Whether ``text`` names a CLI option, a ``modelseal`` command or a MODELSEAL_ variable."""
    return bool(FLAG.search(text) or COMMAND.search(text) or "MODELSEAL_" in text)


def _literals(node: ast.AST) -> list[str]:
    """Every string literal in ``node``; an f-string also whole, ``{}`` for its fields."""
    found: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.append(sub.value)
        elif isinstance(sub, ast.JoinedStr):
            found.append(
                "".join(
                    v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
                    for v in sub.values
                )
            )
    return found


def _parameters(tree: ast.AST, field: str) -> dict[str, int]:
    """Functions of the module that take ``field`` positionally: name -> argument index."""
    out: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
            if field in names:
                out[node.name] = names.index(field)
    return out


def _names(target: ast.expr, field: str) -> bool:
    return isinstance(target, ast.Name) and target.id.lower().endswith(field)


def field_literals(path: Path, field: str) -> list[tuple[int, str]]:
    """(line, text) of every string that can become an error's ``field`` (``hint`` or
    ``topic``) in the module at ``path``: ``field=`` arguments, positional ``field`` arguments
    of the module's own helpers, and values assigned to a variable named ``...field``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    positional = _parameters(tree, field)
    exprs: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == field:
            exprs.append(node.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            index = positional.get(name)
            if index is not None and index < len(node.args):
                exprs.append(node.args[index])
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if _names(target, field) and node.value is not None:
                    exprs.append(node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    exprs.extend(
                        v
                        for t, v in zip(target.elts, node.value.elts, strict=False)
                        if _names(t, field)
                    )
    return [(expr.lineno, text) for expr in exprs for text in _literals(expr)]


def hint_literals(path: Path) -> list[tuple[int, str]]:
    """Every string literal that can become a hint in the module at ``path``."""
    return field_literals(path, "hint")


def test_the_checker_recognizes_cli_wording() -> None:
    assert offends("pass --allow-symlinks to include links")
    assert offends("sign the model with 'modelseal sign'")
    assert offends("run modelseal verify first")
    assert offends("set MODELSEAL_PASSPHRASE")
    assert not offends("give PEM certificates (-----BEGIN CERTIFICATE-----)")
    assert not offends("modelseal verifies the OMS 'files' and 'shards' methods")
    assert not offends('pip install "modelseal[onnx]"')


def test_walker_finds_every_kind_of_hint(tmp_path: Path) -> None:
    module = tmp_path / "sample.py"
    module.write_text(
        "def _fail(code, message, hint, topic=''):\n"
        "    return code\n"
        "def f(x):\n"
        "    raise E('m', hint='keyword')\n"
        "    raise E('m', hint=f'formatted {x} --flag')\n"
        "    _fail('c', 'm', 'positional', 'pos-topic')\n"
        "    hint = 'assigned' if x else 'other'\n"
        "    hint, topic = 'tuple', 'topic-value'\n"
        "    key_hint: str = 'annotated'\n"
        "    message = 'not a hint'\n"
    )
    texts = [text for _, text in hint_literals(module)]
    topics = sorted(text for _, text in field_literals(module, "topic"))
    assert topics == ["pos-topic", "topic-value"]
    assert sorted(texts) == sorted(
        [
            "keyword",
            "formatted ",
            " --flag",
            "formatted {} --flag",
            "positional",
            "assigned",
            "other",
            "tuple",
            "annotated",
        ]
    )


def test_sources_are_found() -> None:
    names = {p.relative_to(p.parents[1]).as_posix() for p in SOURCES}
    assert {"signing/api.py", "signing/bundle.py", "hashing/engine.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_api_hints_name_no_cli_command_option_or_variable(path: Path) -> None:
    bad = [f"{path.name}:{line}: {text!r}" for line, text in hint_literals(path) if offends(text)]
    assert not bad, "\n".join(bad)


def test_hints_are_walked_in_every_module_that_raises() -> None:
    counts = {p.name: len(hint_literals(p)) for p in SOURCES}
    # Each of these raises several errors with hints; none of them may be skipped silently.
    for name in ("api.py", "bundle.py", "keys.py", "trust.py", "engine.py", "fingerprint.py"):
        assert counts[name] >= 2, counts
    assert sum(counts.values()) >= 50, counts


def test_every_topic_has_cli_wording() -> None:
    topics = {(p.name, line, text) for p in SOURCES for line, text in field_literals(p, "topic")}
    assert len(topics) >= 15
    missing = sorted(t for t in topics if t[2] not in BY_TOPIC)
    assert not missing
    for _, _, topic in topics:
        assert offends(BY_TOPIC[topic]), topic  # the CLI says which option or command
