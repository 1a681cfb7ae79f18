"""Zero-shot composition from a checkpoint: linear and Boolean tasks over its heads, and
temporal tasks run by skill machines, each scored by the best evaluation its world offers.

A world with a tabular model is scored exactly (normalised return against the optimal and the
uniform-random policy of the same episodes); any other world by the composed policy's return
with a 95% confidence interval. Only the world's capabilities are asked for, never its class.
"""

from __future__ import annotations

from pathlib import Path

import torch

from agents.skill_machine import SkillMachineAgent
from agents.soft_q import MultiHeadSoftQ
from agents.training import build, build_world
from composable_rl import expressions
from composable_rl.boolean_tasks import boolean_tasks
from composable_rl.checkpoint import latest_checkpoint, load_checkpoint, load_meta
from composable_rl.config import Config, from_dict
from composable_rl.evaluation import episode_returns, evaluate, mean_ci
from composable_rl.registry import world_entry
from composable_rl.reward_machine import RewardMachine
from composable_rl.world import BOUND_HEADS, GoalWorld, LabelledWorld, TabularWorld, World


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
    world, agent = build(cfg)
    goal_names = getattr(world, "goal_names", [])
    load_checkpoint(checkpoint, agent, head_names=world.head_names, goal_names=goal_names)
    agent.eval()
    return cfg, world, agent


def composed_policy(agent: MultiHeadSoftQ, expr: expressions.Expr):
    """Greedy policy on the composed values: argmax_a (max_g for world-value heads)."""

    def policy(obs: torch.Tensor, _weights: torch.Tensor) -> torch.Tensor:
        q = agent.online(obs)
        heads = {name: q[:, k] for k, name in enumerate(agent.head_names)}
        bounds = (heads["MAX"], heads["MIN"]) if "MAX" in heads else None
        values = expressions.evaluate(expr, heads, alpha=agent.cfg.alpha, bounds=bounds)
        return (values.amax(1) if agent.num_goals else values).argmax(-1)

    return policy


def task_reward(expr: expressions.Expr, world: World) -> dict[str, torch.Tensor]:
    """The task's reward for the evaluator: linear weights, or per-goal rewards if Boolean."""
    names = world.head_names
    if expressions.is_linear(expr):
        basis = torch.eye(len(names))
        return {"weights": expressions.evaluate(expr, dict(zip(names, basis, strict=True)))}
    if not (isinstance(world, GoalWorld) and world.goal_names):
        raise ValueError("Boolean tasks need a world that declares goals; use a weighted sum")
    truth = world.goal_membership.float().T.cpu()
    goals = len(world.goal_names)
    ones, zeros = torch.ones(goals), torch.zeros(goals)
    holds = expressions.evaluate(expr, dict(zip(names, truth, strict=True)), bounds=(ones, zeros))
    return {"goal_rewards": torch.where(holds > 0.5, world.r_max, world.r_min)}


def evaluate_task(
    cfg: Config, world: World, agent: MultiHeadSoftQ, text: str, episodes: int, seed: int
) -> dict:
    """One result row: the composed policy's return, beside the exact oracle's where the world
    has a tabular model, else with a 95% confidence interval."""
    expr = expressions.parse(text)
    reward = task_reward(expr, world)
    policy = composed_policy(agent, expr)
    if isinstance(world, TabularWorld):
        result = evaluate(build_world(cfg, episodes), policy, seed=seed, **reward)
        return {"task": text, **result}
    if "weights" not in reward:
        raise ValueError(f"{text!r}: a Boolean task needs a world with a tabular model")
    returns = episode_returns(build_world(cfg, episodes), policy, reward["weights"], seed)
    mean, half = mean_ci(returns @ reward["weights"].to(returns))
    return {"task": text, "return": mean, "ci95": half, "episodes": episodes}


def all_boolean_tasks(world: World) -> list[str]:
    """Every distinct Boolean task over the base heads (not MAX and MIN), as expressions."""
    if not (isinstance(world, GoalWorld) and world.goal_names):
        raise ValueError("Boolean tasks need a world that declares goals")
    base = [k for k, name in enumerate(world.head_names) if name not in BOUND_HEADS]
    names = [world.head_names[k] for k in base]
    return [text for text, _ in boolean_tasks(names, world.goal_membership[:, base])]


def skill_machine(
    world: World, agent: MultiHeadSoftQ, machine: RewardMachine, plan: bool
) -> SkillMachineAgent:
    """The skill machine of a reward machine over a labelled world's proposition heads."""
    if not isinstance(world, LabelledWorld) or not agent.num_goals:
        raise ValueError(
            "temporal tasks need a checkpoint of a world that labels its goals with "
            "propositions (e.g. office), trained with world-value heads"
        )
    return SkillMachineAgent(
        agent,
        machine,
        world.alphabet,
        world.goal_labels,
        world.goal_membership,
        world.goal_observations(),
        world.step_reward,
        world.r_max,
        world.r_min,
        plan=plan,
    )


def evaluate_temporal_task(
    cfg: Config,
    world: World,
    agent: MultiHeadSoftQ,
    task: str,
    episodes: int,
    seed: int,
    plan: bool = True,
) -> list[dict]:
    """The world's temporal evaluation of a skill machine for `task` (LTL or machine file)."""
    entry = world_entry(cfg.env.name)
    if entry.evaluate_temporal is None:
        raise ValueError(f"the {cfg.env.name} world runs no temporal tasks")

    def make_policy(machine: RewardMachine):
        return skill_machine(world, agent, machine, plan).act

    return entry.evaluate_temporal(cfg.env, task, make_policy, episodes, seed, cfg.device)
