"""Walls in the point-goals world: the moves they refuse, shortest paths around them as lower
bounds that brute force respects, and grid plans around them that the world's own steps walk."""

import math

import pytest
import torch

from composable_rl.config import Config, ConfigError, from_dict
from composable_rl.maths import point_oracle as po
from envs.check import check_world
from envs.point_goals import PointGoals, PointGoalsConfig

WALL = [1.9, 1.2, 1.9, 1.8]  # between the start region and goal a
SMALL = PointGoalsConfig(
    size=3.0,
    dt=0.3,
    goal_radius=0.25,
    start_radius=0.2,
    colours=["red"],
    shapes=["a", "b"],
    goal_positions=[[2.3, 1.5], [1.5, 0.7]],
    walls=[WALL],
)


def test_a_move_that_meets_a_wall_is_refused_and_lower_bounds_may_graze_its_ends():
    walls = torch.tensor([WALL])
    starts = torch.tensor([[1.7, 1.5], [1.7, 1.5], [1.7, 1.9], [1.9, 1.0], [1.7, 1.8]])
    ends = torch.tensor([[2.1, 1.5], [1.8, 1.5], [2.1, 1.9], [1.9, 1.3], [2.1, 1.8]])
    assert po.wall_hits(starts, ends, walls).tolist() == [True, False, False, True, True]
    # only the first crosses the wall's inside; the others run along it or graze its end
    assert po.wall_hits(starts, ends, walls, proper=True).tolist() == [True] + [False] * 4
    gaps = po.wall_gaps(torch.tensor([[1.5, 1.5], [1.9, 2.2], [2.2, 0.8]]), walls)[:, 0]
    assert gaps.tolist() == pytest.approx([0.4, 0.4, 0.5])


def test_the_world_keeps_the_contract_and_a_step_into_a_wall_slides_along_it():
    world = PointGoals(SMALL, 3, "cpu")
    check_world(world)
    world.agent = torch.tensor([[1.8, 1.5], [1.8, 1.0], [1.8, 1.5]])
    world.step(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]]))
    expected = torch.tensor([[1.8, 1.5], [2.1, 1.0], [1.8, 1.74]])  # head-on, clear, along
    assert torch.allclose(world.agent, expected)
    corner = torch.tensor([WALL, [1.5, 1.6, 1.85, 1.6]])  # sliding up meets the second wall
    start = torch.tensor([[1.8, 1.5]])
    assert torch.equal(po.slide(start, torch.tensor([[2.0, 1.7]]), corner), start)


def brute_force_steps(world: PointGoals, start: torch.Tensor, depth: int) -> torch.Tensor:
    """Fewest steps [G] into each goal over every sequence of up to `depth` full-speed moves in
    36 even directions, straight at each goal and just past each end of each wall (depth + 1:
    none does)."""
    centres = world.objects[0]
    angles = torch.arange(36) * (2 * math.pi / 36)
    corners = world.walls.view(-1, 1, 2) + 1e-3 * torch.tensor([[1, 1], [1, -1], [-1, 1], [-1, -1]])
    best = torch.full((len(centres),), depth + 1)
    agent = start[None]
    for d in range(1, depth + 1):
        targets = torch.cat([centres, corners.view(-1, 2)])
        aims = torch.cat(
            [
                targets[None] - agent[:, None],
                torch.stack([angles.cos(), angles.sin()], 1).expand(len(agent), -1, -1),
            ],
            1,
        )
        moves = world.speed * aims / aims.norm(dim=-1, keepdim=True)
        agent = agent.repeat_interleave(moves.shape[1], 0)
        objects = centres.expand(len(agent), -1, -1)
        agent, _, terminated, goal = world.transition(agent, objects, moves.flatten(0, 1))
        for g in goal[terminated].unique().tolist():
            best[g] = min(best[g], d)
        agent = agent[~terminated]
    return best


def walk_plan(world: PointGoals, start: torch.Tensor, goal: int, plans: po.GridPlans) -> int:
    """Steps of following `plans` into `goal` with the world's own moves: straight in when one
    step ends in it, else onto the reachable grid point with the shortest plan."""
    steps, points, _, walls = plans
    centre, position = world.objects[0, goal].double(), start.double()
    for walked in range(1, 50):
        into = po.nearest_points(position, centre, world.radius)
        if (into - position).norm() <= world.step_length and not po.wall_hits(
            position, into, walls
        ):
            target = position + (centre - position) * world.step_length / (centre - position).norm()
        else:
            near = ((points - position).norm(dim=-1) <= world.step_length) & ~po.wall_hits(
                position.expand_as(points), points.nan_to_num(posinf=0.0), walls
            )
            target = points.view(-1, 2)[
                torch.where(near, steps[goal], torch.inf).flatten().argmin()
            ]
        moved, _, terminated, entered = world.transition(
            position.float()[None],
            world.objects[:1],
            ((target - position) / world.dt).float()[None],
        )
        assert not torch.equal(moved[0].double(), position), "the plan ran into a wall"
        if terminated[0]:
            assert entered.item() == goal
            return walked
        position = moved[0].double()
    raise AssertionError("the plan never arrived")


def test_paths_around_a_wall_bound_brute_force_from_below_and_plans_walk_from_above():
    world = PointGoals(SMALL, 6, "cpu")
    starts = world.agent.clone()
    lower = po.goal_steps(starts, world.objects, world.radius, world.step_length, world.walls)
    plans = world.plans()
    upper = po.planned_legs(starts, world.objects[0], world.radius, world.step_length, plans)
    straight = po.goal_steps(starts, world.objects, world.radius, world.step_length)
    assert (lower[:, 0] >= straight[:, 0]).all() and (lower[:, 0] > straight[:, 0]).any()
    assert torch.equal(lower[:, 1], straight[:, 1])
    for i, start in enumerate(starts):
        found = brute_force_steps(world, start, depth=3)
        assert (found >= lower[i]).all(), (i, found, lower[i])
        for goal in range(2):
            assert walk_plan(world, start, goal, plans) == upper[i, goal]
        exact = upper[i] == lower[i]
        assert torch.equal(found[exact], lower[i][exact])
    assert (upper == lower).double().mean() > 0.5


def test_the_optimum_counts_steps_around_walls_and_says_where_it_is_exact():
    world = PointGoals(SMALL, 6, "cpu")
    world.agent = torch.tensor([[1.5, 1.5]] * 6)
    best, goal, exact = world.optimum(torch.tensor([2.0, -0.1]))
    # around the wall's upper end: 0.5 to it, then 0.5 to a's centre less its radius, 3 steps
    assert (goal == 0).all() and exact.all()
    assert best.tolist() == pytest.approx([2 * 2.0 - 0.1 * 2 - 2.0] * 6)


@pytest.mark.parametrize(
    ("walls", "problem"),
    [
        ([[1.0, 1.0, 2.0, 2.0]], "axis-aligned"),
        ([[1.0, 1.0, 1.0]], "x1, y1, x2, y2"),
        ([[2.0, -1.0, 2.0, 0.5]], "leaves the room"),
        ([[1.4, 1.0, 1.4, 2.0]], "start region"),
        ([[2.0, 1.5, 2.4, 1.5]], "touches the goal"),
    ],
)
def test_bad_walls_name_the_key_and_the_wall(walls, problem):
    section = {"name": "point_goals", **{k: v for k, v in vars(SMALL).items() if k != "walls"}}
    with pytest.raises(ConfigError, match=rf"env\.walls.*{problem}"):
        from_dict(Config, {"env": {**section, "walls": walls}})


def test_walls_must_keep_off_the_ring_of_drawn_goals():
    with pytest.raises(ConfigError, match="ring the goals are drawn on"):
        env = {"name": "point_goals", "placement": "random", "walls": [[4.0, 2.0, 4.0, 3.0]]}
        from_dict(Config, {"env": env})
