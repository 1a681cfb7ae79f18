"""The Office world with continuous actions: the point of `point_goals` in a 12 x 9 room (in
cells of `cell`), whose labelled cells of the Office world (coffee, mail, office, plants, a-d)
are discs at the cells' centres, without the grid's inner walls.

As a primitive-task world (what the proposition heads train on) an episode ends on entering a
disc, its goal; head p pays r_max there if the disc's proposition is p, else r_min. Temporal
tasks (`evaluate_point_temporal`) move on through the regions: entering one reads its label and
puts the point at the disc's centre, as entering a cell of the grid puts the agent there, so
that every leg between regions starts where the skill machine's look-ahead evaluates it and
the product oracle (`point_oracle.product_steps`) counts steps exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor

from composable_rl.config import doc
from composable_rl.languages.reward_machine import RewardMachine
from composable_rl.maths import point_oracle as oracle
from composable_rl.registry import register_world
from composable_rl.world import BOUND_HEADS, Act, ActionSpec, ObservationSpec
from envs.gridworld import BatchedEpisodes, GoalRewardsConfig, hash_uniform
from envs.office import ALPHABET, HEIGHT, LABELLED, PROPOSITIONS, START, WIDTH
from envs.point_goals import DiscOptimum, evaluate, move_point, score_goal_task
from envs.temporal import machine_arrays, machine_episodes, office_machine, temporal_row

START_DRAWS = 8  # uniform draws per start outside the regions (all 8 inside: the standard start)
# How far outside a disc's edge a step model still counts a landing as inside it: a position read
# back from an observation is off by float rounding, and a shield must never miss an entry.
MODEL_MARGIN = 1e-4


@dataclasses.dataclass
class PointOfficeConfig(GoalRewardsConfig):
    """point_office: the Office world's labelled cells as discs in a continuous room, for skill
    machines over soft actor-critic proposition heads (exact product oracle)."""

    name: str = doc("point_office", "This world.")
    max_steps: int = doc(40, "Steps before an episode is truncated (bootstrapped).", ge=1)
    cell: float = doc(1.0, "Side of one Office cell: the room is 12 x 9 cells.", gt=0)
    speed: float = doc(1.0, "Largest speed |u|; actions lie in [-speed, speed]^2.", gt=0)
    dt: float = doc(0.8, "Time step: x' = x + dt * u.", gt=0)
    radius: float = doc(
        0.45,
        "Radius of every labelled disc; below speed * dt, so one step leaves a disc from its "
        "centre, and at least half a step, so no step jumps over one.",
        gt=0,
    )
    starts: Literal["anywhere", "unlabelled", "standard"] = doc(
        "anywhere",
        "Episode starts: uniform over the room, uniform outside every disc, or the standard "
        "start (the centre of cell (2, 1)).",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        yield from super().problems()
        step = self.speed * self.dt
        if step <= self.radius:
            yield "radius", f"must be below a step (speed * dt = {step:g}), got {self.radius:g}"
        if step > 2 * self.radius:
            yield "dt", f"a step (speed * dt = {step:g}) exceeds a disc's diameter"
        if 2 * self.radius >= math.sqrt(2) * self.cell:
            yield "radius", f"discs of neighbouring cells ({self.cell:g} apart) overlap"


class PointOffice(DiscOptimum, BatchedEpisodes):
    """N points in the continuous Office, stepped together; rewards [N, K], one head per
    proposition (and MAX / MIN with `bound_heads`). State: `agent` [N, 2], `objects` [N, G, 2]
    (the fixed disc centres), `t`, `seeds`, `episode`."""

    def __init__(
        self, section: PointOfficeConfig, num_envs: int, device: str | torch.device
    ) -> None:
        self.num_envs, self.device = num_envs, torch.device(device)
        self.section, self.episode_steps = section, section.max_steps
        self.r_max, self.r_min, self.step_reward = section.r_max, section.r_min, section.step_reward
        self.speed, self.dt, self.radius = section.speed, section.dt, section.radius
        self.step_length = section.speed * section.dt
        self.extent = torch.tensor([WIDTH, HEIGHT], device=self.device) * section.cell
        self.propositions = list(PROPOSITIONS)
        self.alphabet = list(ALPHABET)
        self.goal_names = [f"{p}{xy}".replace(" ", "") for p, xy in LABELLED]
        bounds = list(BOUND_HEADS) if section.bound_heads else []
        self.head_names = self.propositions + bounds
        self.goal_membership = torch.tensor(
            [
                [p == h for h in self.propositions] + [h == "MAX" for h in bounds]
                for p, _ in LABELLED
            ],
            dtype=torch.bool,
            device=self.device,
        )
        self.goal_reward = torch.where(self.goal_membership, section.r_max, section.r_min).float()
        self.goal_labels = torch.tensor(
            [1 + PROPOSITIONS.index(p) for p, _ in LABELLED], device=self.device
        )
        self.centres = self.cell_centre(torch.tensor([xy for _, xy in LABELLED]))
        self.standard_start = self.cell_centre(torch.tensor([START]))[0]
        self.observation_spec = ObservationSpec((2 + 2 * len(LABELLED),), torch.float32, "vector")
        self.action_spec = ActionSpec.box((2,), -section.speed, section.speed)
        self.reset(0)

    def cell_centre(self, xy: Tensor) -> Tensor:
        """Positions [M, 2] of the centres of Office cells (x, y) [M, 2]."""
        return ((xy.float() + 0.5) * self.section.cell).to(self.device)

    @property
    def num_states(self) -> int:
        """Steps of the longest straight path across the room: no shortest path is longer."""
        return math.ceil(float(self.extent.norm()) / self.step_length)

    def sample_layout(self, seeds: Tensor, episodes: Tensor) -> tuple[Tensor, Tensor]:
        """Start positions [B, 2] (per `starts`) and the disc centres [B, G, 2]."""
        batch = seeds.shape[0]
        centres = self.centres.expand(batch, -1, -1).clone()
        if self.section.starts == "standard":
            return self.standard_start.expand(batch, 2).clone(), centres
        u = hash_uniform(seeds, episodes, torch.arange(2 * START_DRAWS, device=self.device))
        draws = u.float().view(batch, START_DRAWS, 2) * self.extent  # [B, S, 2]
        if self.section.starts == "anywhere":
            return draws[:, 0], centres
        gap = (draws[:, :, None] - self.centres).norm(dim=-1).amin(-1)  # [B, S]
        outside = torch.cat([gap > self.radius, torch.ones_like(gap[:, :1])], 1)
        draws = torch.cat([draws, self.standard_start.expand(batch, 1, 2)], 1)
        first = outside.float().argmax(1)
        return draws[torch.arange(batch, device=self.device), first], centres

    def observe(self, agent: Tensor, objects: Tensor) -> Tensor:
        """[position scaled to [-1, 1], every disc's offset / the room's longer side] float32
        [N, 2 + 2G]."""
        offsets = (objects - agent[:, None]) / self.extent.max()
        return torch.cat([2 * agent / self.extent - 1, offsets.flatten(1)], 1)

    def region(self, positions: Tensor, margin: float = 0.0) -> Tensor:
        """The disc [N] each position lies in (or within `margin` of), -1 outside all of them."""
        inside = (positions[:, None] - self.centres).norm(dim=-1) <= self.radius + margin
        return torch.where(inside.any(1), inside.float().argmax(1), -1)

    def transition(
        self, agent: Tensor, objects: Tensor, actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Move (speed capped, walls at the room's edge); (agent, reward [N, K], terminated
        [N], goal [N] entered or -1)."""
        agent = move_point(agent, actions, self.speed, self.dt, self.extent)
        goal = self.region(agent)
        terminated = goal >= 0
        step = torch.full_like(self.goal_reward[0], self.step_reward)
        reward = torch.where(terminated[:, None], self.goal_reward[goal.clamp(min=0)], step)
        return agent, reward, terminated, goal

    def labels(self, positions: Tensor) -> Tensor:
        """Label index [N] of each position (0 = none, 1 + i = proposition i)."""
        return self.enter(positions)[1]

    def enter(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Positions [N, 2] moved to the centre of the disc they lie in (the rule of temporal
        tasks), and their label indices [N]."""
        goal = self.region(positions)
        inside = goal >= 0
        centre = self.centres[goal.clamp(min=0)]
        label = torch.where(inside, self.goal_labels[goal.clamp(min=0)], 0)
        return torch.where(inside[:, None], centre, positions), label

    def goal_observations(self) -> Tensor:
        """Observation [G, 2] of the point at each disc's centre."""
        return self.observe(self.centres, self.objects[:1])

    def entered_goals(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The disc [N, C] (-1 none) that each of C actions [N, C, 2] enters from observations
        [N, 2 + 2G], by the world's own dynamics; a landing within `MODEL_MARGIN` outside an
        edge counts as inside (conservative: every entry is named)."""
        n, c = actions.shape[:2]
        position = (obs[:, :2] + 1) / 2 * self.extent
        moved = move_point(
            position.repeat_interleave(c, 0),
            actions.reshape(n * c, 2),
            self.speed,
            self.dt,
            self.extent,
        )
        return self.region(moved, MODEL_MARGIN).view(n, c)


def make(section: PointOfficeConfig, num_envs: int, device: str) -> PointOffice:
    """A world of `num_envs` points in the continuous Office."""
    return PointOffice(section, num_envs, device)


def evaluate_point_temporal(
    section: PointOfficeConfig,
    task: str,
    make_policy: Callable[[RewardMachine], Act],
    episodes: int,
    seed: int,
    device: str,
    max_steps: int = 200,
) -> list[dict]:
    """Rows for the standard start and for random starts (outside every disc) of the policy
    that `make_policy` builds for the machine of `task`: success, steps and violations beside
    the product oracle's steps, and the fraction of starts whose oracle count is exact."""
    machine = office_machine(task)
    policy = make_policy(machine)
    rows = []
    for starts, kind in (("standard", "standard"), ("random", "unlabelled")):
        world = PointOffice(dataclasses.replace(section, starts=kind), episodes, device)
        world.reset(seed)
        table, accepting, rejecting = machine_arrays(machine, world.alphabet, world.device)
        steps, plan = oracle.product_steps(
            world.agent,
            world.centres,
            world.goal_labels,
            world.radius,
            world.step_length,
            world.extent,
            table,
            accepting,
            rejecting,
            machine.initial,
        )

        def move(position: Tensor, actions: Tensor, world: PointOffice = world):
            return world.enter(move_point(position, actions, world.speed, world.dt, world.extent))

        def observe(position: Tensor, world: PointOffice = world) -> Tensor:
            return world.observe(position, world.objects)

        machine_tensors = (machine.initial, table, accepting, rejecting)
        run = machine_episodes(policy, observe, move, world.agent, machine_tensors, max_steps)
        row = temporal_row(task, starts, run, steps)
        planned = plan >= 0
        rows.append(
            {
                **row,
                "oracle_plan": plan[planned].double().mean().item() if planned.any() else None,
                "exact": (steps == plan).double().mean().item(),
            }
        )
    return rows


register_world(
    "point_office",
    PointOfficeConfig,
    make,
    evaluate,
    evaluate_point_temporal,
    score_goals=score_goal_task,
)
