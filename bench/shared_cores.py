"""Runs that share cores: one quickstart run alone, two identical ones started together, and
one beside other work: a `zero_shot.py --all-boolean` loop on the solo run's checkpoint, and a
CPU burner outside the project (two busy processes, as many as this machine's two cores).

    python -m bench.shared_cores [--steps N] [--json PATH]

Each run is `train.py` on configs/quickstart.yaml with default settings (no evaluation), in its
own process, as a user starts them; its speed is its env-steps/s from its first log point to
its last (`run_sps`: a stretch where it crawled counts for as long as it lasted).
The solo speed is the mean of a solo run before the others and one after them, so that a
machine whose speed drifts during the bench moves the fractions less; after / before shows the
drift. Prints each run as env-steps/s and as a fraction of that solo speed, then the targets
(each of the pair at least 70% of solo, a run beside other work at least 45%).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.throughput import QUICKSTART, Row, Target, bracketed, cpu_name, report, row
from composable_rl.run.logging import read_scalars

ROOT = QUICKSTART.parent.parent
PAIR_TARGET = 0.70  # each run of a pair, as a fraction of a solo run's env-steps/s
BESIDE_TARGET = 0.45  # a run beside other work: half the cores, less the one-thread loss
BURNERS = 2  # busy processes of the CPU burner


def start_run(runs_dir: Path, name: str, steps: int) -> subprocess.Popen:
    """`python train.py` on the quickstart for `steps` env steps, without evaluation."""
    overrides = [f"runs_dir={runs_dir}", f"run_name={name}", f"total_steps={steps}"]
    overrides += ["eval_episodes=0", f"replay.learning_starts={min(5_000, steps // 2)}"]
    command = [sys.executable, str(ROOT / "train.py"), "--config", str(QUICKSTART)]
    command += ["--no-progress", *(arg for item in overrides for arg in ("--set", item))]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_sps(run_dir: Path) -> float:
    """A finished run's env-steps/s from its first log point to its last: each interval's
    `charts/SPS` weighted by the time the interval took, so that a stretch where the run
    crawled counts for as long as it lasted (a median of the points hides it). The first
    interval (before updates start) is left out; a run with one log point gives its value."""
    points = sorted(read_scalars(run_dir, "charts/SPS").items())
    if len(points) == 1:
        return points[0][1]
    pairs = zip(points[:-1], points[1:], strict=True)
    seconds = sum((step - before) / sps for (before, _), (step, sps) in pairs)
    return (points[-1][0] - points[0][0]) / seconds


def finish(processes: dict[str, subprocess.Popen], runs_dir: Path) -> dict[str, float]:
    """Wait for every run; its env-steps/s (`run_sps`) by name (a failed run stops the bench)."""
    for name, process in processes.items():
        _, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"run {name} failed ({process.returncode}): {err.decode()[-500:]}")
    return {name: run_sps(runs_dir / name) for name in processes}


def background(command: list[str]) -> subprocess.Popen:
    """Other work, started in its own process group (so that `stop` ends all of it)."""
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True, **quiet)


def stop(work: list[subprocess.Popen]) -> None:
    """End background work and everything it started."""
    for process in work:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def beside(runs: Path, name: str, steps: int, work: list[subprocess.Popen]) -> float:
    """A run's median env-steps/s while `work` runs; the work is stopped after it."""
    try:
        return finish({name: start_run(runs, name, steps)}, runs)[name]
    finally:
        stop(work)


def zero_shot_loop(checkpoint: Path) -> list[subprocess.Popen]:
    """`zero_shot.py --all-boolean` on a checkpoint, over and over, as a user tries tasks."""
    once = [sys.executable, "zero_shot.py", "--checkpoint", str(checkpoint), "--all-boolean"]
    once += ["--episodes", "50", "--logdir", str(checkpoint / "zero_shot")]
    loop = f"while true; do {' '.join(once)}; done"
    return [background(["bash", "-c", loop])]


def burner() -> list[subprocess.Popen]:
    """A plain CPU burner outside the project: BURNERS busy-looping processes."""
    return [background([sys.executable, "-c", "while True: pass"]) for _ in range(BURNERS)]


def bench_shared_cores(steps: int) -> list[Row]:
    """Solo run, two runs started together, a run beside a zero-shot loop and beside a CPU
    burner, a second solo run: env-steps/s and fractions of the mean solo speed."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        before = finish({"solo": start_run(runs, "solo", steps)}, runs)["solo"]
        pair = finish({name: start_run(runs, name, steps) for name in ("a", "b")}, runs)
        others = {
            "beside a zero_shot.py --all-boolean loop": beside(
                runs, "zero_shot", steps, zero_shot_loop(runs / "solo")
            ),
            f"beside a CPU burner ({BURNERS} busy processes)": beside(
                runs, "burner", steps, burner()
            ),
        }
        after = finish({"solo_after": start_run(runs, "solo_after", steps)}, runs)["solo_after"]
    setting = f"quickstart, default settings, {steps:,} steps"
    solo_setting = f"solo run, {setting}, mean of one before and one after the others"
    rows = bracketed("shared cores", solo_setting, before, after, "env-steps/s")
    solo = float(rows[0]["value"])
    for i, name in enumerate(pair, 1):
        together = f"run {i} of 2 started together, {setting}"
        rows.append(row("shared cores", together, pair[name], "env-steps/s"))
        rows.append(row("shared cores", f"{together} / solo", pair[name] / solo, "x"))
    for what, sps in others.items():
        rows.append(row("shared cores", f"run {what}, {setting}", sps, "env-steps/s"))
        rows.append(row("shared cores", f"run {what}, {setting} / solo", sps / solo, "x"))
    return rows


def targets(rows: list[Row]) -> list[Target]:
    """Each run of the pair at least PAIR_TARGET of the solo run, a run beside other work at
    least BESIDE_TARGET."""
    return [
        Target(
            str(r["setting"]),
            float(r["value"]),
            ">=",
            BESIDE_TARGET if "beside" in str(r["setting"]) else PAIR_TARGET,
        )
        for r in rows
        if str(r["setting"]).endswith("/ solo")
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
