"""What a run saves beside its weights and optimizers so that a resumed run continues exactly
(replay, behaviour tasks, random-number states, the loop's tensors, open episodes), and
finding the checkpoint to resume from."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from agents.heads import HeadsAgent
from composable_rl.config import ConfigError
from composable_rl.replay import TensorReplay
from composable_rl.run.checkpoint import (
    CheckpointFormatError,
    checkpoints,
    load_checkpoint,
    load_run_state,
)
from composable_rl.tasks import TaskStream
from composable_rl.world import ResumableWorld, World


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` with names `prefix.name` (one flat safetensors namespace per run state)."""
    return {f"{prefix}.{name}": value for name, value in tensors.items()}


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of `state` named `prefix.name`, by `name`."""
    return {
        name.removeprefix(f"{prefix}."): v
        for name, v in state.items()
        if name.startswith(f"{prefix}.")
    }


def run_state(
    world: World,
    replay: TensorReplay,
    tasks: TaskStream,
    gen: torch.Generator,
    loop: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Everything besides weights and optimizer that a resumed run needs to continue exactly:
    replay, behaviour tasks, random-number states, the loop's tensors and the open episodes
    (where the world can save them)."""
    state = {
        **_prefixed("loop", loop),
        **_prefixed("replay", replay.state_dict()),
        **_prefixed("tasks", tasks.state_dict()),
        "rng.generator": gen.get_state(),
        "rng.torch": torch.get_rng_state(),
    }
    if isinstance(world, ResumableWorld):
        state.update(_prefixed("world", world.state_dict()))
    return state


def restore_run_state(
    state: dict[str, torch.Tensor],
    world: World,
    replay: TensorReplay,
    tasks: TaskStream,
    gen: torch.Generator,
) -> dict[str, torch.Tensor] | None:
    """Put a `run_state` back; returns the loop's tensors, or None when the world could not save
    its episodes (the run then continues from fresh ones, with replay and generators restored)."""
    try:
        replay.load_state_dict(_part(state, "replay"))
        tasks.load_state_dict(_part(state, "tasks"))
        gen.set_state(state["rng.generator"])
        torch.set_rng_state(state["rng.torch"])
        episodes = _part(state, "world")
        if not (episodes and isinstance(world, ResumableWorld)):
            return None
        world.load_state_dict(episodes)
    except (KeyError, ValueError, RuntimeError) as err:
        raise ConfigError(f"the saved run state does not fit this config: {err}") from err
    device = replay.device
    return {name: value.to(device) for name, value in _part(state, "loop").items()}


def resume_checkpoint(
    run_dir: Path, agent: HeadsAgent, goal_names: list[str]
) -> tuple[Path, dict, dict[str, torch.Tensor] | None]:
    """Load the newest usable checkpoint of `run_dir` into `agent` and its optimizers,
    skipping damaged ones with a warning; returns its path, meta and saved run state (None if
    saved without one)."""
    found = checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(f"no checkpoint to resume from under {run_dir}/checkpoints")
    for path in found:
        try:
            meta = load_checkpoint(
                path, agent, agent.optimizers, head_names=agent.head_names, goal_names=goal_names
            )
            return path, meta, load_run_state(path)
        except CheckpointFormatError as err:
            print(f"warning: skipping damaged checkpoint {path}: {err}", file=sys.stderr)
    raise FileNotFoundError(f"no usable checkpoint under {run_dir}/checkpoints (all damaged)")
