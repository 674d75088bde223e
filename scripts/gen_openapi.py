"""Write the registry's OpenAPI document to docs/openapi.json, or check that it is current.

python scripts/gen_openapi.py           # regenerate
python scripts/gen_openapi.py --check   # exit 1 if docs/openapi.json differs from the app
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# scripts/_generated.py, found also when a test loads this file by its path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _generated as generated

TARGET = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
REGENERATE = "python scripts/gen_openapi.py"
SOURCE = "the API the app serves"


def render() -> str:
    """The document as the app builds it now (sorted keys, stable formatting)."""
    from modelseal.server.app import openapi_document

    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def check() -> str | None:
    """``None`` when docs/openapi.json is current, else a one-line reason."""
    return generated.check(TARGET, render, SOURCE, REGENERATE)


def main(argv: list[str] | None = None) -> int:
    """Regenerate (default) or check (``--check``) the published document."""
    return generated.main(
        argv,
        doc=__doc__,
        target=TARGET,
        render=render,
        label="openapi",
        source=SOURCE,
        regenerate=REGENERATE,
    )


if __name__ == "__main__":
    sys.exit(main())
