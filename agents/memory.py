"""Memory a run will ask for, estimated before anything large is allocated: a run that cannot
fit is refused in one line naming the key that drives it, instead of minutes of allocation and
an allocator's traceback."""

from __future__ import annotations

import math

import torch

from agents.factory import build_world
from composable_rl.config import Config, ConfigError

GIB = 2**30
# Observations of every slot alive at once in a step: the state's, the final ones of finished
# episodes, the next step's and the policy's input.
OBS_COPIES = 4
SLACK = 4  # a run whose replay and observations need under a quarter of the memory passes


def tensor_bytes(obj: object) -> int:
    """Bytes of the tensors among an object's attributes."""
    return sum(
        v.numel() * v.element_size() for v in vars(obj).values() if isinstance(v, torch.Tensor)
    )


def close(world: object) -> None:
    """Release a probe world's resources (worker processes of a Gymnasium vector env)."""
    if callable(closer := getattr(world, "close", None)):
        closer()


def obs_bytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """Bytes of one observation."""
    return math.prod(shape) * torch.empty((), dtype=dtype).element_size()


def replay_bytes(cfg: Config, obs: int, action: int, heads: int) -> int:
    """Bytes of the replay buffer: observation and next observation, action, one reward per
    head, the terminal flag and the goal of every transition."""
    return cfg.replay.capacity * (2 * obs + action + 4 * heads + 1 + 8)


def available_bytes(device: str) -> int | None:
    """Memory that can still be allocated on `device` (a GPU's free memory, or the system's
    available memory), or None where it cannot be read."""
    if torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(cfg: Config) -> None:
    """Refuse a run whose world batch and replay (estimated from a world of one slot, and of
    two where the estimate comes near the limit) need more memory than its device has
    available, naming the larger part's key."""
    free = available_bytes(cfg.device)
    if free is None:
        return
    one = build_world(cfg, 1)
    try:
        spec, actions, heads = one.observation_spec, one.action_spec, len(one.head_names)
        shared = tensor_bytes(one)
    finally:
        close(one)
    per_obs = obs_bytes(spec.shape, spec.dtype)
    stored = obs_bytes(spec.shape, spec.stored_dtype)  # replay keeps index observations as int32
    replay = replay_bytes(cfg, stored, obs_bytes(actions.shape, actions.dtype), heads)
    world = shared + OBS_COPIES * per_obs * cfg.env.num_envs
    if SLACK * (world + replay) <= free:
        return  # far from the limit whatever each slot's state: no second world to build
    two = build_world(cfg, 2)
    try:
        world += max(tensor_bytes(two) - shared, 0) * cfg.env.num_envs
    finally:
        close(two)
    if world + replay <= free:
        return
    key = "env.num_envs" if world >= replay else "replay.capacity"
    raise ConfigError(
        f"{key}: this run would need about {(world + replay) / GIB:,.1f} GiB "
        f"({world / GIB:,.1f} GiB for {cfg.env.num_envs:,} env slots, {replay / GIB:,.1f} GiB "
        f"for a replay of {cfg.replay.capacity:,} transitions), more than the "
        f"{free / GIB:,.1f} GiB available on {cfg.device}; lower {key}",
        key,
    )
