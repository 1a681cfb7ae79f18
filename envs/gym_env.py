"""Gymnasium faces of the batched worlds (N = 1, same engine); MO-Gymnasium's LinearReward
turns their vector reward into a scalar one."""

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from envs.gridworld import NUM_ACTIONS
from envs.object_rooms import ObjectRooms
from envs.office import OfficeWorld


def engine_seed(seed: int) -> int:
    """The int64 key the batched engine draws with for a Gymnasium seed (any int >= 0).

    A seed below 2**64 keeps its 64 bits (read as a signed int64 from 2**63 on, as torch reads
    it); a larger one, which an int64 cannot hold, is hashed to 64 bits by numpy's SeedSequence,
    as Gymnasium hashes every seed, so that it plays its own episodes instead of overflowing.
    """
    if seed >= 2**64:
        seed = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
    return seed - 2**64 if seed >= 2**63 else seed


class ObjectRoomsEnv(gym.Env):
    """One object-rooms env with a [K] vector reward (MO-Gymnasium convention) and no auto-reset.

    reset(seed=s) starts the episodes of seed s; a later reset() continues with that seed's next
    episode, so the episode sequence equals that of slot i of a batched engine seeded s - i
    (for s < 2**64: `engine_seed` hashes larger seeds).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}
    world_class: type = ObjectRooms

    def __init__(self, render_mode: str | None = None, **world_kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.world = self.world_class(num_envs=1, **world_kwargs)
        if self.world.observation == "planes":
            self.observation_space = spaces.Box(0, 1, self.world.obs_shape, np.uint8)
        else:
            shape = self.world.obs_shape
            self.observation_space = spaces.MultiDiscrete(np.full(shape, self.world.num_features))
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        low, high = self.reward_bounds()
        shape = (len(self.world.head_names),)
        self.reward_space = spaces.Box(low=low, high=high, shape=shape, dtype=np.float32)
        self._seeded = False

    def reward_bounds(self) -> tuple[float, float]:
        """Lowest and highest value of any reward component."""
        w = self.world
        return min(w.r_min, w.step_reward), max(w.r_max, w.step_reward)

    def _obs(self) -> np.ndarray:
        """Fresh observation of the current state (planes or indices)."""
        return self.world.observe(self.world.agent, self.world.objects)[0].cpu().numpy().copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start episode 0 of `seed`, or the next episode of the current seed when seed is None;
        a negative or non-int seed raises Gymnasium's error."""
        super().reset(seed=seed)
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(2**31))
        if seed is None:
            self.world.start_episodes(torch.ones(1, dtype=torch.bool, device=self.world.device))
        else:
            self.world.reset(engine_seed(seed))
            self._seeded = True
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        """Move once; the returned obs is the state reached (no auto-reset)."""
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}; expected an int in [0, {NUM_ACTIONS})")
        actions = torch.full((1,), int(action), dtype=torch.long, device=self.world.device)
        reward, terminated, truncated, goal = self.world.advance(actions)
        vector = reward[0].cpu().numpy().astype(np.float32, copy=True)
        info = {"goal": int(goal[0])}
        return self._obs(), vector, bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray:
        """uint8 RGB array of the current state."""
        return self.world.render_rgb(0)


class OfficeEnv(ObjectRoomsEnv):
    """One Office world (primitive tasks: episodes end on a labelled cell); info['propositions']
    holds the propositions true in the state reached, as reward machines read them."""

    world_class = OfficeWorld

    def step(self, action: int) -> tuple[np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        """Move once; adds the true propositions of the new cell to info."""
        obs, reward, terminated, truncated, info = super().step(action)
        label = int(self.world.labels(self.world.agent)[0])
        info["propositions"] = sorted(self.world.alphabet[label])
        return obs, reward, terminated, truncated, info
