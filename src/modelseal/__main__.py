"""``python -m modelseal``: the command line."""

from modelseal.cli.entry import main

raise SystemExit(main())
