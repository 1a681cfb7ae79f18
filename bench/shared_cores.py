"""Runs that share cores: one quickstart run alone, then two identical ones started together.

    python -m bench.shared_cores [--steps N] [--json PATH]

Each run is `train.py` on configs/quickstart.yaml with default settings (no evaluation), in its
own process, as a user starts them; its speed is the median of its `charts/SPS` log points.
Prints each run of the pair as env-steps/s and as a fraction of the solo run measured in the
same invocation, then the target (each of the pair at least 70% of solo).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.throughput import QUICKSTART, Row, Target, cpu_name, report, row
from composable_rl.run.logging import read_scalars

ROOT = QUICKSTART.parent.parent
PAIR_TARGET = 0.70  # each run of a pair, as a fraction of a solo run's env-steps/s


def start_run(runs_dir: Path, name: str, steps: int) -> subprocess.Popen:
    """`python train.py` on the quickstart for `steps` env steps, without evaluation."""
    overrides = [f"runs_dir={runs_dir}", f"run_name={name}", f"total_steps={steps}"]
    overrides += ["eval_episodes=0", f"replay.learning_starts={min(5_000, steps // 2)}"]
    command = [sys.executable, str(ROOT / "train.py"), "--config", str(QUICKSTART)]
    command += ["--no-progress", *(arg for item in overrides for arg in ("--set", item))]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def median_sps(run_dir: Path) -> float:
    """Median of a finished run's `charts/SPS` scalars."""
    return statistics.median(read_scalars(run_dir, "charts/SPS").values())


def finish(processes: dict[str, subprocess.Popen], runs_dir: Path) -> dict[str, float]:
    """Wait for every run; its median env-steps/s by name (a failed run stops the bench)."""
    for name, process in processes.items():
        _, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"run {name} failed ({process.returncode}): {err.decode()[-500:]}")
    return {name: median_sps(runs_dir / name) for name in processes}


def bench_shared_cores(steps: int) -> list[Row]:
    """Solo run, then two runs started together: env-steps/s and fractions of solo."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        solo = finish({"solo": start_run(runs, "solo", steps)}, runs)["solo"]
        pair = finish({name: start_run(runs, name, steps) for name in ("a", "b")}, runs)
    setting = f"quickstart, default settings, {steps:,} steps"
    rows = [row("shared cores", f"solo run, {setting}", solo, "env-steps/s")]
    for i, name in enumerate(pair, 1):
        together = f"run {i} of 2 started together, {setting}"
        rows.append(row("shared cores", together, pair[name], "env-steps/s"))
        rows.append(row("shared cores", f"{together} / solo", pair[name] / solo, "x"))
    return rows


def targets(rows: list[Row]) -> list[Target]:
    """Each run of the pair at least PAIR_TARGET of the solo run."""
    return [
        Target(str(r["setting"]), float(r["value"]), ">=", PAIR_TARGET)
        for r in rows
        if r["unit"] == "x"
    ]


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Runs the bench, prints the table and the target; returns the rows (also --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60_000, help="env steps of each run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the rows as JSON")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_name()}")
    rows = bench_shared_cores(args.steps)
    return report(rows, targets(rows), args.json)


if __name__ == "__main__":
    main()
