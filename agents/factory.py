"""Learners by head type: each entry says which actions its heads learn and builds a fresh
learner for a world from a config (`agent.heads` picks the entry, `agent.<section>` holds its
own keys). Training, composition, experiments and the bench build their worlds and agents here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import count
from typing import Any

import torch

from agents import soft_q, successor, world_value_actor_critic
from agents.heads import HeadsAgent
from composable_rl.config import Config, ConfigError
from composable_rl.registry import make_world
from composable_rl.world import World

# (config, world, resolved encoder "mlp" or "cnn", width of index observations or 0) -> learner
Builder = Callable[[Config, World, str, int], HeadsAgent]
DISCRETE = {"tasks.epsilon_start": 1.0, "tasks.epsilon_end": 0.05, "agent.tau": 1.0}
TARGET_STEPS = 500  # environment steps between hard target copies, for a null target_period
MIN_UPDATES = 1_000  # fewer updates than this in a run get a warning
# Default share of uniformly acting env slots for world-value actor-critic heads: their actors
# follow their own values, so goals they undervalue would otherwise never be reached again.
WANDERING_SLOTS = 0.25
# Steps of the vector world from which `device_graphs: auto` compiles its step: compiling costs
# 5-20 s on two CPU cores and saves 0.2-0.5 ms a step in training (docs/speed.md).
AUTO_GRAPH_STEPS = 100_000


@dataclass(frozen=True)
class HeadType:
    """One kind of multi-head learner.

    continuous: whether its heads learn box actions (else a finite set of actions).
    section: the key of its own section under `agent` (None: the common keys only).
    build: a fresh learner for a world.
    defaults: the values of keys left null (dotted names, e.g. agent.tau).
    """

    continuous: bool
    section: str | None
    build: Builder
    defaults: Mapping[str, Any]


HEAD_TYPES: dict[str, HeadType] = {
    "soft_q": HeadType(False, None, soft_q.build, DISCRETE),
    "successor_features": HeadType(False, "successor", successor.build, DISCRETE),
    "soft_actor_critic": HeadType(
        True,
        "sac",
        world_value_actor_critic.build,
        {"tasks.epsilon_start": 0.0, "tasks.epsilon_end": 0.0, "agent.tau": 0.005},
    ),
}


def head_type(cfg: Config) -> HeadType:
    """The entry of `agent.heads`."""
    return HEAD_TYPES[cfg.agent.heads]


def check_device(device: str) -> None:
    """Refuse a `device` this machine lacks (no CUDA, another GPU index, a backend this torch
    build does not have) before anything is built on it."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        msg = f"device: {device!r} is not a torch device (cpu, cuda, ...)"
        raise ConfigError(msg, "device") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device: {device}, but this torch build ({torch.__version__}) sees no CUDA device "
            "(train with device: cpu; evaluate a GPU run with zero_shot.py --device cpu)",
            "device",
        )
    try:
        torch.empty(1, device=device)
    except (RuntimeError, NotImplementedError, AssertionError) as err:
        reason = (str(err).strip() or type(err).__name__).splitlines()[0].split(". ")[0]
        raise ConfigError(f"device: {device} cannot be used here ({reason})", "device") from None


def build_world(cfg: Config, num_envs: int | None = None) -> World:
    """The world of `cfg.env` (num_envs defaults to the section's) on `cfg.device`; a device
    this machine lacks, or a constructor's refusal of a value, is a ConfigError naming it."""
    check_device(cfg.device)
    try:
        return make_world(cfg.env, num_envs, cfg.device)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"env ({cfg.env.name}): {err}", "env") from err


def resolve_encoder(cfg: Config, world: World) -> tuple[str, int]:
    """The encoder `agent.encoder` names for the world's observations ("auto": cnn for images,
    else mlp) and the width of its index observations (0 for others)."""
    spec = world.observation_spec
    encoder = cfg.agent.encoder
    if encoder == "auto":
        encoder = "cnn" if spec.kind == "image" else "mlp"
    if encoder == "cnn" and spec.kind != "image":
        raise ConfigError(
            f"agent.encoder: cnn needs image observations, the world gives {spec.kind} {spec.shape}"
        )
    return encoder, spec.num_features if spec.kind == "indices" else 0


def _replaced(section: Any, values: Mapping[str, Any]) -> Any:
    """`section` with the null fields named in `values` (dotted within it) set to them."""
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name, _, rest = key.partition(".")
        if rest:
            changes[name] = _replaced(changes.get(name, getattr(section, name)), {rest: value})
        elif getattr(section, name) is None:
            changes[name] = value
    return dataclasses.replace(section, **changes)


def resolve(cfg: Config, world: World) -> Config:
    """`cfg` with every null key that has a default filled in: the head type's defaults, one
    update per step of the vector env (replay.replay_ratio), the target period (every update
    for Polyak averaging, else the updates of about TARGET_STEPS environment steps) and the
    uniformly acting slots (WANDERING_SLOTS for world-value actor-critic heads, else none);
    and `device_graphs: auto` as true or false (`compiles_step`)."""
    cfg = _replaced(cfg, head_type(cfg).defaults)
    wander = WANDERING_SLOTS if head_type(cfg).continuous and cfg.agent.world_values else 0.0
    cfg = _replaced(cfg, {"tasks.uniform_slots": wander})
    ratio = cfg.replay.batch_size / world.num_envs
    cfg = _replaced(cfg, {"replay.replay_ratio": ratio})
    updates_per_step = cfg.replay.replay_ratio / cfg.replay.batch_size
    period = 1 if cfg.agent.tau < 1 else max(1, round(TARGET_STEPS * updates_per_step))
    cfg = _replaced(cfg, {"agent.target_period": period})
    return dataclasses.replace(cfg, device_graphs=compiles_step(cfg, world))


def compiles_step(cfg: Config, world: World) -> bool:
    """Whether the run compiles its world's step: `device_graphs` where it is true or false;
    for auto, where the world's step is worth compiling (`capturable`) and the run steps the
    world at least AUTO_GRAPH_STEPS times, so that compiling pays for itself."""
    if cfg.device_graphs != "auto":
        return bool(cfg.device_graphs)
    steps = -(-cfg.total_steps // world.num_envs)
    return getattr(world, "capturable", True) and steps >= AUTO_GRAPH_STEPS


def schedule_warnings(cfg: Config) -> list[str]:
    """Warnings, naming the keys, for a resolved config that can hardly learn: fewer than
    MIN_UPDATES updates in the run, or a target network that would never be updated."""
    r = cfg.replay
    updates = max(0, cfg.total_steps - min(r.learning_starts, r.capacity)) * r.replay_ratio
    updates = int(updates / r.batch_size)
    keys = (
        f"total_steps {cfg.total_steps:,}, replay.learning_starts {r.learning_starts:,}, "
        f"replay.replay_ratio {r.replay_ratio:g}, replay.batch_size {r.batch_size}"
    )
    found = []
    if updates < MIN_UPDATES:
        found.append(
            f"warning: this run makes about {updates:,} updates ({keys}): too few to learn "
            f"much; raise replay.replay_ratio or total_steps"
        )
    if updates < cfg.agent.target_period:
        found.append(
            f"warning: the target network would never be updated: agent.target_period is "
            f"{cfg.agent.target_period:,} updates and this run makes about {updates:,} ({keys}); "
            "lower agent.target_period, or leave it null"
        )
    return found


def wandering_slots(cfg: Config, num_envs: int) -> int:
    """How many of the first training slots act uniformly at random (`tasks.uniform_slots`)."""
    return round((cfg.tasks.uniform_slots or 0.0) * num_envs)


def goal_warnings(cfg: Config, world: World) -> list[str]:
    """A warning, naming the keys, where world-value actor-critic heads would train with goals
    that no slot seeks: slot i seeks goal i mod G, and the first slots act uniformly."""
    goals = list(getattr(world, "goal_names", []))
    if not (head_type(cfg).continuous and cfg.agent.world_values and goals):
        return []
    n = world.num_envs
    sought = {i % len(goals) for i in range(wandering_slots(cfg, n), n)}
    missing = [name for g, name in enumerate(goals) if g not in sought]
    if not missing:
        return []
    if (cfg.tasks.uniform_slots or 0.0) >= 1.0:
        advice = "lower tasks.uniform_slots below 1"
    else:  # the seeking slots grow with num_envs, so some count is enough
        enough = next(m for m in count(n) if m - wandering_slots(cfg, m) >= len(goals))
        advice = f"raise env.num_envs to at least {enough}"
    return [
        f"warning: no training slot seeks the goals {missing} (env.num_envs {n}, of which "
        f"tasks.uniform_slots {cfg.tasks.uniform_slots:g} act uniformly; slot i seeks goal i "
        f"mod {len(goals)}): their world values may never learn; {advice}"
    ]


def build_agent(cfg: Config, world: World) -> HeadsAgent:
    """A fresh learner of `agent.heads` for `world`, on `cfg.device` (its null keys resolved
    as `resolve` does); a head type that does not learn the world's kind of actions is a
    ConfigError naming both."""
    entry = head_type(cfg)
    kind = "box" if entry.continuous else "discrete"
    if world.action_spec.continuous != entry.continuous:
        fits = [name for name, e in HEAD_TYPES.items() if e.continuous != entry.continuous]
        raise ConfigError(
            f"agent.heads: {cfg.agent.heads} heads learn {kind} actions, but the "
            f"{cfg.env.name} world's actions are {world.action_spec.kind}; use "
            f"{' or '.join(fits)}",
            "agent.heads",
        )
    fixed = cfg.tasks.fixed_weights
    if fixed is not None and len(fixed) != len(world.head_names):
        raise ConfigError(
            f"tasks.fixed_weights: need one weight per head {world.head_names}, got {fixed}"
        )
    cfg = resolve(cfg, world)
    return entry.build(cfg, world, *resolve_encoder(cfg, world)).to(cfg.device)


def build(cfg: Config) -> tuple[World, HeadsAgent]:
    """The batched training world and a fresh agent whose heads match the world's rewards."""
    world = build_world(cfg)
    return world, build_agent(cfg, world)
