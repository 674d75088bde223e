"""``python -m modelseal``: the command line."""

from modelseal.cli.main import run

run()
