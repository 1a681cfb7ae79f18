"""Zero-shot composition from a checkpoint: linear and Boolean tasks over its heads, and
temporal tasks run by skill machines, each scored by the best evaluation its world offers.

A world with a tabular model is scored exactly (normalised return against the optimal and the
uniform-random policy of the same episodes); any other world by the composed policy's return
with a 95% confidence interval. Only the world's capabilities are asked for, never its class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch

from agents.component_rule import rule_machine_policy, rule_policy
from agents.factory import build, build_world
from agents.heads import Compose, HeadsAgent
from agents.skill_machine import SkillMachineAgent
from composable_rl.config import Config, with_overrides
from composable_rl.evaluation import episode_returns, evaluate, mean_ci, multi_objective_row
from composable_rl.languages import expressions
from composable_rl.languages.boolean_tasks import boolean_tasks
from composable_rl.languages.reward_machine import RewardMachine
from composable_rl.maths.levers import Levers, Quantile, epistemic_gate
from composable_rl.maths.mo_metrics import simplex_lattice
from composable_rl.registry import world_entry
from composable_rl.run.checkpoint import latest_checkpoint, load_checkpoint, load_meta
from composable_rl.world import (
    BOUND_HEADS,
    Act,
    GoalWorld,
    LabelledWorld,
    StepModel,
    TabularWorld,
    World,
)


def resolve(checkpoint: str | Path) -> Path:
    """The checkpoint directory itself, or the latest checkpoint of a run directory."""
    checkpoint = Path(checkpoint)
    if (checkpoint / "meta.json").is_file():
        return checkpoint
    found = latest_checkpoint(checkpoint)
    if found is None:
        raise FileNotFoundError(f"{checkpoint} is neither a checkpoint nor a run directory")
    return found


def load(
    checkpoint: str | Path, env: Sequence[str] = (), device: str | None = None
) -> tuple[Config, World, HeadsAgent]:
    """Config, world and agent restored from a checkpoint (or from a run's latest one); `env`
    (`key=value` items) changes the world's section, e.g. `starts=random`, to test the heads
    where they were not trained (a world whose heads differ is refused); `device` replaces the
    one the run trained on (a GPU run evaluated on a CPU)."""
    checkpoint = resolve(checkpoint)
    overrides = [f"env.{item}" for item in env] + ([f"device={device}"] if device else [])
    cfg = with_overrides(load_meta(checkpoint)["config"], overrides)
    world, agent = build(cfg)
    goal_names = getattr(world, "goal_names", [])
    load_checkpoint(checkpoint, agent, head_names=world.head_names, goal_names=goal_names)
    agent.eval()
    return cfg, world, agent


def linear_weights(expr: expressions.Expr, head_names: list[str]) -> torch.Tensor:
    """The weights [K] of a linear expression over the heads (e.g. 0.5*blue - square); a
    constant term (`blue + 1`) shifts every value alike, so it carries no weight."""
    basis = dict(zip(head_names, torch.eye(len(head_names)), strict=True))
    zeros = {name: torch.zeros(len(head_names)) for name in head_names}
    return expressions.evaluate(expr, basis) - expressions.evaluate(expr, zeros)


def composed_policy(
    agent: HeadsAgent,
    expr: expressions.Expr,
    quantile: Quantile | None = None,
    seed: int = 0,
    levers: Levers | None = None,
    world: World | None = None,
) -> Act:
    """Greedy policy on the composed values: argmax_a (max_g for world-value heads), or the
    `quantile` quantiliser of them (drawing from a generator seeded with `seed`; greedy acting
    draws its candidates, where it has any, as the final evaluation does). A linear task
    acts on the agent's linear composition (GPI over successor features where it has them);
    any other expression, or any `levers` (with `world`'s no-op action and continuing heads),
    composes the heads' own values."""
    device = next(agent.parameters()).device
    options: dict = {"alpha": 0.0}
    if quantile is not None:
        quantile.base_index(agent.head_names)  # an unknown base head is refused before acting
        generator = torch.Generator(device=device).manual_seed(seed)
        options.update(quantile=quantile, generator=generator)
    steer, noop = None, getattr(world, "noop_action", None)
    if levers is not None and levers.active:
        if agent.num_goals or agent.successor_features:
            raise ValueError("the levers act on plain soft-Q or soft actor-critic heads' values")
        steer = levers.bind(agent.head_names, noop, getattr(world, "continuing_heads", ()))
        if levers.epistemic and getattr(agent, "members", 1) < 2:
            raise ValueError(
                "epistemic gate: it reads the disagreement of an ensemble's members; this "
                "checkpoint has one (train soft_q heads with agent.ensemble: 5, say)"
            )
    if expressions.is_linear(expr) and steer is None:
        weights = linear_weights(expr, agent.head_names).to(device)
        return lambda obs, _context: agent.act(obs, weights, **options)

    composed = head_composition(agent, expr)

    def compose(q: torch.Tensor) -> torch.Tensor:
        values = composed(q)
        return values if steer is None else steer(q, values)

    if steer is None or not levers.epistemic:
        return lambda obs, _context: agent.act_on(obs, compose, **options)

    def gated(obs: torch.Tensor, _context: torch.Tensor) -> torch.Tensor:
        members = agent.member_values(obs)  # [N, E, K, A]: each member's task values too
        n, e = members.shape[:2]
        own = compose(members.flatten(0, 1)).unflatten(0, (n, e))
        return agent.act_on(
            obs, lambda q: epistemic_gate(compose(q), own, noop, levers.epistemic), **options
        )

    return gated


def head_composition(agent: HeadsAgent, expr: expressions.Expr) -> Compose:
    """The expression's values from the heads' ([N, K, ...] -> [N, ...]): linear weights,
    AND / OR / NOT (NOT over the bound heads MAX and MIN where the agent has them)."""

    def compose(q: torch.Tensor) -> torch.Tensor:
        heads = {name: q[:, k] for k, name in enumerate(agent.head_names)}
        bounds = (heads["MAX"], heads["MIN"]) if "MAX" in heads else None
        return expressions.evaluate(expr, heads, alpha=agent.cfg.alpha, bounds=bounds)

    return compose


def task_reward(expr: expressions.Expr, world: World) -> dict[str, torch.Tensor]:
    """The task's reward for the evaluator: linear weights, or per-goal rewards if Boolean."""
    names = world.head_names
    if expressions.is_linear(expr):
        return {"weights": linear_weights(expr, names)}
    return goal_task(expr, world)


def goal_task(expr: expressions.Expr, world: World) -> dict[str, torch.Tensor]:
    """The per-goal rewards of a Boolean task: r_max at the goals that satisfy it, else r_min."""
    names = world.head_names
    if not (isinstance(world, GoalWorld) and world.goal_names):
        raise ValueError("Boolean tasks need a world that declares goals; use a weighted sum")
    truth = world.goal_membership.float().T.cpu()
    goals = len(world.goal_names)
    ones, zeros = torch.ones(goals), torch.zeros(goals)
    holds = expressions.evaluate(expr, dict(zip(names, truth, strict=True)), bounds=(ones, zeros))
    return {"goal_rewards": torch.where(holds > 0.5, world.r_max, world.r_min)}


def evaluate_task(
    cfg: Config,
    world: World,
    agent: HeadsAgent,
    text: str,
    episodes: int,
    seed: int,
    rule: bool = False,
    quantile: Quantile | None = None,
    levers: Levers | None = None,
    policy: Act | None = None,
) -> dict:
    """One result row: the composed policy's return, beside the exact oracle's where the world
    has a tabular model or scores goal tasks itself, else with a 95% confidence interval.
    `rule`: the component-action rule acts instead (`component_rule`, Boolean tasks);
    `quantile`: the quantiliser of the composed values acts (the row names its q); `levers`
    steer the composed values (impact penalty, shield, robust acting); `policy`: this policy
    acts instead (a distilled actor, say), scored on the same task."""
    if rule and quantile is not None:
        raise ValueError("the component-action rule does not quantilise; score it without q")
    expr = expressions.parse(text)
    score_goals = world_entry(cfg.env.name).score_goals
    # a lone head is a Boolean task too, where the world scores goal tasks
    lone = score_goals is not None and isinstance(expr, expressions.Head)
    reward = goal_task(expr, world) if lone else task_reward(expr, world)
    if policy is None:
        policy = (
            rule_policy(agent, expr)
            if rule
            else composed_policy(agent, expr, quantile, seed, levers, world)
        )
    head = {"task": text} if quantile is None else {"task": text, "quantile": quantile.q}
    if isinstance(world, TabularWorld):
        return {**head, **evaluate(build_world(cfg, episodes), policy, seed=seed, **reward)}
    if "goal_rewards" in reward and score_goals is not None:
        row = score_goals(cfg.env, policy, reward["goal_rewards"], episodes, seed, cfg.device)
        return {**head, **row}
    if "weights" not in reward:
        raise ValueError(f"{text!r}: a Boolean task needs a world with an exact oracle")
    returns = episode_returns(build_world(cfg, episodes), policy, reward["weights"], seed)
    mean, half = mean_ci(returns @ reward["weights"].to(returns))
    return {**head, "return": mean, "ci95": half, "episodes": episodes}


def weights_task(weights: list[float], head_names: list[str]) -> str:
    """The linear task of one weight per head (or per base head, leaving out MAX and MIN) as an
    expression, e.g. [0.5, 0, -1] over heads a, b, c -> 0.5*a - 1*c."""
    base = [name for name in head_names if name not in BOUND_HEADS]
    names = base if len(weights) == len(base) else head_names
    if len(weights) != len(names):
        heads = f"the {len(base)} heads {base}"
        if len(base) < len(head_names):
            heads += f" (or all {len(head_names)} heads {head_names})"
        raise ValueError(f"--weights: {len(weights)} values for {heads}")
    text = ""
    for w, name in zip(weights, names, strict=True):
        if w:
            sign = "-" if w < 0 else "+"
            text += f" {sign} {abs(w):.12g}*{name}" if text else f"{w:.12g}*{name}"
    return text or f"0*{names[0]}"


def evaluate_multi_objective(
    cfg: Config, agent: HeadsAgent, divisions: int, episodes: int, seed: int
) -> dict:
    """The multi-objective row (expected utility over the simplex lattice of `divisions`, and
    hypervolume / IGD where the world's section configures them) of the composed policies."""
    entry = world_entry(cfg.env.name)
    if hasattr(cfg.env, "mo_divisions") and entry.evaluate is not None:
        section = dataclasses.replace(cfg.env, mo_divisions=divisions)
        rows = entry.evaluate(section, agent.greedy, episodes, cfg.device)
        return next(row for row in rows if row["task"] == "multi-objective")
    world = build_world(cfg, episodes)
    base = [k for k, name in enumerate(world.head_names) if name not in BOUND_HEADS]
    if len(base) < 2:
        raise ValueError(f"multi-objective evaluation needs several heads, got {world.head_names}")
    lattice = simplex_lattice(len(base), divisions)
    weights = lattice.new_zeros(len(lattice), len(world.head_names))
    weights[:, base] = lattice  # the bound heads MAX and MIN are not objectives
    return multi_objective_row(world, agent.greedy, weights, cfg.agent.gamma, seed=seed)


def all_boolean_tasks(world: World) -> list[str]:
    """Every distinct Boolean task over the base heads (not MAX and MIN), as expressions."""
    if not (isinstance(world, GoalWorld) and world.goal_names):
        raise ValueError("Boolean tasks need a world that declares goals")
    base = [k for k, name in enumerate(world.head_names) if name not in BOUND_HEADS]
    names = [world.head_names[k] for k in base]
    return [text for text, _ in boolean_tasks(names, world.goal_membership[:, base])]


def skill_machine(
    world: World,
    agent: HeadsAgent,
    machine: RewardMachine,
    plan: bool,
    quantile: Quantile | None = None,
    shield: bool = False,
) -> SkillMachineAgent:
    """The skill machine of a reward machine over a labelled world's proposition heads (acting
    greedily, or with the `quantile` quantiliser); `shield`: never into a goal whose label fails
    the task while another candidate stays out of one, by the world's step model."""
    if not isinstance(world, LabelledWorld) or not agent.num_goals:
        raise ValueError(
            "temporal tasks need a checkpoint of a world that labels its goals with "
            "propositions (e.g. office), trained with world-value heads"
        )
    if shield and not isinstance(world, StepModel):
        raise ValueError(
            "--model-shield needs a world that knows which goal a step enters "
            "(entered_goals(obs, actions), e.g. point_office); this checkpoint's world has none"
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
        quantile=quantile,
        entered=world.entered_goals if shield else None,
    )


def evaluate_temporal_task(
    cfg: Config,
    world: World,
    agent: HeadsAgent,
    task: str,
    episodes: int,
    seed: int,
    plan: bool = True,
    rule: bool = False,
    quantile: Quantile | None = None,
    shield: bool = False,
) -> list[dict]:
    """The world's temporal evaluation of a skill machine for `task` (LTL or machine file);
    `rule`: the component-action rule runs each machine state's expression instead;
    `quantile`: the skill machine quantilises (the rows name its q); `shield`: the skill
    machine obeys the world's step model (`skill_machine`)."""
    entry = world_entry(cfg.env.name)
    if entry.evaluate_temporal is None:
        raise ValueError(f"the {cfg.env.name} world runs no temporal tasks")
    if rule and quantile is not None:
        raise ValueError("the component-action rule does not quantilise; score it without q")
    if rule and shield:
        raise ValueError("the component-action rule acts as published, without a shield")

    def make_policy(machine: RewardMachine):
        if rule:
            return rule_machine_policy(agent, machine)
        return skill_machine(world, agent, machine, plan, quantile, shield).act

    rows = entry.evaluate_temporal(cfg.env, task, make_policy, episodes, seed, cfg.device)
    if shield:
        rows = [{"task": row["task"], "shield": "model", **row} for row in rows]
    if quantile is None:
        return rows
    return [{"task": row["task"], "quantile": quantile.q, **row} for row in rows]
