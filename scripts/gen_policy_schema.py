"""Write the gate policy's JSON Schema to docs/policy.schema.json, or check that it is current.

python scripts/gen_policy_schema.py           # regenerate
python scripts/gen_policy_schema.py --check   # exit 1 if the published schema is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "docs" / "policy.schema.json"


def render() -> str:
    """The schema as the policy model defines it now (sorted keys, stable formatting)."""
    from modelseal.policy.document import schema

    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def check() -> str | None:
    """``None`` when docs/policy.schema.json is current, else a one-line reason."""
    have = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if have == render():
        return None
    return (
        f"{TARGET.name} does not match the policy model; "
        "regenerate it with 'python scripts/gen_policy_schema.py' and commit it"
    )


def main(argv: list[str] | None = None) -> int:
    """Regenerate (default) or check (``--check``) the published schema."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on drift")
    if parser.parse_args(argv).check:
        problem = check()
        if problem:
            print(f"policy schema: {problem}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
