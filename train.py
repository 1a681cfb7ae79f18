"""Train one multi-head soft-Q network on any registered world.

    python train.py --config configs/quickstart.yaml [--set key=value ...]
    python train.py --resume runs/<run-name> [--set total_steps=400000]
    python train.py --help-config

Checkpoints land every `checkpoint.minutes` (5 by default), at the end, and on SIGINT or
SIGTERM: the run then writes one at the current step and exits with status 128 + the signal
number (a second Ctrl-C exits at once); `--resume` continues it. A run whose loss or weights
become non-finite stops with status 1 before any checkpoint holds them.

Every env slot pursues its own behaviour task (a base head or a weight vector over the heads),
while all heads learn off-policy from the shared tensor replay. The run directory holds the
resolved config, the command line, TensorBoard logs, checkpoints and the final evaluation.
One process trains in a run directory at a time (a second is refused, naming the first); an
existing run directory is continued only with --resume and replaced only with --overwrite, and
runs without a run_name never share one.
A world that is not built in is checked against the world contract before training.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from agents.factory import build_world, check_device
from agents.run_dir import RunDirBusy, fresh_run_dir
from agents.training import TrainingDiverged, TrainingInterrupted, check_run_dir, train
from composable_rl.config import Config, ConfigError, describe, load_config
from composable_rl.registry import world_entry
from composable_rl.run.checkpoint import (
    CheckpointFormatError,
    CheckpointMismatchError,
    CheckpointWriteError,
    checkpoints,
)
from composable_rl.run.cli import OutputWriteError, Parser, fail
from composable_rl.run.logging import format_table
from composable_rl.run.runtime import configure_cpu
from envs.check import WorldContractError, check_world  # importing envs registers its worlds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML experiment file (see configs/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. agent.lr=1e-3",
    )
    parser.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what an existing run directory of the same run_name holds",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--help-config", action="store_true", help="list every config key of every world"
    )
    return parser.parse_args(argv)


def about(source: Path, err: Exception) -> str:
    """The error's message, prefixed with the config file unless it already names it."""
    message = str(err)
    return message if message.startswith(f"{source}:") else f"{source}: {message}"


def run(cfg: Config, run_dir: Path, args: argparse.Namespace, source: Path, command: str) -> dict:
    """Train in `run_dir`, turning every way a run can stop into one line and its status."""
    resume = args.resume is not None
    try:
        return train(cfg, run_dir, resume, not args.no_progress, command, overwrite=args.overwrite)
    except (ConfigError, FileNotFoundError, CheckpointMismatchError, CheckpointFormatError) as err:
        fail(about(source, err))
    except (TrainingDiverged, RunDirBusy) as err:
        fail(str(err), 1)
    except CheckpointWriteError as err:
        kept = checkpoints(run_dir)
        last = f"its last whole checkpoint is {kept[0]}" if kept else "it has no checkpoint yet"
        fail(f"{err}; the run stopped, {last}", 1)
    except OutputWriteError as err:
        fail(str(err), 1)
    except TrainingInterrupted as stop:
        fail(f"{stop}; continue with: python train.py --resume {run_dir}", 128 + stop.signal)
    except KeyboardInterrupt:
        fail(f"stopped at once; checkpoints so far are in {run_dir}", 128 + signal.SIGINT)


def main(argv: list[str] | None = None) -> None:
    """Load the config, check a user world, train, print the final evaluation."""
    args = parse_args(argv)
    configure_cpu()
    if args.help_config:
        print(describe())
        return
    if args.resume is None and args.config is None:
        fail("give --config FILE or --resume RUN_DIR (see --help)")
    if args.resume is not None and args.overwrite:
        fail("--overwrite replaces a run and --resume continues one: give one of them")
    source = args.resume / "config.yaml" if args.resume else args.config
    try:
        cfg = load_config(source, args.overrides)
        check_device(cfg.device)
        if not world_entry(cfg.env.name).make.__module__.startswith("envs."):
            check_world(build_world(cfg))
    except (ConfigError, WorldContractError) as err:
        fail(about(source, err))
    command = shlex.join([sys.executable, *sys.argv])
    with ExitStack() as held:
        if args.resume is not None:
            run_dir = args.resume
        elif cfg.run_name:
            run_dir = Path(cfg.runs_dir) / cfg.run_name
        else:
            name = f"{args.config.stem}_{cfg.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
            try:
                check_run_dir(Path(cfg.runs_dir) / name)
            except ConfigError as err:
                fail(about(source, err))
            run_dir = held.enter_context(fresh_run_dir(Path(cfg.runs_dir), name))
        result = run(cfg, run_dir, args, source, command)
    print(f"run directory: {run_dir}")
    if result["eval"]:
        print(format_table(result["eval"]))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        fail("interrupted before training began; nothing was written", 128 + signal.SIGINT)
