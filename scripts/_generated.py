"""What every ``scripts/gen_*.py`` shares: check a generated file against its source, or rewrite it.

A generator renders its target's text, and this module compares it with the committed file
(``--check``: exit 1 with a one-line reason naming the regenerate command) or writes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def check(target: Path, render: Callable[[], str], source: str, regenerate: str) -> str | None:
    """``None`` when ``target`` holds what ``render`` makes now, else a one-line reason.

    ``source`` names what the file is generated from ("the commands"), ``regenerate`` the
    command that rewrites it.
    """
    have = target.read_text(encoding="utf-8") if target.exists() else ""
    if have == render():
        return None
    return f"{target.name} does not match {source}; regenerate it with '{regenerate}' and commit it"


def main(
    argv: list[str] | None,
    *,
    doc: str | None,
    target: Path,
    render: Callable[[], str],
    label: str,
    source: str,
    regenerate: str,
) -> int:
    """Regenerate ``target`` (default) or check it (``--check``, exit 1 on drift).

    ``doc`` is the script's docstring (its first line describes the script in ``--help``);
    ``label`` starts the drift message.
    """
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on drift")
    if parser.parse_args(argv).check:
        problem = check(target, render, source, regenerate)
        if problem:
            print(f"{label}: {problem}", file=sys.stderr)
            return 1
        return 0
    from modelseal.fsutil import atomic_write

    atomic_write(target, render().encode("utf-8"))
    print(f"wrote {target}")
    return 0
