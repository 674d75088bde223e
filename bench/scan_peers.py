"""The public scanners modelseal is compared with, in their own virtualenv.

picklescan, modelscan and fickling pin dependencies that conflict with ours, so they live in
``bench/.peers/venv`` (git-ignored), created on first use from PyPI with pinned versions. Each is
run through its own command line; its verdict is normalised to ``caught`` (reported unsafe),
``error`` (failed or refused the file: not clean, but not a detection) or ``missed`` (clean).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEERS = {
    "picklescan": "picklescan==1.0.5",
    "modelscan": "modelscan==0.8.8",
    "fickling": "fickling==0.1.12",
}
# fickling 0.1.12 imports typing_extensions without declaring it; modelscan needs h5py for .h5.
EXTRA = ["typing_extensions", "h5py"]
HERE = Path(__file__).resolve().parent
VENV = HERE / ".peers" / "venv"


@dataclasses.dataclass(frozen=True)
class PeerResult:
    peer: str
    verdict: str  # caught | error | missed
    exit_code: int
    seconds: float
    detail: str


def _bin(name: str) -> Path:
    return VENV / "bin" / name


def ensure_peers() -> Path:
    """Create the peers' virtualenv if needed; returns its python."""
    python = _bin("python")
    marker = VENV / ".ready"
    want = " ".join(sorted([*PEERS.values(), *EXTRA]))
    if marker.exists() and marker.read_text() == want:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *PEERS.values(), *EXTRA], check=True
    )
    marker.write_text(want)
    return python


def _run(argv: list[str], timeout: float) -> tuple[int, str, float]:
    # Peers run in a scratch directory: fickling writes safety_results.json into its cwd.
    argv = [str(Path(a).resolve()) if Path(a).exists() else a for a in argv]
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="modelseal-peer-") as cwd:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=cwd,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
    except subprocess.TimeoutExpired:
        return -1, "timeout", time.perf_counter() - start
    return proc.returncode, (proc.stdout + proc.stderr)[-2000:], time.perf_counter() - start


def run_picklescan(path: Path, timeout: float = 600) -> PeerResult:
    code, out, secs = _run([str(_bin("picklescan")), "--path", str(path)], timeout)
    infected = "Infected files: 0" not in out and "Infected files:" in out
    if code == 1 or infected:
        verdict = "caught"
    elif code == 0 and "Infected files: 0" in out and "ERROR" not in out:
        verdict = "missed"
    else:
        verdict = "error"
    return PeerResult(
        "picklescan", verdict, code, secs, out.strip().splitlines()[-1:][0] if out.strip() else ""
    )


def run_modelscan(path: Path, timeout: float = 600) -> PeerResult:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        code, _out, secs = _run(
            [str(_bin("modelscan")), "-p", str(path), "-r", "json", "-o", str(report)], timeout
        )
        issues = errors = 0
        if report.exists():
            try:
                doc = json.loads(report.read_text())
                issues = len(doc.get("issues", []))
                errors = len(doc.get("errors", []))
            except ValueError:
                errors = 1
    if code == 1 or issues:
        verdict = "caught"
    elif code == 0 and not errors:
        verdict = "missed"
    else:
        # exit 3: no supported files; 2: scan error
        verdict = "error" if code not in (0, 3) or errors else "missed"
    return PeerResult("modelscan", verdict, code, secs, f"issues={issues} errors={errors}")


def run_fickling(path: Path, timeout: float = 600) -> PeerResult:
    code, out, secs = _run([str(_bin("fickling")), "--check-safety", str(path)], timeout)
    # 0 likely safe, 1 unsafe; anything else (or a parse failure reported with 1) is an error.
    parse_failed = "malformed pickle" in out or "Parsing errors" in out or "Traceback" in out
    if code == 0:
        verdict = "missed"
    elif code == 1 and not parse_failed:
        verdict = "caught"
    else:
        verdict = "error"
    return PeerResult(
        "fickling", verdict, code, secs, out.strip().splitlines()[-1:][0] if out.strip() else ""
    )


RUNNERS = {"picklescan": run_picklescan, "modelscan": run_modelscan, "fickling": run_fickling}


if __name__ == "__main__":
    ensure_peers()
    for arg in sys.argv[1:]:
        for runner in RUNNERS.values():
            print(runner(Path(arg)))
