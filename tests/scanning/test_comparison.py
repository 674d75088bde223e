"""Run the real peers (picklescan, modelscan, fickling) on the shared corpus and record results.

This is what generates docs/scan-comparison.md (via scripts/scan_compare.py); here it checks the
claims the table makes: modelseal catches every malicious sample, including everything any peer
catches, and raises no false alarm on the benign files.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _samples() -> list[Any]:
    from tests.scanning.format_samples import FORMAT_SAMPLES
    from tests.scanning.scan_samples import SAMPLES

    return [*SAMPLES, *FORMAT_SAMPLES]


def _scan_compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scan_compare", REPO / "scripts/scan_compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peers_on_the_same_corpus(tmp_path: Path) -> None:
    scan_compare = _scan_compare()

    rows = scan_compare.compare(scan_compare.build_corpus(tmp_path))
    (tmp_path / "results.json").write_text(json.dumps(rows, indent=2))
    table = scan_compare.markdown(rows)
    assert "| modelseal |" in table
    bad = [r for r in rows if r["malicious"]]
    good = [r for r in rows if not r["malicious"]]
    assert len(bad) >= 40 and len(good) >= 20
    unscannable_only = {s.kind for s in _samples() if s.expect == "unscannable"}
    for row in bad:
        want = "error" if row["kind"] in unscannable_only else "caught"
        assert row["modelseal"] == want, row["kind"]
        for peer in scan_compare.PEER_NAMES:
            assert row[peer] in ("caught", "error", "missed")
    for row in good:
        assert row["modelseal"] == "missed", row["kind"]
    # Every peer ran on every file and each misses something modelseal catches.
    for peer in scan_compare.PEER_NAMES:
        assert any(r[peer] == "missed" for r in bad), peer
