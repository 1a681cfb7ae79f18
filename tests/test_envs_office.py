"""Office world: the published map, primitive-task dynamics, starts, Gymnasium face, oracles."""

import warnings
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from composable_rl.config import ConfigError, WorldConfig, from_dict
from composable_rl.maths.oracle import product_steps, task_reward, world_value_iteration
from composable_rl.registry import make_world
from envs import OFFICE_ID
from envs.gridworld import tabulate
from envs.gym_env import OfficeEnv
from envs.office import LABELLED, START, OfficeWorld, cell_of, transition_table, xy_of
from tests.scalarize import scalarized

UP, RIGHT, DOWN, LEFT = range(4)
TABLE = transition_table()


def go(x: int, y: int, action: int) -> tuple[int, int]:
    return xy_of(int(TABLE[cell_of(x, y), action]))


def test_doors_and_walls_of_the_published_map():
    assert go(*START, RIGHT) == (3, 1)  # door between the bottom rooms at y = 1
    assert go(2, 0, RIGHT) == (2, 0)  # wall beside it
    assert go(1, 2, UP) == (1, 3) and go(10, 2, UP) == (10, 3)  # doors up from the bottom row
    assert go(4, 2, UP) == (4, 2) and go(7, 2, UP) == (7, 2)  # no door there
    for x in (1, 4, 7, 10):
        assert go(x, 5, UP) == (x, 6) and go(x, 6, DOWN) == (x, 5)
    assert go(5, 4, RIGHT) == (5, 4)  # middle-row rooms have no side doors
    assert go(0, 0, LEFT) == (0, 0) and go(11, 8, UP) == (11, 8)  # outer border
    assert go(4, 4, UP) == (4, 5)  # inside a room moves are free


def test_walls_are_symmetric_and_every_cell_is_reachable():
    opposite = {UP: DOWN, DOWN: UP, LEFT: RIGHT, RIGHT: LEFT}
    for cell in range(108):
        for action in range(4):
            nxt = int(TABLE[cell, action])
            if nxt != cell:
                assert int(TABLE[nxt, opposite[action]]) == cell
    seen, queue = {cell_of(*START)}, deque([cell_of(*START)])
    while queue:
        for nxt in TABLE[queue.popleft()].tolist():
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    assert len(seen) == 108


def test_labels_goals_and_heads():
    world = OfficeWorld(num_envs=1, bound_heads=True)
    assert world.head_names == ["a", "b", "c", "d", "e", "f", "g", "n", "MAX", "MIN"]
    assert world.num_goals == 14 and world.goal_names[5] == "f(8,2)"
    assert [world.alphabet[int(world.labels(torch.tensor(cell_of(*xy))))] for _, xy in LABELLED][
        :3
    ] == [frozenset("a"), frozenset("b"), frozenset("c")]
    assert int(world.labels(torch.tensor(cell_of(*START)))) == 0
    assert world.goal_membership.sum(0).tolist() == [1, 1, 1, 1, 1, 2, 1, 6, 14, 0]


def test_coffee_then_office_path_of_fifteen_steps():
    """A hand-checked shortest path: past a plant and through two doors to coffee, then office."""
    world = OfficeWorld(num_envs=1, starts="standard")
    moves = [UP, LEFT, UP, RIGHT, UP, UP, LEFT, UP, RIGHT, UP, RIGHT, DOWN, RIGHT, DOWN, DOWN]
    cell, seen = cell_of(*START), []
    for action in moves:
        cell = int(world.next_cell[cell, action])
        seen.append(world.alphabet[int(world.labels(torch.tensor(cell)))])
    labelled = [(i + 1, sorted(label)) for i, label in enumerate(seen) if label]
    assert labelled == [(12, ["f"]), (15, ["g"])]
    # machine: 0 wants f, 1 wants g, 2 accepting, 3 sink after a plant
    machine = torch.arange(4)[:, None].repeat(1, 9)
    machine[0, 6], machine[1, 7], machine[0, 8], machine[1, 8] = 1, 2, 3, 3
    accepting = torch.tensor([False, False, True, False])
    steps = product_steps(world.next_cell, world.cell_label, machine, accepting)
    assert int(steps[cell_of(*START), 0]) == 15
    assert int(steps[cell_of(4, 5), 1]) == 1 and int(steps[cell_of(4, 4), 2]) == 0
    assert (steps[:, 3] == -1).all()


def test_product_steps_equals_a_plain_breadth_first_search():
    world = OfficeWorld(num_envs=1)
    gen = torch.Generator().manual_seed(3)
    machine = torch.randint(0, 5, (5, 9), generator=gen)
    accepting = torch.tensor([False, False, False, True, False])
    steps = product_steps(world.next_cell, world.cell_label, machine, accepting)
    for start in (cell_of(*START), 0, 50):
        for state in range(5):
            frontier, seen, found = deque([(start, state, 0)]), {(start, state)}, -1
            while frontier:
                cell, u, d = frontier.popleft()
                if accepting[u]:
                    found = d
                    break
                for nxt in world.next_cell[cell].tolist():
                    key = (nxt, int(machine[u, world.cell_label[nxt]]))
                    if key not in seen:
                        seen.add(key)
                        frontier.append((*key, d + 1))
            assert int(steps[start, state]) == found


def test_episode_ends_on_labelled_cells_with_per_head_rewards():
    world = OfficeWorld(num_envs=2, bound_heads=True)
    world.agent = torch.tensor([cell_of(8, 1), cell_of(0, 0)])
    reward, terminated, truncated, goal = world.advance(torch.tensor([UP, RIGHT]))
    assert terminated.tolist() == [True, False] and not truncated.any()
    assert goal.tolist() == [5, -1]  # coffee at (8, 2); (1, 0) carries no proposition
    f, big, small = world.head_names.index("f"), world.head_names.index("MAX"), -1
    assert reward[0, f] == 2.0 and reward[0, big] == 2.0 and reward[0, small] == -0.1
    assert reward[0, 0] == -0.1 and (reward[1] == -0.1).all()


def test_starts_auto_reset_and_observations():
    standard = OfficeWorld(num_envs=8, starts="standard")
    assert (standard.agent == cell_of(*START)).all()
    unlabelled = OfficeWorld(num_envs=512, starts="unlabelled")
    assert (unlabelled.labels(unlabelled.agent) == 0).all()
    anywhere = OfficeWorld(num_envs=4096)
    assert set(anywhere.agent.tolist()) == set(range(108))  # goal cells are starts as well
    world = OfficeWorld(num_envs=1, starts="standard", max_steps=3)
    for _ in range(3):
        obs, _, terminated, truncated, info = world.step(torch.tensor([DOWN]))
    assert truncated.item() and not terminated.item() and int(world.t[0]) == 0
    assert info["final_obs"].tolist() == [[cell_of(2, 0)]] and obs.tolist() == [[cell_of(*START)]]
    planes = OfficeWorld(num_envs=1, observation="planes", starts="standard")
    obs = planes.reset(0)
    assert obs.shape == (1, 9, 9, 12) and obs.dtype == torch.uint8
    assert obs[0, 0].sum() == 1 and obs[0, 1:].sum() == 14
    assert planes.render_rgb().shape == (9 * 16, 12 * 16, 3)


def test_world_values_reach_every_goal_by_a_shortest_path():
    world = OfficeWorld(num_envs=1, bound_heads=True)
    mdp = tabulate(world, world.objects)
    assert mdp.valid.all()
    reward = task_reward(mdp, torch.full((14,), 2.0), -0.1)
    q = world_value_iteration(mdp, reward, 14, -5.0, 0.95, 0.0)[0]
    cell, steps = cell_of(*START), 0
    while world.cell_goal[cell] < 0 and steps < 30:
        cell, steps = int(world.next_cell[cell, q[cell, 7].argmax()]), steps + 1  # 7 = office
    assert int(world.cell_goal[cell]) == 7 and steps == 19  # around the coffee cell and a plant


def test_make_world_and_gymnasium_face():
    world = make_world(from_dict(WorldConfig, {"name": "office"}), 3)
    assert isinstance(world, OfficeWorld) and world.num_envs == 3
    with pytest.raises(ConfigError, match="unknown world 'kitchen'; registered worlds: .*office"):
        from_dict(WorldConfig, {"name": "kitchen"}, "env")
    env = gym.make(OFFICE_ID, starts="standard")
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [cell_of(*START)]
    _, reward, terminated, _, info = env.step(RIGHT)
    assert not terminated and info["propositions"] == [] and reward.shape == (8,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        warnings.filterwarnings("ignore", message=".*alternative render modes")
        check_env(scalarized(OfficeEnv(render_mode="rgb_array"), np.eye(8)[5]))
