"""Run seeds x config grids as Ray Tune trials, then summarise every metric over seeds.

    python sweep.py --config configs/quickstart.yaml --seeds 5 --grid agent.lr=1e-3,5e-4
    python sweep.py --config configs/quickstart.yaml --seeds 5 --address auto
    python sweep.py --resume runs/sweeps/NAME

Each trial is a normal training run in runs/sweeps/NAME/trials/ (TensorBoard, checkpoints,
eval.json). Local by default: a Ray instance starts on this machine and stops at the end;
`--address` joins a running cluster, whose nodes must see the sweep directory (an address
where nothing answers within `--connect-timeout` seconds is refused before anything is
written). A trial's torch
threads equal its CPUs (`--cpus-per-trial`, default 1), or more while cores of its machine are
idle. A trial whose settings the config rejects fails alone with its one-line error; `--resume`
runs only the trials without an eval.json. The summary gives, per config, each metric's mean,
95% Student-t half-width over the seeds and n (summary.json, summary.csv and a table);
curves.png plots the behaviour return per config with its 95% band over the seeds; the trials
table (trials.json) gives each trial's status, wall-clock and Ray node.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from agents.sweep import (
    CURVES_FILE,
    check_address,
    load_spec,
    make_trials,
    parse_grid,
    run_sweep,
    save_spec,
    trial_table,
    write_summary,
)
from composable_rl.config import ConfigError, load_config
from composable_rl.run.cli import (
    Parser,
    fail,
    non_negative_float,
    positive_float,
    positive_int,
    run_command,
)
from composable_rl.run.logging import format_table, write_json


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = Parser(
        prog="python sweep.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="YAML experiment file (see configs/)")
    parser.add_argument("--resume", type=Path, help="finish the sweep in this directory")
    parser.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2", help="a grid axis"
    )
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--name", help="sweep name (default <config stem>_<timestamp>)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/sweeps"))
    parser.add_argument("--cpus-per-trial", type=positive_float, default=1.0, help="default 1")
    parser.add_argument(
        "--gpus-per-trial", type=non_negative_float, default=0.0, help="default 0; 0.5: 2 a GPU"
    )
    parser.add_argument("--address", help="a running Ray cluster, e.g. auto or ip:port")
    parser.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=30.0,
        help="seconds to wait for --address to answer (default 30)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run (or finish) a sweep and print its summary; exit status 1 if a trial failed."""
    args = parse_args(argv)
    created = None
    try:
        check_address(args.address, args.connect_timeout)
        if args.resume is not None:
            sweep_dir = args.resume
            trials, cpus, gpus = load_spec(sweep_dir)
        else:
            if args.config is None:
                fail("give --config FILE or --resume SWEEP_DIR (see --help)")
            load_config(args.config, args.overrides)
            grid = parse_grid(args.grid)
            config = str(args.config.resolve())
            trials = make_trials(config, grid, range(args.seeds), args.overrides)
            name = args.name or f"{args.config.stem}_{time.strftime('%Y%m%d-%H%M%S')}"
            sweep_dir = args.runs_dir / name
            if sweep_dir.exists():
                fail(f"{sweep_dir} exists: finish it with --resume {sweep_dir}, or give --name")
            cpus, gpus = args.cpus_per_trial, args.gpus_per_trial
            save_spec(sweep_dir, trials, cpus, gpus)
            created = sweep_dir
        failed = run_sweep(trials, sweep_dir, cpus, gpus, args.address)
    except (ConfigError, ValueError, RuntimeError, OSError) as err:
        if created is not None and not any(created.glob("trials/*")):
            shutil.rmtree(created)  # a new sweep that never started a trial: nothing to resume
        fail(str(err))
    rows = write_summary(sweep_dir, trials)
    if rows:
        print(format_table(rows))
    if (sweep_dir / CURVES_FILE).is_file():
        print(f"learning curves: {sweep_dir / CURVES_FILE}")
    table = trial_table(sweep_dir, trials, failed)
    write_json(table, sweep_dir / "trials.json")
    print(format_table(table))
    if nodes := {row["node"] for row in table if "node" in row}:
        print(f"trials ran on {len(nodes)} Ray node(s)")
    print(f"sweep directory: {sweep_dir}")
    if failed:
        fail(f"{len(failed)} of {len(trials)} trial(s) failed (see the table)", status=1)
    return rows


if __name__ == "__main__":
    run_command(main)
