"""A world written outside `envs/`, as a user would in their own package: a batched 1-D
corridor with goals at both ends, its config section, and its registration under "corridor".

Configs name it by import path, `env.name: tests.corridor_world:corridor`, which imports this
module (and so registers the world) before the name is looked up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch import Tensor

from composable_rl.config import WorldConfig, doc
from composable_rl.maths.oracle import TabularMDP
from composable_rl.registry import register_world
from composable_rl.world import ActionSpec, ObservationSpec


class Corridor:
    """A 1-D corridor of `length` cells: action 0 steps left, 1 right; episodes start inside and
    end at either end (goal g pays head g), or are truncated after max_steps steps."""

    def __init__(
        self, num_envs: int = 4, length: int = 5, max_steps: int = 3, device: str = "cpu"
    ) -> None:
        """A corridor with num_envs slots."""
        self.num_envs, self.length = num_envs, length
        self.device = torch.device(device)
        self.observation_spec = ObservationSpec((1,), torch.long, "indices", length)
        self.action_spec = ActionSpec.discrete(2)
        self.head_names = ["left", "right"]
        self.goal_names = ["left", "right"]
        self.goal_membership = torch.eye(2, dtype=torch.bool, device=self.device)
        self.r_max, self.r_min, self.step_reward = 1.0, -1.0, -0.1
        self.num_states = length
        self.goal_slots = None
        self.max_steps = max_steps
        self.alphabet = [frozenset(), frozenset({"l"}), frozenset({"r"})]
        self.goal_labels = torch.tensor([1, 2], device=self.device)
        self.cell = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.rng = torch.Generator(self.device)

    def reset(self, seed: int = 0) -> Tensor:
        """Seed the corridor and start every slot on a random inner cell."""
        self.rng.manual_seed(seed)
        self._start(torch.ones(self.num_envs, dtype=torch.bool))
        return self.cell[:, None].clone()

    def _start(self, mask: Tensor) -> None:
        """Begin new episodes on the slots of `mask`."""
        size, device = (self.num_envs,), self.cell.device
        starts = torch.randint(1, self.length - 1, size, generator=self.rng, device=device)
        self.cell = torch.where(mask, starts, self.cell)
        self.t = torch.where(mask, 0, self.t)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Move every slot one cell, pay the goal rewards and restart finished slots."""
        self.cell = (self.cell + 2 * actions - 1).clamp(0, self.length - 1)
        self.t += 1
        goal = torch.where(self.cell == 0, 0, torch.where(self.cell == self.length - 1, 1, -1))
        terminated = goal >= 0
        truncated = (self.t >= self.max_steps) & ~terminated
        paid = torch.where(self.goal_membership[goal.clamp(min=0)], self.r_max, self.r_min)
        reward = torch.where(terminated[:, None], paid, self.step_reward).float()
        final_obs = self.cell[:, None].clone()
        self._start(terminated | truncated)
        info = {"final_obs": final_obs, "goal": goal}
        return self.cell[:, None].clone(), reward, terminated, truncated, info

    def tabular_episodes(self) -> tuple[TabularMDP, Tensor, Tensor]:
        """The corridor as one deterministic layout, every slot from its current cell."""
        cells = torch.arange(self.length, device=self.cell.device)
        last = self.length - 1
        next_state = torch.stack([(cells - 1).clamp(min=0), (cells + 1).clamp(max=last)], 1)
        goal = torch.where(next_state == 0, 0, torch.where(next_state == self.length - 1, 1, -1))
        paid = torch.where(self.goal_membership[goal.clamp(min=0)], self.r_max, self.r_min)
        reward = torch.where((goal >= 0)[..., None], paid, self.step_reward).double()
        mdp = TabularMDP(
            next_state=next_state[None],
            reward=reward[None],
            terminal=(goal >= 0)[None],
            goal=goal[None],
            valid=torch.ones(1, self.length, dtype=torch.bool, device=self.cell.device),
        )
        return mdp, torch.zeros_like(self.cell), self.cell.clone()

    def goal_observations(self) -> Tensor:
        """The observation of standing on each goal cell."""
        return torch.tensor([[0], [self.length - 1]], device=self.cell.device)


@dataclasses.dataclass
class CorridorConfig(WorldConfig):
    """corridor: a 1-D corridor with goals "left" and "right" at its two ends."""

    name: str = doc("tests.corridor_world:corridor", "This world, by import path.")
    length: int = doc(7, "Cells of the corridor, ends included.", ge=3)
    max_steps: int = doc(20, "Steps before an episode is truncated.", ge=1)
    broken: bool = doc(False, "Pay a third reward column that no head names (for the tests).")

    def problems(self) -> Iterator[tuple[str, str]]:
        """No cross-field rules: every field is checked by its own bounds."""
        return iter(())


class BrokenCorridor(Corridor):
    """A corridor whose reward is one column wider than its head names."""

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """The corridor's step with an extra zero reward column."""
        obs, reward, terminated, truncated, info = super().step(actions)
        return obs, torch.cat([reward, reward[:, :1] * 0], 1), terminated, truncated, info


def make_corridor(section: CorridorConfig, num_envs: int, device: str) -> Corridor:
    """The corridor of a config section."""
    world = BrokenCorridor if section.broken else Corridor
    return world(num_envs, section.length, section.max_steps, device)


register_world("corridor", CorridorConfig, make_corridor)
