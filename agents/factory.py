"""Learners by head type: each entry says which actions its heads learn and builds a fresh
learner for a world from a config (`agent.heads` picks the entry, `agent.<section>` holds its
own keys). Training, composition, experiments and the bench build their worlds and agents here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agents import soft_actor_critic, soft_q, successor
from agents.heads import HeadsAgent
from composable_rl.config import Config, ConfigError
from composable_rl.registry import make_world
from composable_rl.world import World

# (config, world, resolved encoder "mlp" or "cnn", width of index observations or 0) -> learner
Builder = Callable[[Config, World, str, int], HeadsAgent]


@dataclass(frozen=True)
class HeadType:
    """One kind of multi-head learner.

    continuous: whether its heads learn box actions (else a finite set of actions).
    section: the key of its own section under `agent` (None: the common keys only).
    build: a fresh learner for a world.
    epsilon: its default (start, end) chance of a uniform action during training, for
        `tasks.epsilon_start` / `tasks.epsilon_end` left null.
    """

    continuous: bool
    section: str | None
    build: Builder
    epsilon: tuple[float, float] = (1.0, 0.05)


HEAD_TYPES: dict[str, HeadType] = {
    "soft_q": HeadType(False, None, soft_q.build),
    "successor_features": HeadType(False, "successor", successor.build),
    "soft_actor_critic": HeadType(True, "sac", soft_actor_critic.build, epsilon=(0.0, 0.0)),
}


def head_type(cfg: Config) -> HeadType:
    """The entry of `agent.heads`."""
    return HEAD_TYPES[cfg.agent.heads]


def build_world(cfg: Config, num_envs: int | None = None) -> World:
    """The world of `cfg.env` (num_envs defaults to the section's); a constructor's refusal of
    a value becomes a ConfigError naming the env section."""
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


def build_agent(cfg: Config, world: World) -> HeadsAgent:
    """A fresh learner of `agent.heads` for `world`, on `cfg.device`; a head type that does
    not learn the world's kind of actions is a ConfigError naming both."""
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
    return entry.build(cfg, world, *resolve_encoder(cfg, world)).to(cfg.device)


def build(cfg: Config) -> tuple[World, HeadsAgent]:
    """The batched training world and a fresh agent whose heads match the world's rewards."""
    world = build_world(cfg)
    return world, build_agent(cfg, world)
