"""Shared grid machinery: ASCII layouts, wall-blocked moves and a counter-based per-slot RNG."""

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral
from typing import Literal

import torch
from torch import Tensor

from composable_rl.config import WorldConfig, doc
from composable_rl.maths.oracle import TabularMDP
from composable_rl.world import ActionSpec, ObservationSpec

LAYOUTS: dict[str, tuple[str, ...]] = {
    "four_rooms": (
        "#############",
        "#.....#.....#",
        "#.....#.....#",
        "#...........#",
        "#.....#.....#",
        "#.....#.....#",
        "##.####.....#",
        "#.....###.###",
        "#.....#.....#",
        "#.....#.....#",
        "#...........#",
        "#.....#.....#",
        "#############",
    ),
    "open5": (
        "#######",
        "#.....#",
        "#.....#",
        "#.....#",
        "#.....#",
        "#.....#",
        "#######",
    ),
}

Seed = int | Sequence[int] | Tensor
NUM_ACTIONS = 4
ACTION_NAMES = ("up", "right", "down", "left")
GRID_ACTIONS = ActionSpec.discrete(NUM_ACTIONS)  # what every gridworld accepts

_MASK32 = 0xFFFFFFFF
_GOLDEN32 = 0x9E3779B9


@dataclasses.dataclass
class GoalRewardsConfig(WorldConfig):
    """Keys shared by the goal-reaching worlds' config sections: episode length and rewards."""

    max_steps: int = doc(50, "Steps before an episode is truncated (bootstrapped).", ge=1)
    r_max: float = doc(2.0, "Terminal reward for reaching a goal the head rewards.")
    r_min: float = doc(-0.1, "Terminal reward for reaching a goal the head does not reward.")
    step_reward: float = doc(-0.1, "Reward for every step that reaches no goal.")
    bound_heads: bool = doc(
        False, "Add heads MAX and MIN (every goal rewarded with r_max / r_min): NOT needs them."
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        if self.r_min >= self.r_max:
            yield "r_min", f"must be below r_max ({self.r_max}), got {self.r_min}"


@dataclasses.dataclass
class GoalGridConfig(GoalRewardsConfig):
    """Keys shared by the goal-reaching gridworlds' config sections."""

    observation: Literal["indices", "planes"] = doc(
        "indices",
        "indices: positions of the ones of the one-hot planes (fast sparse MLP); planes: uint8 "
        "[C, H, W] one-hot planes (read by a CNN).",
    )


def parse_layout(layout: str | Sequence[str]) -> Tensor:
    """Wall mask [H, W] (True = wall) from a layout name in LAYOUTS or a sequence of ASCII rows."""
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; known layouts: {sorted(LAYOUTS)}")
        layout = LAYOUTS[layout]
    rows = list(layout)
    if not rows or not rows[0]:
        raise ValueError("a layout needs at least one non-empty row")
    if any(len(row) != len(rows[0]) for row in rows):
        raise ValueError("all layout rows must have the same length")
    if any(ch not in "#." for row in rows for ch in row):
        raise ValueError("layout rows may only contain '#' (wall) and '.' (free)")
    return torch.tensor([[ch == "#" for ch in row] for row in rows], dtype=torch.bool)


def move_table(walls: Tensor) -> Tensor:
    """`move` of every (cell, action) as one table [H * W, 4]: a step is then one look-up
    `table[cells, actions]` (actions must be 0-3, as the worlds' action spec draws them)."""
    cells = torch.arange(walls.numel(), device=walls.device)[:, None].expand(-1, NUM_ACTIONS)
    actions = torch.arange(NUM_ACTIONS, device=walls.device).expand_as(cells)
    return move(cells.flatten(), actions.flatten(), walls).view(-1, NUM_ACTIONS)


def move(cells: Tensor, actions: Tensor, walls: Tensor) -> Tensor:
    """Flat cells [N] after actions [N] (0 up, 1 right, 2 down, 3 left); walls and edges block."""
    height, width = walls.shape
    d_row = (actions == 2).long() - (actions == 0).long()
    d_col = (actions == 1).long() - (actions == 3).long()
    row = (torch.div(cells, width, rounding_mode="floor") + d_row).clamp(0, height - 1)
    col = (cells % width + d_col).clamp(0, width - 1)
    target = row * width + col
    return torch.where(walls.flatten()[target], cells, target)


def check_names(names: Sequence[str], kind: str) -> list[str]:
    """Validated non-empty list of distinct names (a lone string is one name)."""
    names = [names] if isinstance(names, str) else list(names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{kind} names must be a non-empty list without repeats, got {names}")
    return names


def _mix32(x: Tensor) -> Tensor:
    """32-bit avalanche mix on int64 tensors; only the low 32 bits are kept, so overflow is fine."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def index_keys(index: Tensor) -> Tensor:
    """The part of `hash_bits` that depends on the index alone: a world that draws with the
    same indices every episode computes it once (`hash_keyed`)."""
    return _mix32(index.long() + 3 * _GOLDEN32)


def hash_keyed(seed: Tensor, counter: Tensor, keys: Tensor) -> Tensor:
    """`hash_bits` with the indices' `index_keys` given."""
    seed = seed.long()
    h = _mix32(seed ^ _mix32((seed >> 32) + _GOLDEN32))
    h = _mix32(h ^ _mix32(counter.long() + 2 * _GOLDEN32))
    return _mix32(h[:, None] ^ keys)


def hash_bits(seed: Tensor, counter: Tensor, index: Tensor) -> Tensor:
    """32-bit hashes (int64 [N, J]) that depend only on (seed_i, counter_i, index_ij)."""
    return hash_keyed(seed, counter, index_keys(index))


def hash_uniform(seed: Tensor, counter: Tensor, index: Tensor) -> Tensor:
    """Uniforms in [0, 1) float64 [N, J] that depend only on (seed_i, counter_i, index_ij)."""
    return hash_bits(seed, counter, index).double() * (1.0 / 2**32)


def slot_seeds(seed: Seed, num_envs: int, device: torch.device) -> Tensor:
    """One seed per slot: an int s gives slot i the seed s + i; a sequence is taken as is."""
    if isinstance(seed, Integral):
        return torch.arange(num_envs, device=device) + int(seed)
    seeds = torch.as_tensor(seed, dtype=torch.long, device=device)
    if seeds.shape != (num_envs,):
        raise ValueError(f"need one seed per env ({num_envs}), got shape {tuple(seeds.shape)}")
    return seeds.clone()


def redraw(
    mask: Tensor,
    seeds: Tensor,
    episodes: Tensor,
    draw: Callable[[Tensor, Tensor], tuple[Tensor, ...]],
    current: tuple[Tensor, ...],
) -> tuple[Tensor, ...]:
    """The tensors of `current` ([N, ...] each) with the slots of mask [N] replaced by the
    matching outputs of draw(seeds, episodes) for those slots; new tensors, inputs untouched.

    On the CPU only the finished slots are drawn (a draw costs far more than finding them); on
    an accelerator every slot is drawn and masked, which needs no host synchronisation.
    """
    if mask.device.type == "cpu":
        slots = mask.nonzero().flatten()
        drawn = draw(seeds[slots], episodes[slots])
        return tuple(old.index_put((slots,), new) for new, old in zip(drawn, current, strict=True))
    drawn = draw(seeds, episodes)
    return tuple(
        torch.where(mask.view(-1, *([1] * (old.dim() - 1))), new, old)
        for new, old in zip(drawn, current, strict=True)
    )


class PlanesOrIndices:
    """The observation spec of a gridworld that observes either one-hot planes or the indices of
    their ones (`observation`, `obs_shape`, `obs_dtype` and `num_features` set by the world)."""

    @property
    def capturable(self) -> bool:
        """Whether `device_graphs` compiles the step: with index observations only (compiled,
        the planes' scatters ran 25x slower on a CPU: 86,000 against 2.2M steps/s at N = 4096)."""
        return self.observation == "indices"

    @property
    def observation_spec(self) -> ObservationSpec:
        """planes: a uint8 image [C, H, W]; indices: the ones of a multi-hot vector."""
        if self.observation == "planes":
            return ObservationSpec(tuple(self.obs_shape), self.obs_dtype, "image")
        return ObservationSpec(tuple(self.obs_shape), self.obs_dtype, "indices", self.num_features)


class SavedEpisodes:
    """Exact resume of a world whose open episodes are the tensors named by `episode_state`
    (`ResumableWorld`): its layouts are drawn from per-slot seeds, so no generator is needed."""

    episode_state: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Tensor]:
        """The episode tensors by name."""
        return {name: getattr(self, name) for name in self.episode_state}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Continue the episodes of a `state_dict` taken from a world of the same config."""
        missing = [name for name in self.episode_state if name not in state]
        if missing:
            raise ValueError(f"saved episodes lack {missing}")
        for name in self.episode_state:
            current, saved = getattr(self, name), state[name]
            if saved.shape != current.shape or saved.dtype != current.dtype:
                raise ValueError(
                    f"saved episodes: {name} {tuple(saved.shape)} {saved.dtype} does not fit "
                    f"{tuple(current.shape)} {current.dtype}"
                )
            setattr(self, name, saved.to(self.device))


class BatchedEpisodes(SavedEpisodes):
    """Episode bookkeeping shared by the goal-reaching worlds.

    The world provides num_envs, episode_steps (steps before truncation), device and the pure
    pieces sample_layout(seeds,
    episodes) -> (start [B, ...], objects [B, ...]), transition(agent, objects, actions) ->
    (agent, reward [N, K], terminated [N], goal [N]) and observe(agent, objects); this class
    keeps `agent`, `objects`, `t`, `seeds` and `episode`.
    """

    goal_slots: Tensor | None = None
    episode_state = ("seeds", "episode", "agent", "objects", "t")

    def reset(self, seed: Seed = 0) -> Tensor:
        """Seed every slot (an int s gives slot i the seed s + i), start episode 0; returns obs."""
        self.seeds = slot_seeds(seed, self.num_envs, self.device)
        self.episode = torch.zeros_like(self.seeds)
        self.agent, self.objects = self.sample_layout(self.seeds, self.episode)
        self.t = torch.zeros_like(self.seeds)
        return self.observe(self.agent, self.objects)

    def start_episodes(self, mask: Tensor) -> None:
        """Begin the next episode (counter + 1, fresh layout and start) in the slots where mask."""
        self.episode = self.episode + mask.long()
        self.agent, self.objects = redraw(
            mask, self.seeds, self.episode, self.sample_layout, (self.agent, self.objects)
        )
        self.t = self.t.masked_fill(mask, 0)

    def advance(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Apply actions without resetting: (reward [N, K], terminated, truncated, goal)."""
        self.agent, reward, terminated, goal = self.transition(self.agent, self.objects, actions)
        self.t = self.t + 1
        truncated = ~terminated & (self.t >= self.episode_steps)
        return reward, terminated, truncated, goal

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Step all slots; finished ones auto-reset and info['final_obs'] holds their last obs."""
        reward, terminated, truncated, goal = self.advance(actions)
        final_obs = self.observe(self.agent, self.objects)
        self.start_episodes(terminated | truncated)
        obs = self.observe(self.agent, self.objects)
        return obs, reward, terminated, truncated, {"final_obs": final_obs, "goal": goal}


class GoalEpisodes(PlanesOrIndices, BatchedEpisodes):
    """The goal-reaching gridworlds' episodes, with their exact tabular models. `goal_slots`
    [G, J] names the observation columns that describe each goal, where the observation has
    them (see `MultiHeadQNetwork`).
    """

    @property
    def episode_steps(self) -> int:
        """Steps before an episode is truncated: `max_steps`."""
        return self.max_steps

    @property
    def num_states(self) -> int:
        """Cells the agent can stand on: no shortest path is longer."""
        return int(self.free_cells.numel())

    def tabular_episodes(self) -> tuple[TabularMDP, Tensor, Tensor]:
        """Exact models of the layouts just started, which one each slot plays, and its start."""
        unique, which = torch.unique(self.objects, dim=0, return_inverse=True)
        return tabulate(self, unique), which, self.agent.clone()


def tabulate(world, objects: Tensor) -> TabularMDP:
    """TabularMDP of the layouts objects [L, M] built from world.transition on every (cell, a)."""
    objects = objects.to(device=world.device, dtype=torch.long)
    layouts, num_goals = objects.shape
    shape = (layouts, world.height * world.width, NUM_ACTIONS)
    cells = torch.arange(shape[1], device=world.device)
    agent = cells.view(1, -1, 1).expand(shape)
    actions = torch.arange(NUM_ACTIONS, device=world.device).expand(shape)
    layout = objects[:, None, None, :].expand(*shape, num_goals)
    nxt, reward, terminal, goal = world.transition(
        agent.reshape(-1), layout.reshape(-1, num_goals), actions.reshape(-1)
    )
    valid = world.standable(objects)
    ok = valid[..., None]
    return TabularMDP(
        next_state=torch.where(ok, nxt.view(shape), agent),
        reward=torch.where(ok[..., None], reward.view(*shape, -1).double(), 0.0),
        terminal=terminal.view(shape) & ok,
        goal=torch.where(ok, goal.view(shape), -1),
        valid=valid,
    )
