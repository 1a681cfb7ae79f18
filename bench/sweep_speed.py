"""A sweep of quickstart seeds on this machine against the same runs one after another.

    python -m bench.sweep_speed [--seeds 5] [--steps N] [--json PATH]

First `--seeds` solo quickstart runs (`train.py` with its evaluation, as a user starts them),
one after another; then `sweep.py` over the same seeds with one-CPU trials on a local Ray
instance, started from nothing. Prints both totals and their ratio (target <= 0.85), and the
env-steps/s of the two trials that started first, side by side, as fractions of the solo
runs' mean (target >= 0.75 each), beside a solo run limited to one thread: what a one-CPU
trial could reach with the other core idle. A run's env-steps/s are its steps over the time
they took between its first and last log points (`bench.shared_cores.run_sps`: a median of
the log points would hide a stretch where it crawled). Needs the `sweep` extra.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.shared_cores import run_sps
from bench.throughput import QUICKSTART, Row, Target, cpu_name, progress, report, row

ROOT = QUICKSTART.parent.parent
WALL_TARGET = 0.85  # sweep wall-clock / sequential solo runs
PAIR_TARGET = 0.75  # each of two one-CPU trials side by side / a solo run's env-steps/s


def timed(command: list[str]) -> float:
    """Run a command from the repository root; its wall-clock seconds (a failure stops the
    bench with its last output)."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:3])} failed: {done.stderr[-800:]}")
    return time.perf_counter() - start


def bench_sweep(seeds: int, steps: int | None) -> list[Row]:
    """Sequential solo runs, then the sweep: wall-clock, env-steps/s and their ratios."""
    budget = []
    if steps:
        budget = [f"total_steps={steps}", f"replay.learning_starts={min(5_000, steps // 2)}"]
    setting = f"quickstart x {seeds} seeds" + (f", {steps:,} steps" if steps else "")
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        solo_seconds, solo_sps = 0.0, []
        for seed in progress(range(seeds), "solo runs", "run"):
            overrides = [f"runs_dir={runs}", f"run_name=solo{seed}", f"seed={seed}", *budget]
            command = [sys.executable, "train.py", "--config", str(QUICKSTART), "--no-progress"]
            solo_seconds += timed(command + [a for o in overrides for a in ("--set", o)])
            solo_sps.append(run_sps(runs / f"solo{seed}"))
        overrides = [f"runs_dir={runs}", "run_name=one_thread", "torch_threads=1", *budget]
        timed(command + [a for o in overrides for a in ("--set", o)])
        one_thread = run_sps(runs / "one_thread")
        command = [sys.executable, "sweep.py", "--config", str(QUICKSTART), "--name", "sweep"]
        command += ["--seeds", str(seeds), "--runs-dir", str(runs), "--cpus-per-trial", "1"]
        sweep_seconds = timed(command + [a for o in budget for a in ("--set", o)])
        trial_dirs = [d for d in (runs / "sweep" / "trials").iterdir() if d.is_dir()]
        started = {d: json.loads((d / "trial.json").read_text())["started"] for d in trial_dirs}
        first_two = sorted(trial_dirs, key=started.__getitem__)[:2]
        pair = [run_sps(d) for d in first_two]
    solo = sum(solo_sps) / len(solo_sps)
    rows = [
        row("sweep", f"{setting}, one after another (train.py)", solo_seconds, "s"),
        row("sweep", f"{setting}, sweep.py with 1-CPU trials", sweep_seconds, "s"),
        row("sweep", "sweep / one after another", sweep_seconds / solo_seconds, "x wall"),
        row("sweep", "solo run, mean env-steps/s", solo, "env-steps/s"),
        row("sweep", "solo run with one thread (seed 0)", one_thread, "env-steps/s"),
        row("sweep", "one thread / solo: what one CPU allows", one_thread / solo, "x"),
    ]
    for i, sps in enumerate(pair, 1):
        rows.append(row("sweep", f"trial {i} of the first two, side by side", sps, "env-steps/s"))
        rows.append(row("sweep", f"trial {i} of the first two / solo", sps / solo, "x speed"))
    return rows


def targets(rows: list[Row]) -> list[Target]:
    """The wall-clock ratio and each side-by-side trial's speed ratio."""
    found = []
    for r in rows:
        if r["unit"] == "x wall":
            found.append(Target(str(r["setting"]), float(r["value"]), "<=", WALL_TARGET))
        elif r["unit"] == "x speed":
            found.append(Target(str(r["setting"]), float(r["value"]), ">=", PAIR_TARGET))
    return found


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Runs the bench, prints the table and the targets; returns the rows (also --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="quickstart seeds (default 5)")
    parser.add_argument("--steps", type=int, help="env steps of each run (default: config's)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the rows as JSON")
    args = parser.parse_args(argv)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SystemExit('bench.sweep_speed needs Ray: pip install -e ".[sweep]"') from None
    print(f"CPU: {cpu_name()}")
    rows = bench_sweep(args.seeds, args.steps)
    return report(rows, targets(rows), args.json)


if __name__ == "__main__":
    main()
