"""Foraging with continuous actions: a point with bounded velocity control in a square room of
resource discs, with the internal levels of the foraging world (`envs.levels`).

    x' = clip(x + dt * u, 0, size),   |u| <= speed (longer actions are scaled down)

Every step that ends inside a resource's disc consumes it: that resource's head pays 1 and the
levels change by its consumption row; the levels also drift every step. A continuing task:
consumption never ends an episode, which is truncated after `max_steps` steps (and, with
`death`, ends on the step that leaves some level outside its viable range). The heads see only
the position; the levels reach a controller through `info["internal"]` and `world.internal`.
Exact oracle: a head's best return is to reach its nearest disc as soon as possible and stay
(`point_oracle.staying_returns`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from types import MappingProxyType

import torch
from torch import Tensor

from composable_rl.config import doc
from composable_rl.evaluation import episode_returns, mean_ci, normalized_return
from composable_rl.maths import point_oracle as oracle
from composable_rl.registry import register_world
from composable_rl.world import Act, ActionSpec, ObservationSpec
from envs.gridworld import SavedEpisodes, Seed, hash_uniform, slot_seeds
from envs.levels import DEFAULT_CONSUMPTION, Levels, LevelsConfig
from envs.point_goals import EVAL_SEED, RANDOM_ROLLOUTS, move_point

# Food and water in the top corners, salt at the bottom: discs 10 to 12 full steps apart, as the
# resource cells of the discrete foraging room are 8 to 12 steps apart.
DEFAULT_RESOURCES: Mapping[str, tuple[tuple[float, float], ...]] = MappingProxyType(
    {"food": ((1.0, 4.0),), "water": ((4.0, 4.0),), "salt": ((2.5, 1.0),)}
)
START_DRAWS = 8  # start points drawn per episode; the first outside every disc is taken


@dataclasses.dataclass
class PointForagingConfig(LevelsConfig):
    """point_foraging: a point with velocity control among resource discs, with internal levels,
    for homeostatic control with continuous actions (exact oracle for every head)."""

    name: str = doc("point_foraging", "This world.")
    max_steps: int = doc(100, "Steps before an episode is truncated (bootstrapped).", ge=1)
    size: float = doc(5.0, "The room is the square [0, size]^2.", gt=0)
    speed: float = doc(1.0, "Largest speed |u|; actions lie in [-speed, speed]^2.", gt=0)
    dt: float = doc(0.25, "Time step: x' = x + dt * u.", gt=0)
    radius: float = doc(
        0.2,
        "Radius of every resource disc; below speed * dt, one step leaves a disc from anywhere "
        "in it, as one step leaves a resource cell of the grid.",
        gt=0,
    )
    resources: dict[str, list[list[float]]] | None = doc(
        None,
        "[x, y] disc centres per resource type; null = food (1, 4), water (4, 4), salt (2.5, 1).",
    )

    def centres(self) -> dict[str, list[list[float]]]:
        """Disc centres per resource, the defaults where `resources` is null."""
        given = self.resources if self.resources is not None else DEFAULT_RESOURCES
        return {name: [list(c) for c in centres] for name, centres in given.items()}

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        yield from super().problems()
        centres = self.centres()
        if not centres or any(not discs for discs in centres.values()):
            yield "resources", f"need at least one [x, y] disc per resource, got {self.resources}"
            return
        discs = [c for found in centres.values() for c in found]
        if any(len(c) != 2 for c in discs):
            yield "resources", f"every disc centre is [x, y], got {self.resources}"
            return
        for x, y in discs:
            if min(x, y) < self.radius or max(x, y) > self.size - self.radius:
                yield "resources", f"disc [{x:g}, {y:g}] does not fit in the room"
        for i, a in enumerate(discs):
            for b in discs[i + 1 :]:
                if math.dist(a, b) <= 2 * self.radius:
                    yield "resources", f"discs {a} and {b} overlap"
        consumption = self.consumption if self.consumption is not None else DEFAULT_CONSUMPTION
        for name in consumption:
            if name not in centres:
                yield "consumption", f"unknown resource {name!r}; resources: {list(centres)}"


class PointForaging(Levels, SavedEpisodes):
    """N points stepped together among fixed resource discs; rewards [N, K], one head per
    resource. State: `agent` [N, 2] positions, `internal` [N, V] levels, `t`, `consumed` (the
    resource consumed on the last step, -1 none), `seeds` and `episode` (every draw hashes
    both)."""

    episode_state = ("seeds", "episode", "agent", "internal", "t", "consumed")

    def __init__(
        self, section: PointForagingConfig, num_envs: int, device: str | torch.device
    ) -> None:
        self.num_envs, self.device = num_envs, torch.device(device)
        self.section, self.episode_steps = section, section.max_steps
        self.size, self.speed, self.dt, self.radius = (
            section.size,
            section.speed,
            section.dt,
            section.radius,
        )
        self.step_length = section.speed * section.dt
        centres = section.centres()
        self.resource_names = list(centres)
        self.head_names = list(self.resource_names)
        kinds = [self.resource_names.index(n) for n in centres for _ in centres[n]]
        self.centres = torch.tensor(
            [c for n in centres for c in centres[n]], dtype=torch.float32, device=self.device
        )
        self.disc_resource = torch.tensor(kinds, dtype=torch.long, device=self.device)
        self.membership = self.disc_resource[:, None] == torch.arange(
            len(self.resource_names), device=self.device
        )
        self._one_hot = torch.eye(len(self.resource_names), device=self.device)
        self.setup_levels(**section.levels_kwargs())
        self._draws = torch.arange(2 * START_DRAWS + self.num_variables, device=self.device)
        self.observation_spec = ObservationSpec((2,), torch.float32, "vector")
        self.action_spec = ActionSpec.box((2,), -section.speed, section.speed)
        self.reset(0)

    def sample_start(self, seeds: Tensor, episodes: Tensor) -> tuple[Tensor, Tensor]:
        """Start positions [B, 2], uniform in the room outside every disc (the first of
        START_DRAWS uniform points that is, else the last), and initial levels [B, V]."""
        u = hash_uniform(seeds, episodes, self._draws)
        points = (self.size * u[:, : 2 * START_DRAWS]).float().view(-1, START_DRAWS, 2)
        gaps = (points[:, :, None] - self.centres).norm(dim=-1)  # [B, D, G]
        outside = (gaps > self.radius).all(-1)
        pick = torch.where(outside.any(1), outside.float().argmax(1), START_DRAWS - 1)
        start = points[torch.arange(len(points), device=self.device), pick]
        return start, self.draw_levels(u[:, 2 * START_DRAWS :])

    def observe(self, agent: Tensor) -> Tensor:
        """Positions [N, 2] scaled to [-1, 1]."""
        return 2 * agent / self.size - 1

    def current_obs(self) -> Tensor:
        """Observation of the current state of every slot."""
        return self.observe(self.agent)

    def reset(self, seed: Seed = 0) -> Tensor:
        """Seed every slot (an int s gives slot i the seed s + i), start episode 0; returns obs."""
        self.seeds = slot_seeds(seed, self.num_envs, self.device)
        self.episode = torch.zeros_like(self.seeds)
        self.agent, self.internal = self.sample_start(self.seeds, self.episode)
        self.t = torch.zeros_like(self.seeds)
        self.consumed = torch.full_like(self.seeds, -1)
        return self.current_obs()

    def start_episodes(self, mask: Tensor) -> None:
        """Begin the next episode (counter + 1, fresh start and levels) where mask."""
        self.episode = self.episode + mask.long()
        start, levels = self.sample_start(self.seeds, self.episode)
        self.agent = torch.where(mask[:, None], start, self.agent)
        self.internal = torch.where(mask[:, None], levels, self.internal)
        self.t = self.t.masked_fill(mask, 0)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Step all slots; finished ones auto-reset. info: final_obs, goal (-1), death, consumed
        (the resource consumed [N], -1 none) and internal, the levels each step reached."""
        self.agent = move_point(self.agent, actions, self.speed, self.dt, self.size)
        inside = (self.centres - self.agent[:, None]).norm(dim=-1) <= self.radius  # [N, G]
        disc = inside.float().argmax(1)
        self.consumed = torch.where(inside.any(1), self.disc_resource[disc], -1)
        reward = torch.where(
            (self.consumed >= 0)[:, None], self._one_hot[self.consumed.clamp(min=0)], 0.0
        )
        died = self.update_levels(self.consumed)
        self.t = self.t + 1
        truncated = ~died & (self.t >= self.episode_steps)
        internal, final_obs = self.internal.clone(), self.current_obs()
        self.start_episodes(died | truncated)
        info = {
            "final_obs": final_obs,
            "goal": torch.full_like(self.consumed, -1),
            "internal": internal,
            "death": died,
            "consumed": self.consumed,
        }
        return self.current_obs(), reward, died, truncated, info

    def optimum(self) -> Tensor:
        """`point_oracle.staying_returns` [N, K] of the episodes just begun (exact without
        death, which may end an episode before its last step)."""
        return oracle.staying_returns(
            self.agent,
            self.centres.expand(self.num_envs, -1, -1),
            self.radius,
            self.step_length,
            self.membership,
            self.episode_steps,
        )


def make(section: PointForagingConfig, num_envs: int, device: str) -> PointForaging:
    """A world of `num_envs` points."""
    return PointForaging(section, num_envs, device)


def evaluate(section: PointForagingConfig, act: Act, episodes: int, device: str) -> list[dict]:
    """Every head's greedy policy on its own reward over one episode from each of `episodes`
    starts, beside the exact optimum and the uniform-random return (RANDOM_ROLLOUTS episodes
    per start), with death off: the heads' rewards do not see the levels."""
    section = dataclasses.replace(section, death=False)
    world = PointForaging(section, episodes, device)
    world.reset(EVAL_SEED)
    best = world.optimum().mean(0)
    chance = PointForaging(section, episodes * RANDOM_ROLLOUTS, device)
    generator = torch.Generator(device=chance.device).manual_seed(EVAL_SEED)

    def uniform(obs: Tensor, _: Tensor) -> Tensor:
        return chance.action_spec.sample(obs.shape[0], generator, chance.device)

    eye = torch.eye(len(world.head_names), device=world.device)
    seeds = world.seeds.repeat_interleave(RANDOM_ROLLOUTS)
    random = episode_returns(chance, uniform, eye[0], seeds).mean(0)
    rows = []
    for k, name in enumerate(world.head_names):
        mean, half = mean_ci(episode_returns(world, act, eye[k], EVAL_SEED)[:, k])
        oracle_mean, random_mean = best[k].item(), random[k].item()
        rows.append(
            {
                "task": name,
                "return": mean,
                "ci95": half,
                "oracle_return": oracle_mean,
                "random_return": random_mean,
                "normalized_return": normalized_return(mean, oracle_mean, random_mean),
            }
        )
    return rows


register_world("point_foraging", PointForagingConfig, make, evaluate)
