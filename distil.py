"""Distil one composed task of a soft actor-critic checkpoint into an actor of its own, and
score it beside the candidate sampler it replaces.

    python distil.py --checkpoint runs/<run> --task "beige & ~circle" [--steps 2000] [--out F]
    python distil.py --checkpoint runs/<run> --task "beige & ~circle" --actor F

The actor is fitted to the greedy choices of the candidate sampler on the frozen composed values
(max over goals for world-value heads) at states of the run's replay, with no new environment
steps, so the checkpoint must hold its replay (train with `checkpoint.replay: true`). Both
policies then act greedily on the task and are scored as `zero_shot.py --task` scores it, with
their acting speed (actions per second on batches of 64 observations). `--out` saves the actor
(safetensors, with its task); `--actor` scores a saved one instead of fitting. Usage errors
print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import envs  # noqa: F401  (registers the built-in worlds where entry points are not installed)
from agents.composition import composed_policy, evaluate_task, head_composition, load, resolve
from agents.distil import (
    acting_rate,
    distil,
    distilled_policy,
    load_actor,
    replay_states,
    save_actor,
)
from composable_rl.config import ConfigError
from composable_rl.languages.expressions import ExpressionError, parse
from composable_rl.run.cli import Parser, fail, file_problem, positive_int, run_command
from composable_rl.run.logging import format_table, write_json
from composable_rl.run.runtime import CoreShare


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = Parser(
        prog="python distil.py",
        dash_values=("--task",),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint or run dir")
    parser.add_argument("--task", required=True, help="the composed task (an expression)")
    parser.add_argument("--steps", type=positive_int, default=2000, help="fitting steps")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="states per step")
    parser.add_argument("--episodes", type=positive_int, default=200, help="scoring episodes")
    parser.add_argument("--seed", type=int, default=10_000, help="evaluation seed")
    parser.add_argument("--out", type=Path, help="save the fitted actor here (safetensors)")
    parser.add_argument("--actor", type=Path, help="score this saved actor instead of fitting")
    parser.add_argument("--json", type=Path, help="write the rows as a JSON list")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    """Fit (or load) the actor, score both policies, print the table."""
    args = parse_args(argv)
    if args.actor and args.out:
        fail("--actor scores a saved actor and --out saves a fitted one: give one of them")
    for option, path in (("--out", args.out), ("--json", args.json)):
        if path is not None and (problem := file_problem(path)):
            fail(f"{option} {path}: {problem}")
    try:
        with CoreShare() as share:  # a training run beside it keeps its own share
            share.follow()
            checkpoint = resolve(args.checkpoint)
            cfg, world, agent = load(checkpoint)
            expr = parse(args.task)
            states = replay_states(checkpoint, agent)
            started = time.perf_counter()
            if args.actor:
                actor = load_actor(agent, states[0].numel(), args.actor, args.task)
            else:
                compose = head_composition(agent, expr)
                actor, trace = distil(
                    agent,
                    compose,
                    states,
                    args.steps,
                    args.batch_size,
                    progress=not args.no_progress,
                )
                fitted = time.perf_counter() - started
                print(
                    f"fitted in {fitted:.1f} s: {args.steps} steps on {len(states)} replay "
                    f"states; squared error to the sampler's choices {trace[0]:.4f} -> "
                    f"{trace[-1]:.4f}"
                )
            rows = []
            for acting, policy in (
                ("candidate sampler", composed_policy(agent, expr, seed=args.seed, world=world)),
                ("distilled actor", distilled_policy(agent, actor)),
            ):
                row = evaluate_task(
                    cfg, world, agent, args.task, args.episodes, args.seed, policy=policy
                )
                rows.append({"acting": acting, **row, "actions_per_s": acting_rate(policy, states)})
    except (ExpressionError, ConfigError, FileNotFoundError, ValueError) as err:
        fail(str(err))
    print(format_table(rows))
    if args.out:
        save_actor(actor, args.task, checkpoint, args.out)
        print(f"actor: {args.out}")
    if args.json:
        write_json(rows, args.json)
    return rows


if __name__ == "__main__":
    run_command(main)
