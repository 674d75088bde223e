"""Write the gate policy's JSON Schema to docs/policy.schema.json, or check that it is current.

python scripts/gen_policy_schema.py           # regenerate
python scripts/gen_policy_schema.py --check   # exit 1 if the published schema is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# scripts/_generated.py, found also when a test loads this file by its path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _generated as generated

TARGET = Path(__file__).resolve().parent.parent / "docs" / "policy.schema.json"
REGENERATE = "python scripts/gen_policy_schema.py"
SOURCE = "the policy model"


def render() -> str:
    """The schema as the policy model defines it now (sorted keys, stable formatting)."""
    from modelseal.policy.document import schema

    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def check() -> str | None:
    """``None`` when docs/policy.schema.json is current, else a one-line reason."""
    return generated.check(TARGET, render, SOURCE, REGENERATE)


def main(argv: list[str] | None = None) -> int:
    """Regenerate (default) or check (``--check``) the published schema."""
    return generated.main(
        argv,
        doc=__doc__,
        target=TARGET,
        render=render,
        label="policy schema",
        source=SOURCE,
        regenerate=REGENERATE,
    )


if __name__ == "__main__":
    sys.exit(main())
