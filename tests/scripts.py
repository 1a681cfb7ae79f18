"""Run the command-line scripts as a user does: `python SCRIPT ARGS` from the repository root.

Scripts that leave nothing behind in the process (no thread counts, signal handlers or core
shares) run in this process, which saves a Python and torch start per call: their exit status,
output and warnings are what a subprocess would give. The others run in a subprocess.
"""

import contextlib
import io
import os
import runpy
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# read a checkpoint and evaluate; set no process state
IN_PROCESS = frozenset({"zero_shot.py", "distil.py"})


def run_script(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS` from the repository root, with its output captured as text
    (`timeout` bounds a subprocess only)."""
    if script in IN_PROCESS:
        return run_in_process(script, args)
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_process(script: str, args: tuple[str, ...]) -> subprocess.CompletedProcess:
    """`script` run as __main__ with `args` as its argv: its exit status, captured stdout and
    stderr (an uncaught exception's traceback, warnings as a fresh interpreter shows them)."""
    out, err = io.StringIO(), io.StringIO()
    argv, cwd, status = sys.argv, os.getcwd(), 0
    sys.argv = [str(ROOT / script), *args]
    os.chdir(ROOT)
    try:
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.resetwarnings()
            for category in (DeprecationWarning, PendingDeprecationWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)
            try:
                runpy.run_path(str(ROOT / script), run_name="__main__")
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
                if isinstance(stop.code, str):
                    print(stop.code, file=sys.stderr)
            except Exception:  # what the interpreter would print before exiting with 1
                traceback.print_exc()
                status = 1
        for w in caught:
            err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno))
    finally:
        sys.argv = argv
        os.chdir(cwd)
    return subprocess.CompletedProcess(sys.argv[:1], status, out.getvalue(), err.getvalue())
