"""Foraging world for homeostatic control, batched: resources on a fixed map, internal levels.

N envs step by tensor ops. The agent walks a walled room holding resource cells (default food,
water, salt; optionally `hazard` cells, whose head pays `hazard_reward`: -1 makes it the cost
head that a value program's constraint reads). Internal variables (default energy, hydration,
sodium, each in [0, 1]) drift every step and change when a resource is consumed. One reward
head per resource type pays 1.0 on the step that consumes it, else 0: the
heads see only the external world, while the internal levels go to the controller through
`info["internal"]` and `world.internal` (and into the observation only with `internal_in_obs`,
for the drive-reduction baseline that has to see them). Setpoints live in the controller, not here.

Rules, per step:
- Consumption: the agent moves (a blocked move leaves it in place); if the cell it then occupies
  holds an available resource, that resource is consumed, once. So every step spent on a resource
  cell consumes it, also when the agent stays there by bumping into a wall, unless `regrow` > 0:
  a consumed cell is then unavailable for the next `regrow` steps (0 = always available).
- Levels: x <- clamp(x + drift + consumption[r], 0, 1), one clamp after both changes, with
  consumption[r] the row of the resource r consumed this step (zero when none).
- A continuing task: consumption never ends an episode; it is truncated after `max_steps` steps.
  With `death`, it terminates on the step that leaves some level outside [viable_low,
  viable_high] (strictly below or above), reported in info["death"].
- Episode start: the agent cell is uniform over the free cells without a resource (or `start`),
  the levels are `initial_levels` or uniform in `initial_range`, every resource is available.
"""

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from composable_rl.config import doc
from composable_rl.evaluation import evaluate_levels, exact_head_rows, head_return_rows
from composable_rl.homeostasis import drive_reduction_reward, load_value_program
from composable_rl.maths.oracle import TabularMDP
from composable_rl.registry import register_section_upgrade, register_world
from composable_rl.world import Act
from envs.gridworld import (
    GRID_ACTIONS,
    NUM_ACTIONS,
    PlanesOrIndices,
    SavedEpisodes,
    Seed,
    check_names,
    hash_bits,
    move_table,
    parse_layout,
    redraw,
    slot_seeds,
)
from envs.gym_env import ObjectRoomsEnv
from envs.levels import (
    DEFAULT_CONSUMPTION,
    DEFAULT_DRIFT,
    DEFAULT_VARIABLES,
    VIABLE_HIGH,
    VIABLE_LOW,
    InitialRange,
    Levels,
    LevelsConfig,
    PerVariable,
)
from envs.render import GLYPHS, colours_rgb, draw_grid

# 9x9 room with four short walls and a pillar; the default resources sit 8 to 12 steps apart.
FORAGING_LAYOUT = (
    "###########",
    "#.........#",
    "#.........#",
    "#..##.##..#",
    "#.........#",
    "#....#....#",
    "#.........#",
    "#..##.##..#",
    "#.........#",
    "#.........#",
    "###########",
)
DEFAULT_RESOURCES: Mapping[str, tuple[tuple[int, int], ...]] = MappingProxyType(
    {"food": ((1, 1),), "water": ((1, 9),), "salt": ((9, 5),)}
)
# A suggested hazard layout: on the shortest routes between the default resources.
DEFAULT_HAZARD = ((1, 5), (5, 1), (5, 9))
MAX_STEPS = 50  # steps before an episode is truncated, for the world and its config section
HAZARD = "hazard"
BUTTON = "button"
RESOURCE_RGB = {
    "food": (214, 150, 40),
    "water": (40, 90, 220),
    "salt": (150, 150, 170),
    HAZARD: (200, 30, 30),
    BUTTON: (230, 60, 200),
}
SPENT_RGB = (200, 200, 200)


class ForagingWorld(Levels, PlanesOrIndices, SavedEpisodes):
    """N foraging worlds sharing one map; state in tensors, per-slot counter-based RNG.

    State: `agent` [N] flat cell, `internal` [N, V] float32 levels, `wait` [N, C] long steps until
    each resource cell is available again (`ready` = wait == 0), `t` [N] steps taken, `seeds`
    and `episode` [N] (every draw hashes both). `drift` [V] and `consumption` [R, V] are plain
    float32 tensors that may be edited at run time. A new instance is already reset with seed 0.

    Observations. indices (long [N, F]): the agent cell; then, only when regrow > 0, one index per
    resource cell saying whether it is available; then, only with internal_in_obs, one index per
    variable for its level in `levels_bins` equal bins (floor(x * bins), 1.0 in the top bin),
    each kind in its own feature range so that a sparse first layer sees one-hots. planes (uint8
    [1 + R, H, W]): the agent, then one plane per resource type with its available cells.
    """

    episode_state = ("seeds", "episode", "agent", "internal", "wait", "t", "consumed")

    action_spec = GRID_ACTIONS

    def __init__(
        self,
        *,
        num_envs: int = 64,
        layout: str | Sequence[str] = FORAGING_LAYOUT,
        resources: Mapping[str, Sequence[Sequence[int]]] = DEFAULT_RESOURCES,
        hazard: Sequence[Sequence[int]] | None = None,
        hazard_reward: float = 1.0,
        button: Sequence[Sequence[int]] | None = None,
        button_pays: str = "food",
        variables: Sequence[str] = DEFAULT_VARIABLES,
        drift: PerVariable = DEFAULT_DRIFT,
        consumption: Mapping[str, Mapping[str, float]] = DEFAULT_CONSUMPTION,
        initial_levels: PerVariable = 0.5,
        initial_range: InitialRange = None,
        regrow: int = 0,
        death: bool = False,
        viable_low: PerVariable = VIABLE_LOW,
        viable_high: PerVariable = VIABLE_HIGH,
        start: Sequence[int] | None = None,
        max_steps: int = MAX_STEPS,
        observation: str = "indices",
        internal_in_obs: bool = False,
        levels_bins: int = 10,
        device: str | torch.device = "cpu",
    ) -> None:
        if num_envs < 1 or max_steps < 1:
            raise ValueError("num_envs and max_steps must be positive")
        if regrow < 0 or levels_bins < 1:
            raise ValueError("regrow must be >= 0 and levels_bins >= 1")
        if observation not in ("planes", "indices"):
            raise ValueError(f"observation must be 'planes' or 'indices', got {observation!r}")
        if internal_in_obs and observation == "planes":
            raise ValueError("internal_in_obs needs observation='indices' (planes cannot hold it)")
        self.num_envs, self.max_steps, self.regrow = num_envs, max_steps, regrow
        self.observation, self.internal_in_obs = observation, internal_in_obs
        self.levels_bins = levels_bins
        self.device = torch.device(device)
        self.walls = parse_layout(layout).to(self.device)
        self.height, self.width = self.walls.shape
        self._next_cell = move_table(self.walls)
        cells = self.height * self.width
        self.free_cells = torch.nonzero(~self.walls.flatten()).flatten()

        resources = dict(resources)
        if hazard is not None:
            if HAZARD in resources:
                raise ValueError(f"resource name {HAZARD!r} is reserved for the hazard option")
            resources[HAZARD] = hazard
        self.resource_names = check_names(resources, "resource")
        self.head_names, self.num_heads = list(self.resource_names), len(self.resource_names)
        if any(not resources[name] for name in self.resource_names):
            raise ValueError("every resource needs at least one [row, col] cell")
        if button is not None and button_pays not in self.resource_names:
            raise ValueError(
                f"button_pays {button_pays!r} is not a resource: {self.resource_names}"
            )
        # a button cell is one more kind of cell, index R: it pays and feeds nothing
        kinds = self.cell_kinds = [*self.resource_names, *([BUTTON] if button else [])]
        positions = [(name, pos) for name in self.resource_names for pos in resources[name]]
        positions += [(BUTTON, pos) for pos in button or ()]
        self.resource_cells = self._cells([pos for _, pos in positions], "resource cell")
        if self.resource_cells.unique().numel() != len(positions):
            raise ValueError(f"resource cells must be distinct, got {positions}")
        self.cell_resource = torch.tensor(
            [kinds.index(name) for name, _ in positions], device=self.device
        )
        self._cell_slot = torch.full((cells,), -1, dtype=torch.long, device=self.device)
        self._cell_slot[self.resource_cells] = torch.arange(len(positions), device=self.device)
        self._slots = torch.arange(len(positions), device=self.device)
        self._one_hot = torch.eye(len(kinds), len(self.resource_names), device=self.device)
        if button:
            self._one_hot[-1, self.resource_names.index(button_pays)] = 1.0
        self.hazard_reward = hazard_reward
        if hazard is not None:
            hazard_index = self.resource_names.index(HAZARD)
            self._one_hot[hazard_index, hazard_index] = hazard_reward
        self._no_goal = torch.full((num_envs,), -1, dtype=torch.long, device=self.device)

        self.setup_levels(
            variables=variables,
            drift=drift,
            consumption=consumption,
            initial_levels=initial_levels,
            initial_range=initial_range,
            death=death,
            viable_low=viable_low,
            viable_high=viable_high,
        )

        if start is None:
            standable = ~self.walls.flatten()
            standable[self.resource_cells] = False
            self._start_cells = torch.nonzero(standable).flatten()
        else:
            self._start_cells = self._cells([start], "start")
        self._draw_index = torch.arange(1 + self.num_variables, device=self.device)

        num_cells = self.resource_cells.numel()
        self._ready_base = cells + 2 * self._slots
        self._levels_base = cells + (2 * num_cells if regrow else 0)
        self._levels_offset = self._levels_base + levels_bins * torch.arange(
            self.num_variables, device=self.device
        )
        if observation == "planes":
            self.obs_shape = (1 + len(kinds), self.height, self.width)
            self.obs_dtype = torch.uint8
            self._plane_index = (1 + self.cell_resource) * cells + self.resource_cells
        else:
            width = (
                1 + (num_cells if regrow else 0) + (self.num_variables if internal_in_obs else 0)
            )
            self.obs_shape, self.obs_dtype = (width,), torch.long
        self.num_features = self._levels_base + (
            levels_bins * self.num_variables if internal_in_obs else 0
        )
        self.reset(0)

    def _cells(self, positions: Sequence[Sequence[int]], what: str) -> Tensor:
        """Flat cells [M] of [row, col] pairs, checked to lie on free cells of the grid."""
        cells = []
        for pos in positions:
            if len(pos) != 2:
                raise ValueError(f"{what} must be [row, col], got {pos!r}")
            row, col = (int(v) for v in pos)
            if not (0 <= row < self.height and 0 <= col < self.width) or self.walls[row, col]:
                raise ValueError(f"{what} {list(pos)} is outside the grid or on a wall")
            cells.append(row * self.width + col)
        return torch.tensor(cells, dtype=torch.long, device=self.device)

    def tabular_episodes(self) -> tuple[TabularMDP, Tensor, Tensor]:
        """The one exact model every slot plays (regrow = 0 only) and each slot's start cell."""
        return tabulate_foraging(self), torch.zeros_like(self.agent), self.agent.clone()

    @property
    def ready(self) -> Tensor:
        """Bool [N, C]: which resource cells can be consumed now."""
        return self.wait == 0

    def sample_start(self, seeds: Tensor, episodes: Tensor) -> tuple[Tensor, Tensor]:
        """Start cell [B] and initial levels float32 [B, V] of episode `episodes` of `seeds`."""
        bits = hash_bits(seeds, episodes, self._draw_index)
        agent = self._start_cells[bits[:, 0] % self._start_cells.numel()]
        uniform = bits[:, 1:].double() * (1.0 / 2**32)
        return agent, self.draw_levels(uniform)

    def cell_reward(self, cells: Tensor) -> Tensor:
        """Reward vectors [..., K] of ending a step on cells [...] while every resource is ready."""
        slot = self._cell_slot[cells]
        kind = self.cell_resource[slot.clamp(min=0)]
        return torch.where((slot >= 0)[..., None], self._one_hot[kind], 0.0)

    def observe(
        self, agent: Tensor, ready: Tensor | None = None, internal: Tensor | None = None
    ) -> Tensor:
        """Observation [B, *obs_shape] of agent cells [B], resource availability [B, C] (None =
        all available) and levels [B, V] (needed only with internal_in_obs)."""
        batch = agent.shape[0]
        if ready is None:
            ready = torch.ones(batch, self._slots.numel(), dtype=torch.bool, device=self.device)
        if self.observation == "planes":
            cells = self.height * self.width
            planes = torch.zeros(
                batch, self.obs_shape[0] * cells, dtype=torch.uint8, device=self.device
            )
            planes.scatter_(1, agent[:, None], 1)
            planes[:, self._plane_index] = ready.to(torch.uint8)
            return planes.view(batch, *self.obs_shape)
        parts = [agent[:, None]]
        if self.regrow:
            parts.append(self._ready_base + ready.long())
        if self.internal_in_obs:
            if internal is None:
                raise ValueError("internal_in_obs: observe needs the internal levels")
            bins = (internal * self.levels_bins).long().clamp(0, self.levels_bins - 1)
            parts.append(self._levels_offset + bins)
        return torch.cat(parts, 1)

    def current_obs(self) -> Tensor:
        """Observation of the current state of every slot."""
        return self.observe(self.agent, self.ready, self.internal)

    def reset(self, seed: Seed = 0) -> Tensor:
        """Seed every slot (an int s gives slot i the seed s + i), start episode 0; returns obs."""
        self.seeds = slot_seeds(seed, self.num_envs, self.device)
        self.episode = torch.zeros_like(self.seeds)
        self.agent, self.internal = self.sample_start(self.seeds, self.episode)
        self.wait = torch.zeros(
            self.num_envs, self._slots.numel(), dtype=torch.long, device=self.device
        )
        self.t = torch.zeros_like(self.seeds)
        self.consumed = torch.full_like(self.seeds, -1)
        self.pressed = torch.zeros_like(self.seeds, dtype=torch.bool)
        return self.current_obs()

    def start_episodes(self, mask: Tensor) -> None:
        """Begin the next episode (counter + 1, fresh start, levels, resources) where mask."""
        self.episode = self.episode + mask.long()
        self.agent, self.internal = redraw(
            mask, self.seeds, self.episode, self.sample_start, (self.agent, self.internal)
        )
        self.wait = self.wait.masked_fill(mask[:, None], 0)
        self.t = self.t.masked_fill(mask, 0)

    def advance(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Apply actions without resetting: (reward [N, K], terminated, truncated, goal = -1)."""
        self.agent = self._next_cell[self.agent, actions]
        slot = self._cell_slot[self.agent]
        slot0 = slot.clamp(min=0)
        consumed = (slot >= 0) & (self.wait.gather(1, slot0[:, None])[:, 0] == 0)
        kind = self.cell_resource[slot0]
        resource = kind < len(self.resource_names)
        self.consumed = torch.where(consumed & resource, kind, -1)
        self.pressed = consumed & ~resource
        reward = torch.where(consumed[:, None], self._one_hot[kind], 0.0)
        died = self.update_levels(self.consumed)
        eaten = consumed[:, None] & (self._slots == slot[:, None])
        self.wait = torch.where(eaten, self.regrow, (self.wait - 1).clamp(min=0))
        self.t = self.t + 1
        truncated = ~died & (self.t >= self.max_steps)
        return reward, died, truncated, self._no_goal

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Step all slots; finished ones auto-reset. info: final_obs, goal (-1), death, consumed
        (index of the resource type consumed [N], -1 for none), pressed (a button cell paid
        [N]) and internal, the levels each
        step reached (the final ones where an episode ended, whereas `world.internal` then
        already holds the fresh episode's levels)."""
        reward, terminated, truncated, goal = self.advance(actions)
        internal = self.internal.clone()
        final_obs = self.current_obs()
        self.start_episodes(terminated | truncated)
        info = {
            "final_obs": final_obs,
            "goal": goal,
            "internal": internal,
            "death": terminated,
            "consumed": self.consumed,
            "pressed": self.pressed,
        }
        return self.current_obs(), reward, terminated, truncated, info

    def render_rgb(self, index: int = 0) -> np.ndarray:
        """uint8 RGB image [H*16, W*16, 3] of slot `index`; spent resources are drawn grey."""
        names = [self.cell_kinds[r] for r in self.cell_resource.tolist()]
        rgb = [RESOURCE_RGB.get(n, c) for n, c in zip(names, colours_rgb(names), strict=True)]
        ready = self.ready[index].tolist()
        rgb = [c if on else SPENT_RGB for c, on in zip(rgb, ready, strict=True)]
        return draw_grid(
            self.walls.cpu().numpy(),
            int(self.agent[index]),
            self.resource_cells.tolist(),
            rgb,
            [GLYPHS["square"]] * len(rgb),
        )


class ForagingEnv(ObjectRoomsEnv):
    """One foraging world (N = 1, same engine): [K] float32 vector reward, no auto-reset, and
    info['internal'] (float32 levels after the step) and info['death']."""

    world_class = ForagingWorld

    def reward_bounds(self) -> tuple[float, float]:
        """A head pays 1 on a consumption (the hazard head `hazard_reward`), else 0."""
        reward = self.world.hazard_reward
        return min(0.0, reward), max(1.0, reward)

    def _obs(self) -> np.ndarray:
        """Fresh observation of the current state."""
        return self.world.current_obs()[0].cpu().numpy().copy()

    def step(self, action: int) -> tuple[np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        """Move once; adds the internal levels and whether the agent died to info."""
        obs, reward, terminated, truncated, info = super().step(action)
        info["internal"] = self.world.internal[0].cpu().numpy().copy()
        info["death"] = terminated
        return obs, reward, terminated, truncated, info


class DriveReductionWorld(ForagingWorld):
    """Foraging with one head, `drive_reduction`, paid the scaled Keramati & Gutkin (2014) reward
    scale * (D(x_t) - D(x_t+1)) at fixed setpoints: the homeostatic-RL baseline. Its observation
    holds the discretised levels (internal_in_obs), since its reward depends on them."""

    def __init__(
        self,
        *,
        setpoints: PerVariable,
        drive_n: float = 4.0,
        drive_m: float = 2.0,
        reward_scale: float = 100.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(internal_in_obs=True, **kwargs)
        self.setpoints = self._per_variable(setpoints, "setpoints", 0.5)
        self.drive_n, self.drive_m, self.reward_scale = drive_n, drive_m, reward_scale
        self.head_names, self.num_heads = ["drive_reduction"], 1

    def advance(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """As ForagingWorld.advance, with the drive-reduction reward [N, 1]."""
        before = self.internal
        _, terminated, truncated, goal = super().advance(actions)
        drop = drive_reduction_reward(
            before, self.internal, self.setpoints, self.drive_n, self.drive_m
        )
        return (self.reward_scale * drop)[:, None], terminated, truncated, goal


def tabulate_foraging(world) -> TabularMDP:
    """TabularMDP (one layout) of a foraging world without regrowth: the state is the agent cell.

    Each head pays 1 on every step that ends on its resource, so the MDP is exact only while
    every resource is always available (regrow = 0); a continuing task never terminates.
    """
    if world.regrow:
        raise ValueError("tabulate_foraging needs regrow = 0: waiting times are not in the state")
    cells = world.height * world.width
    shape = (1, cells, NUM_ACTIONS)
    agent = torch.arange(cells, device=world.device).view(1, -1, 1).expand(shape)
    nxt = world._next_cell.view(shape)
    reward = world.cell_reward(nxt).double()
    valid = ~world.walls.flatten()[None]
    ok = valid[..., None]
    return TabularMDP(
        next_state=torch.where(ok, nxt, agent),
        reward=torch.where(ok[..., None], reward, 0.0),
        terminal=torch.zeros(shape, dtype=torch.bool, device=world.device),
        goal=torch.full(shape, -1, dtype=torch.long, device=world.device),
        valid=valid,
    )


@dataclasses.dataclass
class ForagingConfig(LevelsConfig):
    """foraging: resources on a fixed map and internal levels, for homeostatic control.

    A null value keeps the world's default."""

    name: str = doc("foraging", "This world.")

    max_steps: int = doc(MAX_STEPS, "Steps before an episode is truncated (bootstrapped).", ge=1)
    observation: Literal["indices", "planes"] = doc(
        "indices",
        "indices: positions of the ones of the one-hot planes (fast sparse MLP); "
        "planes: uint8 [C, H, W] one-hot planes (read by a CNN).",
    )
    resources: dict[str, list[list[int]]] | None = doc(
        None, "[row, col] cells per resource type; null = food (1, 1), water (1, 9), salt (9, 5)."
    )
    hazard: list[list[int]] | None = doc(
        None,
        "[row, col] hazard cells: a head `hazard` paid hazard_reward on every step on one "
        "(what a value program's constraint `G !hazard` reads); null = none.",
    )
    hazard_reward: float = doc(
        1.0, "The hazard head's pay per step on a hazard cell; -1 makes it a cost head."
    )
    button: list[list[int]] | None = doc(
        None,
        "[row, col] reward-button cells: each step on one pays the head button_pays 1, as its "
        "resource would, but feeds no level (info['pressed']); null = none.",
    )
    button_pays: str = doc("food", "The resource head a button pays.")
    regrow: int = doc(0, "Steps a consumed resource cell stays empty; 0 = always there.", ge=0)
    reward: Literal["resources", "drive_reduction"] = doc(
        "resources",
        "resources: one head per resource, paid 1 per consumption, blind to the levels; "
        "drive_reduction: one head paid reward_scale * (D(x_t) - D(x_t+1)) at the setpoints of "
        "value_program, seeing its levels (the Keramati & Gutkin 2014 baseline).",
    )
    value_program: str = doc(
        "configs/values/default.yaml", "Value program whose setpoints drive_reduction uses."
    )
    levels_bins: int = doc(10, "Bins per level in the drive_reduction observation.", ge=1)
    drive_n: float = doc(4.0, "Exponent n of D(x) = (sum_i |x*_i - x_i|^n)^(1/m).", gt=0)
    drive_m: float = doc(2.0, "Root m of D(x).", gt=0)
    reward_scale: float = doc(100.0, "Factor on the drive-reduction reward.", gt=0)

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        yield from super().problems()
        if self.reward == "drive_reduction" and self.observation != "indices":
            yield "observation", "drive_reduction needs indices (it sees its levels)"

    def world_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `ForagingWorld` (and `DriveReductionWorld`) for this section."""
        kwargs: dict[str, Any] = {
            **self.levels_kwargs(),
            "max_steps": self.max_steps,
            "observation": self.observation,
            "regrow": self.regrow,
        }
        if self.resources is not None:
            kwargs["resources"] = self.resources
        if self.hazard is not None:
            kwargs.update(hazard=self.hazard, hazard_reward=self.hazard_reward)
        if self.button is not None:
            kwargs.update(button=self.button, button_pays=self.button_pays)
        if self.reward == "resources":
            return kwargs
        program = load_value_program(self.value_program, self.resource_names())
        return {
            **kwargs,
            "setpoints": dict(zip(program.variable_names, program.setpoints, strict=True)),
            "drive_n": self.drive_n,
            "drive_m": self.drive_m,
            "reward_scale": self.reward_scale,
            "levels_bins": self.levels_bins,
        }

    def resource_names(self) -> list[str]:
        """The resource (and head) names this section configures."""
        return [*(self.resources or DEFAULT_RESOURCES), *([HAZARD] if self.hazard else [])]


def make_foraging(section: ForagingConfig, num_envs: int, device: str) -> ForagingWorld:
    """The foraging world of a config section: resource heads, or the drive-reduction head."""
    world = DriveReductionWorld if section.reward == "drive_reduction" else ForagingWorld
    return world(num_envs=num_envs, device=device, **section.world_kwargs())


def evaluate_foraging(section: ForagingConfig, act: Act, episodes: int, device: str) -> list[dict]:
    """Resource heads against the exact oracle (greedy returns with CIs when cells regrow, which
    the tabular model does not hold); the drive-reduction head by its time in the value
    program's bands."""
    world = make_foraging(section, episodes, device)
    if section.reward == "drive_reduction":
        program = load_value_program(section.value_program, section.resource_names())
        return [{"task": "drive_reduction", **evaluate_levels(world, act, program.bands)}]
    if section.regrow:
        return head_return_rows(world, act)
    return exact_head_rows(world, act)


def single_schema_section(data: Mapping[str, Any], section: type) -> Mapping[str, Any]:
    """An env section saved in the earlier single-schema format (every world's keys at once,
    the foraging keys under `foraging`) as the chosen world's own section; others unchanged."""
    if not isinstance(data.get("foraging"), Mapping):
        return data
    merged = {**data, **data["foraging"]} if section is ForagingConfig else dict(data)
    keys = {f.name for f in dataclasses.fields(section)}
    return {key: value for key, value in merged.items() if key in keys}


register_world("foraging", ForagingConfig, make_foraging, evaluate_foraging)
register_section_upgrade(single_schema_section)
