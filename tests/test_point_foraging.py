"""Foraging with continuous actions: the exact oracle against brute force, the world's steps by
hand, evaluation against the oracle, the homeostasis protocols on exact heads, and a tiny
trained run through the protocols' command line."""

import dataclasses
import json
import math

import pytest
import torch

from agents import training
from agents.homeostatic import FixedWeightAgent, HomeostaticAgent
from composable_rl.config import AgentConfig, Config, ConfigError, from_dict
from composable_rl.homeostasis import load_value_program
from composable_rl.maths import point_oracle as po
from composable_rl.registry import make_world
from envs.check import check_world
from envs.point_foraging import PointForaging, PointForagingConfig, evaluate
from envs.point_goals import move_point
from experiments import homeostasis
from experiments.homeostasis import (
    HOMEOSTATIC,
    MAXIMISER,
    Contender,
    over_consumption,
    salt_flip,
    setpoint_step,
)

GAMMA = 0.95
# A small room whose discs every start reaches within three steps of 0.3.
SMALL = PointForagingConfig(
    size=1.2,
    dt=0.3,
    radius=0.15,
    resources={"a": [[0.6, 0.6]], "b": [[0.2, 0.2], [0.3, 1.0]]},
    consumption={"a": {"energy": 0.1}, "b": {"hydration": 0.1}},
)


def brute_force_first(section: PointForagingConfig, start: torch.Tensor, depth: int):
    """First step [K] at which some sequence of up to `depth` moves (full speed in 36 even
    directions, or straight at a disc centre without passing it) pays each head; depth + 1
    where none does."""
    world = PointForaging(section, 1, "cpu")
    angles = torch.arange(36) * (2 * math.pi / 36)
    even = world.speed * torch.stack([angles.cos(), angles.sin()], 1)
    first = torch.full((len(world.head_names),), depth + 1)
    frontier = start[None]
    for d in range(1, depth + 1):
        moves = torch.cat(
            [even.expand(len(frontier), -1, -1), toward(world, frontier, world.centres)], 1
        )
        agents = frontier.repeat_interleave(moves.shape[1], 0)
        world = PointForaging(section, len(agents), "cpu")
        world.agent = agents.clone()
        _, reward, *_ = world.step(moves.reshape(-1, 2))
        first = torch.where(reward.bool().any(0) & (first > d), d, first)
        frontier = world.agent.clone()
    return first


def toward(world: PointForaging, position: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Actions [N, T, 2] straight from positions [N, 2] at targets [T, 2], at full speed but no
    further than the target."""
    offset = targets[None] - position[:, None]
    gap = offset.norm(dim=-1, keepdim=True)
    speed = torch.minimum(gap / world.dt, torch.tensor(world.speed))
    return torch.where(gap > 0, offset / gap.clamp(min=1e-9) * speed, 0.0)


def test_the_oracle_counts_the_first_paying_step_that_brute_force_finds():
    world = PointForaging(SMALL, 6, "cpu")
    starts = world.agent.clone()
    best = po.staying_returns(
        starts,
        world.centres.expand(6, -1, -1),
        world.radius,
        world.step_length,
        world.membership,
        world.episode_steps,
    )
    for i, start in enumerate(starts):
        first = brute_force_first(SMALL, start, depth=3)
        assert (first <= 3).all()  # every disc is within reach here: no bound is vacuous
        assert torch.equal(best[i], (world.episode_steps + 1 - first).double())


def test_staying_returns_by_hand():
    centres = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])  # [N=1, G=2, 2]
    membership = torch.tensor([[True, False], [False, True]])
    inside = po.staying_returns(torch.tensor([[1.1, 0.0]]), centres, 0.25, 0.5, membership, 10)
    assert inside.tolist() == [[10.0, 7.0]]  # in disc 0 now; disc 1 edge 1.65 away: 4 steps
    late = po.staying_returns(torch.tensor([[1.1, 0.0]]), centres, 0.25, 0.5, membership, 3)
    assert late.tolist() == [[3.0, 0.0]]  # disc 1 out of reach within 3 steps


def oracle_policy(world: PointForaging):
    """Straight at the nearest disc of the context's head, without passing its centre."""

    def act(obs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        position = (obs + 1) * world.size / 2
        gaps = (world.centres[None] - position[:, None]).norm(dim=-1)  # [N, G]
        mine = world.membership[:, context.argmax(1)].T
        target = world.centres[torch.where(mine, gaps, math.inf).argmin(1)]
        rows = torch.arange(len(obs))
        return toward(world, position, target)[rows, rows]

    return act


def test_the_world_keeps_the_contract_and_the_oracle_policy_scores_one():
    section = PointForagingConfig()
    world = PointForaging(section, 8, "cpu")
    check_world(world)
    assert world.head_names == world.resource_names == ["food", "water", "salt"]
    assert world.step_length > world.radius  # one step leaves a disc from anywhere in it
    for row in evaluate(section, oracle_policy(world), 32, "cpu"):
        assert row["normalized_return"] == pytest.approx(1.0), row
        assert row["random_return"] < 0.05 * row["oracle_return"]


def test_steps_pay_consume_drift_leave_and_die():
    section = dataclasses.replace(PointForagingConfig(), max_steps=4, initial_range=[0.5, 0.5])
    world = PointForaging(section, 2, "cpu")
    food = world.centres[0]
    world.agent = torch.stack([food - torch.tensor([0.3, 0.0]), food])
    stay = torch.zeros(2, 2)
    _, reward, terminated, truncated, info = world.step(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert reward.tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]  # in by the edge; stayed
    assert info["consumed"].tolist() == [0, 0] and not (terminated | truncated).any()
    assert info["internal"][0].tolist() == pytest.approx([0.5 + 0.075 - 0.003, 0.497, 0.499])
    _, reward, *_ = world.step(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))  # slot 0 leaves in one
    assert reward.sum(1).tolist() == [0.0, 1.0]
    diagonal = 0.25 / math.sqrt(2)  # (0.9, 0.9) is longer than the speed: scaled down to it
    assert move_point(food[None], torch.tensor([[0.9, 0.9]]), 1.0, 0.25, 5.0).tolist() == [
        pytest.approx([food[0].item() + diagonal, food[1].item() + diagonal])
    ]
    world.step(stay)
    *_, truncated, info = world.step(stay)
    assert truncated.all() and (world.t == 0).all()  # continuing task: cut at max_steps
    deadly = dataclasses.replace(section, death=True, viable_low=0.499)
    world = PointForaging(deadly, 1, "cpu")
    world.agent = torch.tensor([[2.5, 2.5]])
    _, _, terminated, truncated, info = world.step(torch.zeros(1, 2))
    assert terminated.all() and info["death"].all() and not truncated.any()


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"resources": {"food": [[1.0, 1.0]], "water": [[1.2, 1.0]]}}, "resources"),
        ({"resources": {"food": [[0.1, 2.0]]}}, "resources"),
        ({"resources": {"bread": [[1.0, 1.0]]}}, "consumption"),
        ({"initial_range": [0.8, 0.2]}, "initial_range"),
    ],
)
def test_bad_sections_name_the_key(env, key):
    with pytest.raises(ConfigError, match=f"env.{key}"):
        from_dict(Config, {"env": {"name": "point_foraging", **env}})


# --- The homeostasis protocols on exact heads --------------------------------------------------


class ExactPointHeads(torch.nn.Module):
    """A stand-in for trained soft actor-critic heads whose values are exact (hard values,
    gamma-discounted): Q_k(s, a) = r_k + gamma * gamma^(n - 1) / (1 - gamma), n the steps from
    where a leads to head k's nearest disc; it acts on the best of fixed candidate actions."""

    successor_features = False
    num_goals = 0

    def __init__(self, world: PointForaging) -> None:
        super().__init__()
        self.world, self.head_names = world, list(world.head_names)
        self.action_spec = world.action_spec
        self.cfg = AgentConfig(gamma=GAMMA, alpha=0.1)
        self.scale = torch.nn.Parameter(torch.ones(1), requires_grad=False)
        angles = torch.arange(32) * (2 * math.pi / 32)
        self.even = torch.cat([torch.zeros(1, 2), torch.stack([angles.cos(), angles.sin()], 1)])

    def values(self, position: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Exact Q [N, K, C] of candidate actions [N, C, 2] at positions [N, 2]."""
        w = self.world
        n, c, _ = actions.shape
        after = move_point(
            position.repeat_interleave(c, 0), actions.reshape(-1, 2), 1.0, w.dt, w.size
        )
        gaps = (w.centres[None] - after[:, None]).norm(dim=-1)  # [N * C, G]
        steps = po.goal_steps(after, w.centres.expand(len(after), -1, -1), w.radius, w.step_length)
        pays = (gaps <= w.radius).float() @ w.membership.float()  # [N * C, K]
        nearest = torch.where(w.membership[None], steps[..., None], 10_000).amin(1)
        q = pays + GAMMA * GAMMA ** (nearest - 1).float() / (1 - GAMMA)
        return q.view(n, c, -1).transpose(1, 2)

    def act_on(self, obs, compose, *, alpha=None, generator=None, weights=None, quantile=None):
        """The candidate of highest composed value (greedy: no quantiliser)."""
        assert quantile is None
        position = (obs + 1) * self.world.size / 2
        actions = torch.cat(
            [self.even.expand(len(obs), -1, -1), toward(self.world, position, self.world.centres)],
            1,
        )
        best = compose(self.values(position, actions)).argmax(1)
        return actions[torch.arange(len(obs)), best]


@pytest.fixture(scope="module")
def exact():
    """(contenders, program, world) of exact heads on the default point-foraging world."""
    section = PointForagingConfig()
    world = make_world(section, 1)
    heads = ExactPointHeads(world)
    program = load_value_program("configs/values/default.yaml", heads.head_names)
    assert HomeostaticAgent(heads, program, 1).alpha == 0.0  # continuous: the best candidate

    def homeostatic(n: int, scale: list[float] | None) -> HomeostaticAgent:
        return HomeostaticAgent(heads, program, n, scale)

    def maximiser(n: int, scale: list[float] | None) -> FixedWeightAgent:
        return FixedWeightAgent(heads, program, head_scale=scale)

    found = [Contender(HOMEOSTATIC, homeostatic, section), Contender(MAXIMISER, maximiser, section)]
    return found, program, world


def table(rows: list[dict]) -> dict[tuple[str, str], float]:
    """{(agent, metric): value} of protocol rows."""
    return {(row["agent"], row["metric"]): row["value"] for row in rows}


def test_exact_heads_meet_p1_to_p3(exact):
    found, program, world = exact
    rows, _ = setpoint_step(found, program, 6, 1000, "energy", 0.8, 0.1, 10_000, None)
    got = table(rows)
    assert got[HOMEOSTATIC, "time_in_band"] >= 0.9 and got[HOMEOSTATIC, "deaths"] == 0.0
    assert got[HOMEOSTATIC, "final_mean"] == pytest.approx(0.8, abs=0.05)
    assert got[MAXIMISER, "deaths"] > 0
    got = table(salt_flip(found, program, world, 50, 50, 0.8, 0.1, 10_000))
    assert got[HOMEOSTATIC, "p_salt_replete"] < 0.1 and got[HOMEOSTATIC, "p_salt_depleted"] > 0.8
    got = table(over_consumption(found, program, world, 6, 1000, 200, 10.0, 10_000))
    assert got[HOMEOSTATIC, "above_band"] <= 0.01 and got[MAXIMISER, "above_band"] > 0.5


# --- A tiny trained run through the command line -----------------------------------------------


def test_a_tiny_run_goes_through_the_protocols_command_line(tmp_path):
    cfg = from_dict(
        Config,
        {
            "env": {"name": "point_foraging", "num_envs": 4, "max_steps": 20},
            "agent": {"heads": "soft_actor_critic", "hidden": [16]},
            "replay": {"learning_starts": 64, "batch_size": 32},
            "total_steps": 200,
            "eval_episodes": 2,
        },
    )
    result = training.train(cfg, tmp_path / "run", progress=False)
    assert [row["task"] for row in result["eval"]] == ["food", "water", "salt"]
    argv = ["--checkpoint", str(tmp_path / "run"), "--json", str(tmp_path / "rows.json")]
    argv += ["--seeds", "2", "--steps", "40", "--trials", "4", "--window", "10"]
    argv += ["--burn-in", "5", "--plot", str(tmp_path / "p1.png")]
    rows = homeostasis.main(argv)
    assert json.loads((tmp_path / "rows.json").read_text()) == rows
    assert {row["agent"] for row in rows} == {HOMEOSTATIC, MAXIMISER}
    assert {row["protocol"] for row in rows} == {"P1", "P2", "P3"}
    assert (tmp_path / "p1.png").is_file()
