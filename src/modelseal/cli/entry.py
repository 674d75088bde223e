"""The ``modelseal`` console script.

Before importing click and the commands (some 50 ms of CPU), it starts the hashing of a plain
``modelseal sign`` command line in the background (:func:`modelseal.cli.early.prestart`), so the
cores hash while the rest starts up. Everything else is :func:`modelseal.cli.main.main`: parsing,
results, one-line errors and exit codes are the same, whether or not hashing started early.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``modelseal`` command line; returns the exit code."""
    from modelseal.cli.early import discard_prestarted, prestart

    args = list(sys.argv[1:] if argv is None else argv)
    prestart(args)
    try:
        from modelseal.cli.main import main as run_command

        return run_command(args)
    finally:
        discard_prestarted()
