"""A point with bounded velocity control in a square room of goal discs, each with a colour and
a shape: object rooms with continuous actions, and an exact oracle
(`composable_rl.maths.point_oracle`).

    x' = clip(x + dt * u, 0, size),   |u| <= speed (longer actions are scaled down)

One head per attribute pays `r_max` on entering a disc with that attribute, `r_min` on entering
any other, `step_reward` on every other step; entering a disc ends the episode. Goals sit on a
ring around the room's centre, where episodes start, so that every straight path from the start
region to a goal misses the other discs: the oracle is then exact for every task. Placement is
fixed (`goal_positions`, or evenly around the ring) or drawn every episode (a random rotation, a
random order of the goals around the ring and a random radius each); observations give the
position and every goal's offset from it, so heads can be conditioned on where the goals are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor

from composable_rl.config import doc
from composable_rl.evaluation import mean_ci, normalized_return
from composable_rl.maths import point_oracle as oracle
from composable_rl.registry import register_world, world_entry
from composable_rl.share import follow_share
from composable_rl.world import BOUND_HEADS, Act, ActionSpec, ObservationSpec
from envs.gridworld import BatchedEpisodes, GoalRewardsConfig, Seed, hash_uniform

EVAL_SEED = 10_000
RANDOM_ROLLOUTS = 16  # uniform-random episodes per start that estimate the random return
PLAN_RESOLUTION = 0.025  # spacing of the grid whose plans bound paths around walls


@dataclasses.dataclass
class PointGoalsConfig(GoalRewardsConfig):
    """point_goals: a point with velocity control among goal discs with a colour and a shape;
    one head per colour and per shape (exact oracle for every goal task)."""

    name: str = doc("point_goals", "This world.")
    size: float = doc(5.0, "The room is the square [0, size]^2.", gt=0)
    speed: float = doc(1.0, "Largest speed |u|; actions lie in [-speed, speed]^2.", gt=0)
    dt: float = doc(0.25, "Time step: x' = x + dt * u.", gt=0)
    goal_radius: float = doc(0.4, "Radius of every goal disc.", gt=0)
    ring_radius: float = doc(1.8, "Distance of the goals from the room's centre.", gt=0)
    start_radius: float = doc(0.5, "Episodes start uniformly in this disc around the centre.", ge=0)
    colours: list[str] = doc(["beige", "blue", "purple"], "Colours of the goals.")
    shapes: list[str] = doc(["circle", "square"], "Shapes of the goals.")
    heads: list[str] = doc(
        [], "Base rewards, one per attribute value; empty = every colour then every shape."
    )
    placement: Literal["fixed", "random"] = doc(
        "fixed", "fixed: the same goals every episode; random: drawn every episode."
    )
    goal_positions: list[list[float]] | None = doc(
        None,
        "[x, y] per goal in colour-major order (fixed placement); null = evenly around the ring.",
    )
    jitter: float = doc(
        0.3, "Random placement: each goal's distance from the centre varies by up to this.", ge=0
    )
    walls: list[list[float]] = doc(
        [],
        "Walls inside the room, each an axis-aligned segment [x1, y1, x2, y2]; a move that "
        "would meet one slides along it (or, where that meets a wall too, stays put).",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        yield from super().problems()
        for name in ("colours", "shapes", "heads"):
            values = getattr(self, name)
            if len(set(values)) != len(values) or (name != "heads" and not values):
                yield name, f"need distinct values, got {values!r}"
        attributes = [*self.colours, *self.shapes]
        if set(self.colours) & set(self.shapes):
            yield (
                "shapes",
                f"names shared with colours: {sorted(set(self.colours) & set(self.shapes))}",
            )
        for head in self.heads:
            if head not in attributes:
                yield "heads", f"unknown head {head!r}; heads are colours or shapes: {attributes}"
        if self.speed * self.dt > 2 * self.goal_radius:
            step, diameter = self.speed * self.dt, 2 * self.goal_radius
            yield "dt", f"a step (speed * dt = {step:g}) exceeds a goal's diameter ({diameter:g})"
        yield from self._layout_problems()
        yield from self._wall_problems()

    def _wall_problems(self) -> Iterator[tuple[str, str]]:
        """Walls axis-aligned, in the room, clear of the start region and of every goal."""
        for wall in self.walls:
            if len(wall) != 4:
                yield "walls", f"expected [x1, y1, x2, y2], got {wall}"
                continue
            x1, y1, x2, y2 = wall
            if (x1 == x2) == (y1 == y2):
                yield "walls", f"wall {wall} is not an axis-aligned segment of some length"
            elif min(wall) < 0 or max(wall) > self.size:
                yield "walls", f"wall {wall} leaves the room [0, {self.size:g}]^2"
            else:
                yield from self._wall_clearance(wall)

    def _wall_clearance(self, wall: list[float]) -> Iterator[tuple[str, str]]:
        """A wall clear of the start region and of every place a goal can take."""
        segment = torch.tensor([wall], dtype=torch.float64)
        half = self.size / 2
        centre = torch.tensor([half, half])
        near = oracle.wall_gaps(centre, segment).item()
        far = max(math.dist(wall[:2], (half, half)), math.dist(wall[2:], (half, half)))
        if near <= self.start_radius:
            yield "walls", f"wall {wall} crosses the start region"
        if self.placement == "random":
            inner = self.ring_radius - self.jitter - self.goal_radius
            outer = self.ring_radius + self.jitter + self.goal_radius
            if far >= inner and near <= outer:
                yield "walls", f"wall {wall} crosses the ring the goals are drawn on"
            return
        count = len(self.colours) * len(self.shapes)
        for goal in self.goal_positions or goal_centres(self, count):
            if oracle.wall_gaps(torch.tensor(goal), segment).item() <= self.goal_radius:
                yield "walls", f"wall {wall} touches the goal at {goal}"

    def _layout_problems(self) -> Iterator[tuple[str, str]]:
        """Goals inside the room, apart from each other and from the start region."""
        count = len(self.colours) * len(self.shapes)
        given = self.goal_positions
        if given is not None:
            if self.placement == "random":
                yield "goal_positions", "random placement draws the goals: leave it null"
            elif len(given) != count or any(len(p) != 2 for p in given):
                yield "goal_positions", f"expected {count} [x, y] pairs, got {given}"
            else:
                yield from self._fixed_problems(given)
            return
        jitter = self.jitter if self.placement == "random" else 0.0
        half, radius = self.size / 2, self.goal_radius
        if self.ring_radius + jitter + radius > half:
            yield "ring_radius", f"ring_radius + jitter + goal_radius exceed size / 2 = {half:g}"
        if self.ring_radius - jitter - radius <= self.start_radius:
            yield "start_radius", "the start region touches a goal: lower it or widen the ring"
        spacing = 2 * (self.ring_radius - jitter) * math.sin(math.pi / count)
        if count > 1 and spacing <= 2 * radius:
            yield "goal_radius", f"goals {spacing:g} apart on the ring overlap: lower goal_radius"

    def _fixed_problems(self, centres: list[list[float]]) -> Iterator[tuple[str, str]]:
        """Given goals inside the room, apart from each other and from the start region."""
        half, radius = self.size / 2, self.goal_radius
        for x, y in centres:
            if min(x, y) < radius or max(x, y) > self.size - radius:
                yield "goal_positions", f"goal [{x:g}, {y:g}] does not fit in the room"
            if math.dist((x, y), (half, half)) - radius <= self.start_radius:
                yield "goal_positions", f"goal [{x:g}, {y:g}] touches the start region"
        for i, a in enumerate(centres):
            for b in centres[i + 1 :]:
                if math.dist(a, b) <= 2 * radius:
                    yield "goal_positions", f"goals {a} and {b} overlap"


def goal_centres(section: PointGoalsConfig, count: int) -> list[list[float]]:
    """`count` goal centres evenly around the ring, the first due east of the centre."""
    centre = section.size / 2
    angles = [2 * math.pi * g / count for g in range(count)]
    return [
        [centre + section.ring_radius * math.cos(a), centre + section.ring_radius * math.sin(a)]
        for a in angles
    ]


def move_point(
    agent: Tensor, actions: Tensor, speed: float, dt: float, size: float | Tensor
) -> Tensor:
    """Positions [N, 2] after x' = clip(x + dt * u, 0, size), with the actions [N, 2] clipped to
    [-speed, speed]^2 and scaled down to length `speed` where longer; `size` is the side of a
    square room or the [width, height] of a rectangular one."""
    u = actions.float().clamp(-speed, speed)
    u = u * (speed / u.norm(dim=1, keepdim=True).clamp(min=speed))
    moved = (agent + dt * u).clamp(min=0.0)
    return torch.minimum(moved, size) if isinstance(size, Tensor) else moved.clamp(max=size)


class DiscOptimum:
    """The exact oracle of a world of goal discs that end episodes (`agent`, `objects` [N, G, 2]
    disc centres, `radius`, `step_length`, `step_reward`, `episode_steps`)."""

    agent: Tensor
    objects: Tensor
    radius: float
    step_length: float
    step_reward: float
    episode_steps: int
    walls: Tensor | None = None

    def optimum(self, goal_rewards: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`point_oracle.optimal_returns` of the episodes just begun, for the task paying
        goal_rewards [G] at the goals: (return [N], goal [N], exact [N])."""
        return oracle.optimal_returns(
            self.agent,
            self.objects,
            self.radius,
            self.step_length,
            goal_rewards,
            self.step_reward,
            self.episode_steps,
            walls=self.walls,
            plans=self.plans(),
        )

    def plans(self) -> oracle.GridPlans | None:
        """Plans around what blocks straight paths, where every episode shares one layout;
        None: straight paths only."""
        return None


class PointGoals(DiscOptimum, BatchedEpisodes):
    """N points stepped together; rewards [N, K], one head per attribute (and MAX / MIN with
    `bound_heads`). State: `agent` [N, 2] positions, `objects` [N, G, 2] goal centres, `t`,
    `seeds`, `episode` (every draw is a hash of seed and episode, as in the gridworlds)."""

    def __init__(
        self, section: PointGoalsConfig, num_envs: int, device: str | torch.device
    ) -> None:
        self.num_envs, self.device = num_envs, torch.device(device)
        self.section, self.episode_steps = section, section.max_steps
        self.r_max, self.r_min, self.step_reward = section.r_max, section.r_min, section.step_reward
        self.size, self.speed, self.dt, self.radius = (
            section.size,
            section.speed,
            section.dt,
            section.goal_radius,
        )
        self.step_length = section.speed * section.dt
        pairs = [(c, s) for c in section.colours for s in section.shapes]
        self.goal_names = [f"{c}_{s}" for c, s in pairs]
        attributes = list(section.heads) or [*section.colours, *section.shapes]
        bounds = list(BOUND_HEADS) if section.bound_heads else []
        self.head_names = attributes + bounds
        self.goal_membership = torch.tensor(
            [[h in pair for h in attributes] + [h == "MAX" for h in bounds] for pair in pairs],
            dtype=torch.bool,
            device=self.device,
        )
        self.goal_reward = torch.where(self.goal_membership, section.r_max, section.r_min).float()
        goals = len(pairs)
        self.observation_spec = ObservationSpec((2 + 2 * goals,), torch.float32, "vector")
        self.action_spec = ActionSpec.box((2,), -section.speed, section.speed)
        fixed = section.goal_positions or goal_centres(section, goals)
        self.fixed = torch.tensor(fixed, dtype=torch.float32, device=self.device)
        self.walls = torch.tensor(section.walls, dtype=torch.float32, device=self.device)
        self.walls = self.walls.view(-1, 4)
        self.reset(0)

    def plans(self) -> oracle.GridPlans | None:
        """Grid plans around the walls (`point_oracle.grid_plans`, PLAN_RESOLUTION apart) where
        the goals are fixed; None without walls (every ring path is straight) or when drawn."""
        if not self.section.walls or self.section.placement != "fixed":
            return None
        extent = torch.tensor([self.size, self.size])
        return oracle.grid_plans(
            self.fixed, self.radius, self.step_length, extent, PLAN_RESOLUTION, self.walls
        )

    @property
    def num_states(self) -> int:
        """Steps of the longest straight path across the room: no shortest path is longer."""
        return math.ceil(self.size * math.sqrt(2) / self.step_length)

    def sample_layout(self, seeds: Tensor, episodes: Tensor) -> tuple[Tensor, Tensor]:
        """Start positions [B, 2] and goal centres [B, G, 2] of these slots' episodes."""
        goals = self.fixed.shape[0]
        u = hash_uniform(seeds, episodes, torch.arange(3 + 2 * goals, device=self.device)).float()
        centre = self.size / 2
        radius = self.section.start_radius * u[:, 0].sqrt()
        angle = 2 * math.pi * u[:, 1]
        start = centre + radius[:, None] * torch.stack([angle.cos(), angle.sin()], 1)
        if self.section.placement == "fixed":
            return start, self.fixed.expand(seeds.shape[0], -1, -1).clone()
        order = u[:, 3 : 3 + goals].argsort(1)  # goal g takes the order[g]-th place on the ring
        place = 2 * math.pi * (u[:, 2:3] + order.float() / goals)
        ring = self.section.ring_radius + self.section.jitter * (2 * u[:, 3 + goals :] - 1)
        centres = centre + ring[..., None] * torch.stack([place.cos(), place.sin()], -1)
        return start, centres

    def observe(self, agent: Tensor, objects: Tensor) -> Tensor:
        """[position scaled to [-1, 1], every goal's offset / size] float32 [N, 2 + 2G]."""
        offsets = (objects - agent[:, None]) / self.size
        return torch.cat([2 * agent / self.size - 1, offsets.flatten(1)], 1)

    def transition(
        self, agent: Tensor, objects: Tensor, actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Move (speed capped at `speed`, walls at the room's edge; a move that meets an inner
        wall slides along it, `point_oracle.slide`); (agent, reward [N, K], terminated [N],
        goal [N] entered or -1)."""
        moved = move_point(agent, actions, self.speed, self.dt, self.size)
        agent = oracle.slide(agent, moved, self.walls) if self.section.walls else moved
        inside = (objects - agent[:, None]).norm(dim=-1) <= self.radius
        terminated = inside.any(1)
        goal = torch.where(terminated, inside.float().argmax(1), -1)
        step = torch.full_like(self.goal_reward[0], self.step_reward)
        reward = torch.where(terminated[:, None], self.goal_reward[goal.clamp(min=0)], step)
        return agent, reward, terminated, goal


def make(section: PointGoalsConfig, num_envs: int, device: str) -> PointGoals:
    """A world of `num_envs` points."""
    return PointGoals(section, num_envs, device)


def goal_task_returns(
    world: PointGoals, act: Act, context: Tensor, goal_rewards: Tensor, seed: Seed = EVAL_SEED
) -> tuple[Tensor, Tensor, Tensor]:
    """Return [N], success [N] and length [N] of one episode per slot of `world` acting
    act(obs, context [N, ...]) on the task paying goal_rewards[g] at goal g (success: ended at
    a goal paying more than the step reward)."""
    n = world.num_envs
    obs = world.reset(seed)
    total = torch.zeros(n, dtype=torch.float64, device=world.device)
    success = torch.zeros(n, dtype=torch.bool, device=world.device)
    length = torch.zeros(n, dtype=torch.long, device=world.device)
    running = torch.ones(n, dtype=torch.bool, device=world.device)
    paid = goal_rewards.to(world.device).double()
    with torch.no_grad():
        for _ in range(world.episode_steps):
            follow_share()
            obs, _, terminated, truncated, info = world.step(act(obs, context))
            goal = info["goal"]
            reward = torch.where(goal >= 0, paid[goal.clamp(min=0)], world.step_reward)
            total += torch.where(running, reward, 0.0)
            length += running.long()
            success |= running & terminated & (reward > world.step_reward)
            running &= ~(terminated | truncated)
            if not running.any():
                break
    return total, success, length


def score_goal_task(
    section: PointGoalsConfig,
    act: Act,
    goal_rewards: Tensor,
    episodes: int,
    seed: int = EVAL_SEED,
    device: str = "cpu",
    context: Tensor | None = None,
) -> dict:
    """One result row of the task paying goal_rewards [G]: the policy's mean return (95% CI),
    success and length over the first episodes of seeds `seed`, `seed` + 1, ... beside the
    exact optimum and the uniform-random policy's return (an estimate from RANDOM_ROLLOUTS
    episodes per start), the normalised return, and the fraction of starts whose optimum is
    exact (1.0 on ring layouts). The policy is given `context` (default: zeros [1]). Any point
    world registered with a section of this shape (an `optimum` oracle) is scored alike."""
    make = world_entry(section.name).make
    world = make(section, episodes, device)
    given = torch.zeros(1, device=world.device) if context is None else context.to(world.device)
    returns, success, length = goal_task_returns(
        world, act, given.expand(episodes, -1), goal_rewards, seed
    )
    world.reset(seed)
    best, _, exact = world.optimum(goal_rewards)
    chance = make(section, episodes * RANDOM_ROLLOUTS, device)
    seeds = world.seeds.repeat_interleave(RANDOM_ROLLOUTS)
    generator = torch.Generator(device=world.device).manual_seed(seed)

    def uniform(obs: Tensor, _: Tensor) -> Tensor:
        return chance.action_spec.sample(obs.shape[0], generator, chance.device)

    chance_context = torch.zeros(chance.num_envs, 1, device=world.device)
    random_returns, *_ = goal_task_returns(chance, uniform, chance_context, goal_rewards, seeds)
    mean, half = mean_ci(returns)
    oracle_mean, random_mean = best.mean().item(), random_returns.mean().item()
    return {
        "return": mean,
        "ci95": half,
        "success": success.double().mean().item(),
        "length": length.double().mean().item(),
        "oracle_return": oracle_mean,
        "random_return": random_mean,
        "normalized_return": normalized_return(mean, oracle_mean, random_mean),
        "exact_fraction": exact.double().mean().item(),
    }


def evaluate(section: PointGoalsConfig, act: Act, episodes: int, device: str) -> list[dict]:
    """Every head's greedy policy on its own reward, scored against the exact optimum."""
    world = world_entry(section.name).make(section, 1, device)
    eye = torch.eye(len(world.head_names), device=world.device)
    return [
        {
            "task": name,
            **score_goal_task(
                section, act, world.goal_reward[:, k], episodes, device=device, context=eye[k]
            ),
        }
        for k, name in enumerate(world.head_names)
    ]


register_world("point_goals", PointGoalsConfig, make, evaluate, score_goals=score_goal_task)
