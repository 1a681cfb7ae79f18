"""World-value oracle: hand-solved corridor, its definition, and recovery of the task optimum."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composable_rl.maths.functional import wrong_goal_penalty
from composable_rl.maths.oracle import soft_value_iteration, task_reward, world_value_iteration
from envs.gridworld import tabulate
from envs.object_rooms import ObjectRooms

R_MAX, R_MIN, STEP = 2.0, -0.1, -0.1
CORRIDOR = ("######", "#....#", "######")
BLUE_TASK = torch.tensor([R_MAX, R_MIN], dtype=torch.float64)  # goal rewards of the "blue" head
A, B = 8, 9  # the two cells between blue (goal 0, cell 7) and purple (goal 1, cell 10)
OPEN5 = {
    "layout": "open5",
    "heads": ("purple", "blue", "square"),
    "object_positions": [[1, 1], [1, 5], [3, 3], [5, 1], [5, 5], [2, 4]],
}


def corridor():
    world = ObjectRooms(
        num_envs=1,
        layout=CORRIDOR,
        colours=("blue", "purple"),
        shapes=("square",),
        object_positions=[[1, 1], [1, 4]],
    )
    return tabulate(world, world.fixed_objects[None])


def open5():
    world = ObjectRooms(num_envs=1, **OPEN5)
    return world, tabulate(world, world.fixed_objects[None])


def test_task_reward_matches_the_engine_heads():
    world, mdp = open5()
    for k in range(world.num_heads):
        goal_rewards = torch.where(world.goal_membership[:, k], R_MAX, R_MIN)
        reward = task_reward(mdp, goal_rewards, STEP)
        assert reward.dtype == torch.float64 and reward.shape == mdp.terminal.shape
        assert torch.allclose(reward, mdp.reward[..., k], atol=1e-6)
    assert (task_reward(mdp, torch.ones(6), 0.5)[~mdp.valid] == 0).all()
    with pytest.raises(ValueError, match="goal_rewards"):
        task_reward(mdp, torch.ones(5), 0.5)


def test_world_values_by_hand_on_a_corridor():
    mdp = corridor()
    reward = task_reward(mdp, BLUE_TASK, STEP)
    penalty = wrong_goal_penalty(R_MIN, R_MAX, STEP, 2)
    q = world_value_iteration(mdp, reward, 2, penalty, gamma=0.9, alpha=0.0)
    assert q.shape == (1, 18, 2, 4) and q.dtype == torch.float64
    # Actions up, right, down, left; up/down bump into walls. Goal blue: collect it (2) from A,
    # from B walk back (-0.1 + 0.9 * 2 = 1.7) rather than end at purple (the penalty).
    assert q[0, A, 0].tolist() == pytest.approx([1.7, 1.43, 1.7, 2.0], abs=1e-9)
    assert q[0, B, 0].tolist() == pytest.approx([1.43, penalty, 1.43, 1.7], abs=1e-9)
    # Goal purple pays r_min, still better than idling forever (-1): from A go right and end.
    assert q[0, A, 1].tolist() == pytest.approx([-0.271, -0.19, -0.271, penalty], abs=1e-9)
    assert q[0, B, 1].tolist() == pytest.approx([-0.19, -0.1, -0.19, -0.271], abs=1e-9)
    assert (q[0, ~mdp.valid[0]] == 0).all()


@pytest.mark.parametrize(("gamma", "alpha"), [(0.9, 0.0), (0.9, 0.3), (1.0, 0.0)])
def test_world_values_solve_each_penalised_task(gamma, alpha):
    world, mdp = open5()
    reward = mdp.reward[..., 1]
    penalty = wrong_goal_penalty(R_MIN, R_MAX, STEP, 25)
    q = world_value_iteration(mdp, reward, world.num_goals, penalty, gamma, alpha)
    for g in range(world.num_goals):
        other = (mdp.goal >= 0) & (mdp.goal != g)
        expected = soft_value_iteration(mdp, torch.where(other, penalty, reward), gamma, alpha)
        assert torch.allclose(q[:, :, g], expected, atol=1e-8)


def test_world_values_check_num_goals():
    mdp = corridor()
    reward = task_reward(mdp, BLUE_TASK, STEP)
    for bad in (0, 1):
        with pytest.raises(ValueError, match="num_goals"):
            world_value_iteration(mdp, reward, bad, -5.0, 0.9, 0.0)


@settings(max_examples=8, deadline=None)
@given(
    st.lists(st.floats(R_MIN, R_MAX), min_size=6, max_size=6),
    st.sampled_from([0.9, 1.0]),
)
def test_max_over_goals_recovers_the_task_optimum(goal_rewards, gamma):
    """max_g Q(s, g, a) == Q(s, a) at alpha = 0, so argmax_a max_g Q acts optimally."""
    world, mdp = open5()
    reward = task_reward(mdp, torch.tensor(goal_rewards, dtype=torch.float64), STEP)
    penalty = wrong_goal_penalty(R_MIN, R_MAX, STEP, world.free_cells.numel())
    world_q = world_value_iteration(mdp, reward, world.num_goals, penalty, gamma, 0.0)
    q = soft_value_iteration(mdp, reward, gamma, 0.0)
    assert torch.allclose(world_q.amax(2), q, atol=1e-9)
