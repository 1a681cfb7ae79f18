"""Run the command-line scripts as a user does, in a subprocess (nothing imports them)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_script(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS` from the repository root, with its output captured as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
