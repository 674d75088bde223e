"""Write the registry's OpenAPI document to docs/openapi.json, or check that it is current.

python scripts/gen_openapi.py           # regenerate
python scripts/gen_openapi.py --check   # exit 1 if docs/openapi.json differs from the app
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def render() -> str:
    """The document as the app builds it now (sorted keys, stable formatting)."""
    from modelseal.server.app import openapi_document

    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def check() -> str | None:
    """``None`` when docs/openapi.json is current, else a one-line reason."""
    want = render()
    have = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if have == want:
        return None
    return (
        f"{TARGET.name} does not match the API the app serves; "
        "regenerate it with 'python scripts/gen_openapi.py' and commit it"
    )


def main(argv: list[str] | None = None) -> int:
    """Regenerate (default) or check (``--check``) the published document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on drift")
    args = parser.parse_args(argv)
    if args.check:
        problem = check()
        if problem:
            print(f"openapi: {problem}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
