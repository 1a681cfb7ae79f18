"""Command-line plumbing shared by the experiments: each reads a checkpoint, measures, prints a
table of result rows and may keep the rows as a JSON list."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from composable_rl.config import ConfigError
from composable_rl.run.cli import fail, run_command
from composable_rl.run.logging import write_json
from composable_rl.run.runtime import CoreShare, configure_cpu


def experiment_parser(
    doc: str | None, checkpoint_help: str = "run dir or checkpoint"
) -> argparse.ArgumentParser:
    """A parser that shows the experiment's docstring as written, with --checkpoint and --json."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help=checkpoint_help)
    parser.add_argument("--json", type=Path, help="write the rows as a JSON list")
    return parser


def report(rows: list[dict], table: str, json_path: Path | None) -> list[dict]:
    """Print the rows' table and, given a path, write the rows there; returns the rows."""
    print(table)
    if json_path is not None:
        write_json(rows, json_path)
    return rows


def run(main: Callable[[], object], share: bool = True) -> None:
    """Entry point of `python -m experiments.X`: the process-wide CPU settings that train.py's
    CLI applies, then main() on the command line (`run_command`: Ctrl-C and outputs that cannot
    be written are one line, and so are a missing checkpoint, a config or checkpoint that does
    not fit and any other bad value, with status 2), with this process's share of the cores
    (`CoreShare`) taken when it starts and reread at every step of its rollouts
    (`follow_share`); a driver whose work runs in processes of their own
    (`share=False`: experiments.reproduce, whose trials are training runs) takes none."""
    configure_cpu()

    def checked() -> None:
        try:
            with CoreShare() if share else nullcontext() as cores:
                if cores is not None:  # a training run beside it keeps its own share
                    cores.follow()
                main()
        except (ConfigError, FileNotFoundError, ValueError) as err:
            fail(str(err))

    run_command(checked)
