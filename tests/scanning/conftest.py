"""Scanner tests are the package ``tests.scanning`` (import the corpus builders as
``tests.scanning.scan_samples``). Test files written before that, with a bare
``import scan_samples``, still run: this folder stays importable as a path entry."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)
