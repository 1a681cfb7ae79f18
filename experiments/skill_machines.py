"""Temporal tasks zero-shot with skill machines, beside agents trained on each task directly.

    python -m experiments.skill_machines --checkpoint RUN_DIR [--baseline-steps N] [--json PATH]

The checkpoint holds Office proposition heads trained only on primitive goal-reaching tasks.
For every task (the four Office tasks and four more) it reports, from the standard start and
from random starts: the skill machine with look-ahead (default), the skill machine that picks
edges on the machine alone (as published), and a fresh agent of the same config trained on that
one task with the machine state in its observation, for as many env steps as the checkpoint saw.
Every figure sits beside the product-BFS optimum.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm import tqdm

from agents.composition import evaluate_temporal_task, load, resolve
from agents.training import train
from composable_rl.run.checkpoint import load_meta
from composable_rl.run.logging import format_table
from experiments.common import experiment_parser, report, run

TASKS = (
    "F(f & F g) & G !n",  # coffee, then the office
    "F(e & F g) & G !n",  # mail, then the office
    "(F(f & F(e & F g)) | F(e & F(f & F g))) & G !n",  # coffee and mail in either order, office
    "F(a & F(b & F(c & F d))) & G !n",  # a, b, c, d in order
    "F((f | e) & F g) & G !n",  # coffee or mail, then the office
    "F(a & F c) & G !e",  # a then c, never the mail room's mail
    "F(b & F(d & F g)) & G !n",  # b, d, then the office
    "F(g & F(a & F g)) & G !(n | e)",  # office, a, back to the office; no plant, no mail
)
AGENTS = ("skill machine", "skill machine, no look-ahead", "direct baseline")


def main(argv: list[str] | None = None) -> list[dict]:
    """Score skill machines (and directly trained baselines) on temporal tasks; print a table."""
    parser = experiment_parser(__doc__)
    parser.add_argument("--task", action="append", help="LTL task (repeatable; default: 8)")
    parser.add_argument("--baseline-steps", type=int, help="env steps per baseline (default: same)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the trained baselines")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per start")
    parser.add_argument("--seed", type=int, default=10_000, help="evaluation seed")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/skill_machines"),
        help="baselines' run dirs (replaced on every run)",
    )
    args = parser.parse_args(argv)

    cfg, world, agent = load(args.checkpoint)
    steps = args.baseline_steps or load_meta(resolve(args.checkpoint))["step"]
    rows = []
    for i, task in enumerate(tqdm(args.task or TASKS, unit="task")):
        for name, plan in zip(AGENTS[:2], (True, False), strict=False):
            with torch.no_grad():
                found = evaluate_temporal_task(
                    cfg, world, agent, task, args.episodes, args.seed, plan
                )
            rows += [{"agent": name, **row} for row in found]
        if args.no_baseline:
            continue
        env = dataclasses.replace(cfg.env, task=task, bound_heads=False, starts="unlabelled")
        direct_cfg = dataclasses.replace(
            cfg,
            total_steps=steps,
            eval_episodes=args.episodes,
            env=env,
            agent=dataclasses.replace(cfg.agent, world_values=False),
        )
        result = train(direct_cfg, args.out / f"task_{i}", progress=False, overwrite=True)
        rows += [{"agent": AGENTS[2], **row} for row in result["eval"]]
    return report(rows, format_table(rows), args.json)


if __name__ == "__main__":
    run(main)
