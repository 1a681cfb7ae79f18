"""Exact oracles: tabulation against the engine, soft VI by hand, finite horizons against BFS."""

import math
from collections import deque

import pytest
import torch

from composable_rl.maths.functional import soft_value
from composable_rl.maths.oracle import (
    TabularMDP,
    backup,
    discounted_optimal_policy,
    finite_horizon_return,
    soft_value_iteration,
    task_reward,
)
from envs.gridworld import tabulate
from envs.object_rooms import ObjectRooms

CORRIDOR = ("#####", "#...#", "#####")


def corridor_world() -> ObjectRooms:
    """One blue square at (1, 1); the agent can stand on a = (1, 2) or b = (1, 3)."""
    return ObjectRooms(
        num_envs=1,
        layout=CORRIDOR,
        colours=("blue",),
        shapes=("square",),
        object_positions=[[1, 1]],
    )


def test_tabulate_matches_engine_steps():
    world = ObjectRooms(num_envs=256)
    world.reset(3)
    layout = world.objects[:1].clone()
    mdp = tabulate(world, layout)
    expected_valid = ~world.walls.flatten()
    expected_valid[layout[0]] = False
    assert torch.equal(mdp.valid[0], expected_valid)
    invalid = ~mdp.valid[0]
    assert torch.equal(mdp.next_state[0][invalid], torch.arange(169)[invalid, None].expand(-1, 4))
    assert not mdp.terminal[0][invalid].any() and (mdp.reward[0][invalid] == 0).all()
    valid_cells = torch.nonzero(mdp.valid[0]).flatten()
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        world.objects = layout.repeat(256, 1)  # auto-reset may have replaced some layouts
        world.agent = valid_cells[torch.randint(len(valid_cells), (256,), generator=generator)]
        actions = torch.randint(0, 4, (256,), generator=generator)
        start = world.agent.clone()
        _, reward, terminated, _, info = world.step(actions)
        assert torch.equal(mdp.reward[0, start, actions], reward.double())
        assert torch.equal(mdp.terminal[0, start, actions], terminated)
        assert torch.equal(mdp.goal[0, start, actions], info["goal"])
        moved = mdp.next_state[0, start, actions]
        final_agent = info["final_obs"][:, 1].flatten(1).argmax(1)
        assert torch.equal(moved, final_agent)
    assert (mdp.goal[0] >= 0).sum() == mdp.terminal[0].sum() > 0


def test_soft_value_iteration_by_hand_on_a_corridor():
    world = corridor_world()
    mdp = tabulate(world, world.fixed_objects[None])
    reward = mdp.reward @ torch.tensor([1.0, 0.0], dtype=torch.float64)
    a, b = 7, 8
    step, goal = float(reward[0, a, 0]), float(reward[0, a, 3])
    assert step == pytest.approx(-0.1) and goal == 2.0
    gamma, alpha = 0.9, 0.5

    def v(qs: list[float]) -> float:
        return alpha * math.log(sum(math.exp(x / alpha) for x in qs))

    def q_values(va: float, vb: float) -> tuple[list[float], list[float]]:
        # actions up, right, down, left; walls above and below, the object left of a.
        qa = [step + gamma * va, step + gamma * vb, step + gamma * va, goal]
        qb = [step + gamma * vb, step + gamma * vb, step + gamma * vb, step + gamma * va]
        return qa, qb

    va = vb = 0.0
    for _ in range(2000):
        qa, qb = q_values(va, vb)
        va, vb = v(qa), v(qb)
    q = soft_value_iteration(mdp, reward, gamma=gamma, alpha=alpha)
    assert q[0, a].tolist() == pytest.approx(q_values(va, vb)[0], abs=1e-9)
    assert q[0, b].tolist() == pytest.approx(q_values(va, vb)[1], abs=1e-9)

    hard = soft_value_iteration(mdp, reward, gamma=gamma, alpha=0.0)
    # Closed form: V(a) = 2 (collect now), V(b) = -0.1 + 0.9 * 2 = 1.7.
    assert hard[0, a].tolist() == pytest.approx([1.7, 1.43, 1.7, 2.0], abs=1e-6)
    assert hard[0, b].tolist() == pytest.approx([1.43, 1.43, 1.43, 1.7], abs=1e-6)


def test_soft_vi_gamma_zero_is_the_immediate_reward():
    world = corridor_world()
    mdp = tabulate(world, world.fixed_objects[None])
    reward = mdp.reward[..., 0]
    q = soft_value_iteration(mdp, reward, gamma=0.0, alpha=0.3)
    assert torch.equal(q[mdp.valid], reward[mdp.valid])


def test_small_alpha_approaches_hard_value_iteration():
    world = ObjectRooms(num_envs=4)
    world.reset(9)
    mdp = tabulate(world, world.objects)
    reward = mdp.reward @ torch.tensor([1.0, 0.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    gamma = 0.95
    hard = soft_value_iteration(mdp, reward, gamma=gamma, alpha=0.0)
    for alpha in (0.05, 0.001):
        soft = soft_value_iteration(mdp, reward, gamma=gamma, alpha=alpha)
        gap = (soft - hard)[mdp.valid]
        assert (gap >= -1e-9).all() and gap.max() <= alpha * math.log(4) / (1 - gamma) + 1e-9
    fixed_point = backup(mdp, reward, soft_value(soft, 0.001), gamma)
    assert torch.allclose(fixed_point[mdp.valid], soft[mdp.valid], atol=1e-8)


def bfs_distances(walls: torch.Tensor, source: int, blocked: set[int]) -> dict[int, int]:
    """Steps from every reachable cell to source, never passing through blocked cells."""
    height, width = walls.shape
    dist, queue = {source: 0}, deque([source])
    while queue:
        here = queue.popleft()
        row, col = divmod(here, width)
        for nr, nc in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)):
            there = nr * width + nc
            if walls[nr, nc] or there in blocked or there in dist:
                continue
            dist[there] = dist[here] + 1
            queue.append(there)
    return dist


@pytest.mark.parametrize("horizon", [6, 50])
def test_finite_horizon_optimum_equals_shortest_path_return(horizon):
    world = ObjectRooms(num_envs=3, step_reward=-0.1, r_max=2.0, r_min=-0.1)
    world.reset(21)
    weights = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    mdp = tabulate(world, world.objects)
    values = finite_horizon_return(mdp, mdp.reward @ weights, horizon)
    goal_values = (torch.where(world.goal_membership, 2.0, -0.1).double() @ weights).tolist()
    step = -0.1 * float(weights.sum())  # every head pays the step reward
    for layout in range(3):
        objects = world.objects[layout].tolist()
        dists = [bfs_distances(world.walls, o, set(objects) - {o}) for o in objects]
        for s in torch.nonzero(mdp.valid[layout]).flatten().tolist():
            options = [step * horizon]
            for m, dist in enumerate(dists):
                if s in dist and dist[s] <= horizon:
                    options.append(goal_values[m] + step * (dist[s] - 1))
            assert float(values[layout, s]) == pytest.approx(max(options), abs=1e-5)


def test_single_object_return_is_r_max_plus_path_cost():
    world = ObjectRooms(
        num_envs=1, colours=("blue",), shapes=("square",), object_positions=[[9, 9]]
    )
    mdp = tabulate(world, world.fixed_objects[None])
    values = finite_horizon_return(mdp, mdp.reward[..., 0], horizon=50)
    dist = bfs_distances(world.walls, 9 * 13 + 9, set())
    for s in torch.nonzero(mdp.valid[0]).flatten().tolist():
        assert float(values[0, s]) == pytest.approx(2.0 - 0.1 * (dist[s] - 1), abs=1e-5)


def test_random_return_matches_monte_carlo():
    kwargs = {
        "layout": "open5",
        "object_positions": [[1, 1], [1, 5], [3, 3], [5, 1], [5, 5], [2, 4]],
        "max_steps": 10,
    }
    num = 4000
    world = ObjectRooms(num_envs=num, **kwargs)
    world.reset(5)
    weights = torch.tensor([1.0, -1.0, 0.5, 0.0, 1.0])
    mdp = tabulate(world, world.fixed_objects[None])
    expected = finite_horizon_return(mdp, mdp.reward @ weights.double(), 10, policy="random")
    expected = expected[0, world.agent]
    generator = torch.Generator().manual_seed(0)
    total = torch.zeros(num, dtype=torch.float64)
    running = torch.ones(num, dtype=torch.bool)
    for _ in range(10):
        _, reward, terminated, truncated, _ = world.step(
            torch.randint(0, 4, (num,), generator=generator)
        )
        total += torch.where(running, (reward @ weights).double(), 0.0)
        running &= ~(terminated | truncated)
    assert not running.any()
    stderr = float((total - expected).std()) / math.sqrt(num)
    assert abs(float(total.mean() - expected.mean())) < 4 * stderr
    assert float(expected.std()) > 0.1  # the start cell matters, so this is a real check


def test_finite_horizon_rejects_unknown_policy():
    world = corridor_world()
    mdp = tabulate(world, world.fixed_objects[None])
    with pytest.raises(ValueError, match="policy"):
        finite_horizon_return(mdp, mdp.reward[..., 0], 3, policy="greedy")


def far_wanted_near_unwanted() -> tuple[TabularMDP, torch.Tensor, int]:
    """A wanted object (2) 14 steps from the start cell and an unwanted one (-0.1) adjacent to
    it, -0.1 per step: the MDP, its reward and the start cell."""
    world = ObjectRooms(
        num_envs=1,
        colours=("blue", "purple"),
        shapes=("square",),
        object_positions=[[1, 1], [5, 10]],
    )
    mdp = tabulate(world, world.fixed_objects[None])
    return mdp, task_reward(mdp, torch.tensor([2.0, -0.1]), -0.1), 5 * 13 + 11


def test_a_low_discount_trades_a_far_wanted_object_for_a_near_unwanted_one():
    """Why the random-placement configs use gamma 0.95: wanted object 14 steps away, unwanted
    one adjacent. The undiscounted score (what evaluation measures) prefers the far object
    (2 - 1.3 > -0.1), as does the gamma 0.95 optimum; the gamma 0.9 optimum takes the near one."""
    mdp, reward, start = far_wanted_near_unwanted()

    def collected(q: torch.Tensor) -> int:
        cell = start
        for _ in range(50):
            action = int(q[0, cell].argmax())
            if mdp.goal[0, cell, action] >= 0:
                return int(mdp.goal[0, cell, action])
            cell = int(mdp.next_state[0, cell, action])
        return -1

    best = finite_horizon_return(mdp, reward, horizon=50)[0, start].item()
    assert best == pytest.approx(2.0 - 0.1 * 13)
    assert collected(soft_value_iteration(mdp, reward, gamma=0.95, alpha=0.0)) == 0
    assert collected(soft_value_iteration(mdp, reward, gamma=0.9, alpha=0.0)) == 1


def test_stationary_discounted_optimum_scores_below_the_finite_horizon_one_when_gamma_is_low():
    """The same layout: the gamma 0.9 stationary optimum takes the near unwanted object
    (-0.1), the gamma 0.95 one the far wanted object, which the finite-horizon optimum gets."""
    mdp, reward, start = far_wanted_near_unwanted()
    best = finite_horizon_return(mdp, reward, horizon=50)[0, start].item()
    for gamma, expected in ((0.95, best), (0.9, -0.1)):
        policy = discounted_optimal_policy(mdp, reward, gamma)
        torch.testing.assert_close(policy.sum(-1), torch.ones_like(policy[..., 0]))
        got = finite_horizon_return(mdp, reward, 50, policy)[0, start].item()
        assert got == pytest.approx(expected)
    uniform = torch.full_like(policy, 1 / policy.shape[-1])
    torch.testing.assert_close(
        finite_horizon_return(mdp, reward, 50, uniform),
        finite_horizon_return(mdp, reward, 50, "random"),
    )


def test_value_iteration_within_allowed_actions_is_the_restricted_problem():
    # a 3-state corridor, goal beyond state 2; action 1 moves right, action 0 stays
    mdp = TabularMDP(
        next_state=torch.tensor([[[0, 1], [1, 2], [2, 2]]]),
        reward=torch.tensor([[[[-1.0], [-1.0]], [[-1.0], [-1.0]], [[-1.0], [5.0]]]]),
        terminal=torch.tensor([[[False, False], [False, False], [False, True]]]),
        goal=torch.tensor([[[-1, -1], [-1, -1], [-1, 0]]]),
        valid=torch.ones(1, 3, dtype=torch.bool),
    )
    allowed = torch.ones(1, 3, 2, dtype=torch.bool)
    allowed[0, 1, 1] = False  # the shield forbids moving on from state 1
    q = soft_value_iteration(mdp, mdp.reward[..., 0], 0.5, 0.0, allowed=allowed)
    assert q[0, 2].tolist() == pytest.approx([1.5, 5.0])  # stay once, then 5 at 0.5: -1 + 2.5
    assert q[0, 1, 1] == -torch.inf and q[0, 1, 0] == pytest.approx(-2.0)  # -1 forever at 0.5
    assert q[0, 0].tolist() == pytest.approx([-2.0, -2.0])
    allowed[0, 1] = False
    with pytest.raises(ValueError, match="every valid state needs at least one allowed action"):
        soft_value_iteration(mdp, mdp.reward[..., 0], 0.5, 0.0, allowed=allowed)
