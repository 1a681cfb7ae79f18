"""Zero-shot evaluation of composed tasks from a checkpoint, scored against the exact oracle.

    python -m composable_rl.evaluate --checkpoint DIR --task "blue & ~square" [--episodes N]
    python -m composable_rl.evaluate --checkpoint DIR --all-boolean [--plot PATH] [--json PATH]
    python -m composable_rl.evaluate --checkpoint DIR --ltl "F(f & F g) & G !n" [--json PATH]
    python -m composable_rl.evaluate --checkpoint DIR --rm configs/tasks/abcd.yaml

A task is an expression over the checkpoint's heads. A linear one (`0.7*blue + 0.3*square`) is
the reward sum_k w_k r_k; a Boolean one (`blue & ~square`) rewards collecting an object that
satisfies it with r_max and any other with r_min. The agent acts greedily on the composed values
with no further training; the oracle solves the same task exactly on each episode's layout.

A temporal task (Office world checkpoints) is an LTL formula or a reward-machine YAML file run
by a skill machine over the proposition heads, from the standard start and from random starts,
and scored against the fewest steps found by breadth-first search over world x machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import train
from agents.skill_machine import SkillMachineAgent
from agents.soft_q import MultiHeadSoftQ
from composable_rl import compose
from composable_rl.checkpoint import latest_checkpoint, load_checkpoint, load_meta
from composable_rl.config import Config, from_dict
from composable_rl.logging import Logger
from envs.evaluation import evaluate
from envs.object_rooms import BOUND_HEADS
from envs.office import OfficeWorld
from envs.temporal import evaluate_temporal, office_machine
from envs.worlds import World

RESULT_NUMBERS = ("return", "success", "normalized_return")


def resolve(checkpoint: str | Path) -> Path:
    """The checkpoint directory itself, or the latest checkpoint of a run directory."""
    checkpoint = Path(checkpoint)
    if (checkpoint / "meta.json").is_file():
        return checkpoint
    found = latest_checkpoint(checkpoint)
    if found is None:
        raise FileNotFoundError(f"{checkpoint} is neither a checkpoint nor a run directory")
    return found


def load(checkpoint: str | Path) -> tuple[Config, World, MultiHeadSoftQ]:
    """Config, world and agent restored from a checkpoint (or from a run's latest one)."""
    checkpoint = resolve(checkpoint)
    cfg = from_dict(Config, load_meta(checkpoint)["config"])
    world, agent = train.build(cfg)
    load_checkpoint(checkpoint, agent, head_names=world.head_names, goal_names=world.goal_names)
    agent.eval()
    return cfg, world, agent


def composed_policy(agent: MultiHeadSoftQ, expr: compose.Expr):
    """Greedy policy on the composed values: argmax_a (max_g for world-value heads)."""

    def policy(obs: torch.Tensor, _weights: torch.Tensor) -> torch.Tensor:
        q = agent.online(obs)
        heads = {name: q[:, k] for k, name in enumerate(agent.head_names)}
        bounds = (heads["MAX"], heads["MIN"]) if "MAX" in heads else None
        values = compose.evaluate(expr, heads, alpha=agent.cfg.alpha, bounds=bounds)
        return (values.amax(1) if agent.num_goals else values).argmax(-1)

    return policy


def task_reward(expr: compose.Expr, world: World) -> dict[str, torch.Tensor]:
    """The task's reward for the evaluator: linear weights, or per-goal rewards if Boolean."""
    names = world.head_names
    if compose.is_linear(expr):
        basis = torch.eye(len(names))
        return {"weights": compose.evaluate(expr, dict(zip(names, basis, strict=True)))}
    truth = world.goal_membership.float().T
    ones, zeros = torch.ones(world.num_goals), torch.zeros(world.num_goals)
    holds = compose.evaluate(expr, dict(zip(names, truth, strict=True)), bounds=(ones, zeros))
    return {"goal_rewards": torch.where(holds > 0.5, world.r_max, world.r_min)}


def evaluate_task(
    cfg: Config, world: World, agent: MultiHeadSoftQ, text: str, episodes: int, seed: int
) -> dict:
    """One result row: the composed policy's returns beside the oracle's for that task."""
    expr = compose.parse(text)
    result = evaluate(
        train.world_kwargs(cfg.env, cfg.device),
        composed_policy(agent, expr),
        episodes=episodes,
        seed=seed,
        **task_reward(expr, world),
    )
    return {"task": text, **result}


def all_boolean_tasks(world: World) -> list[str]:
    """Every distinct Boolean task over the base (attribute) heads, as expressions."""
    base = [k for k, name in enumerate(world.head_names) if name not in BOUND_HEADS]
    names = [world.head_names[k] for k in base]
    return [text for text, _ in compose.boolean_tasks(names, world.goal_membership[:, base])]


def skill_machine(world: World, agent: MultiHeadSoftQ, task: str, plan: bool) -> SkillMachineAgent:
    """The skill machine of a temporal task over an Office checkpoint's proposition heads."""
    if not isinstance(world, OfficeWorld) or not agent.num_goals:
        raise ValueError("temporal tasks need an Office checkpoint with world-value heads")
    return SkillMachineAgent(
        agent,
        office_machine(task),
        world.alphabet,
        world.labels(world.goal_cells),
        world.goal_membership,
        world.observe(world.goal_cells, world.objects[:1]),
        world.step_reward,
        world.r_max,
        world.r_min,
        plan=plan,
    )


def evaluate_temporal_task(
    world: World, agent: MultiHeadSoftQ, task: str, episodes: int, seed: int, plan: bool = True
) -> list[dict]:
    """Rows for the standard start and for random starts of a skill machine on `task`."""
    machine = skill_machine(world, agent, task, plan)

    def policy(cells: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return machine.act(world.observe(cells, world.objects[:1]), states)

    return [
        evaluate_temporal(task, policy, starts, episodes, seed=seed, device=world.device)
        for starts in ("standard", "random")
    ]


def plot(rows: list[dict], path: Path) -> None:
    """Horizontal bar chart of the normalised return of every task, worst at the bottom."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["normalized_return"])
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(rows) + 1.2))
    ax.barh([r["task"] for r in rows], [r["normalized_return"] for r in rows], color="#4a7bb7")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("normalised return (1 = oracle, 0 = uniform random)")
    ax.set_xlim(min(0.0, *(r["normalized_return"] for r in rows)) - 0.02, 1.08)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(rows: list[dict]) -> str:
    """Mean normalised return and success over the tasks, and the worst task."""
    worst = min(rows, key=lambda r: r["normalized_return"])
    mean_norm = sum(r["normalized_return"] for r in rows) / len(rows)
    mean_success = sum(r["success"] for r in rows) / len(rows)
    return (
        f"{len(rows)} tasks: mean normalised return {mean_norm:.3f}, mean success "
        f"{mean_success:.3f}; worst {worst['task']!r} at {worst['normalized_return']:.3f}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m composable_rl.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint or run dir")
    tasks = parser.add_mutually_exclusive_group(required=True)
    tasks.add_argument("--task", action="append", help="task expression (repeatable)")
    tasks.add_argument("--all-boolean", action="store_true", help="every Boolean task")
    tasks.add_argument("--ltl", action="append", help="temporal task as LTL (repeatable)")
    tasks.add_argument("--rm", action="append", help="reward-machine YAML file (repeatable)")
    parser.add_argument(
        "--episodes", type=int, help="episodes per task (default 200; 100 per start if temporal)"
    )
    parser.add_argument(
        "--no-plan",
        action="store_true",
        help="skill machine picks edges on the machine alone, as published (no look-ahead)",
    )
    parser.add_argument("--seed", type=int, default=10_000, help="evaluation seed")
    parser.add_argument("--json", type=Path, help="write the rows as a JSON list")
    parser.add_argument("--plot", type=Path, help="bar-plot PNG (default with --all-boolean)")
    parser.add_argument("--logdir", type=Path, help="TensorBoard dir (default: the run dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    temporal = args.ltl or args.rm
    try:
        cfg, world, agent = load(args.checkpoint)
        with torch.no_grad():
            if temporal:
                episodes = args.episodes or 100
                rows = [
                    row
                    for task in temporal
                    for row in evaluate_temporal_task(
                        world, agent, task, episodes, args.seed, not args.no_plan
                    )
                ]
            else:
                texts = all_boolean_tasks(world) if args.all_boolean else args.task
                episodes = args.episodes or 200
                rows = [
                    evaluate_task(cfg, world, agent, text, episodes, args.seed) for text in texts
                ]
    except (compose.ExpressionError, FileNotFoundError, ValueError) as err:
        sys.exit(f"evaluate: {err}")
    print(train.format_table(rows))
    if not temporal:
        print(summary(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    run_dir = (
        args.checkpoint if latest_checkpoint(args.checkpoint) else args.checkpoint.parent.parent
    )
    plot_path = args.plot or (run_dir / "compose_boolean.png" if args.all_boolean else None)
    if plot_path and not temporal:
        plot(rows, plot_path)
        print(f"plot: {plot_path}")
    with Logger(args.logdir or run_dir) as logger:
        for row in rows:
            tag = f"compose/{row['task']}" + (f"/{row['start']}" if temporal else "")
            for key in ("success", "steps", "oracle_steps") if temporal else RESULT_NUMBERS:
                logger.scalar(f"{tag}/{key}", row[key], 0)
    return rows


if __name__ == "__main__":
    main()
