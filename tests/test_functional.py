"""Pure soft-Q functions against hand-computed values."""

import math

import pytest
import torch

from composable_rl.maths import functional as fn


def test_soft_value_matches_hand_computation():
    q = torch.tensor([1.0, 2.0])
    expected = 0.5 * math.log(math.exp(2.0) + math.exp(4.0))  # alpha * log sum exp(q / alpha)
    assert fn.soft_value(q, 0.5).item() == pytest.approx(expected, abs=1e-6)
    assert fn.soft_value(q, 0.0).item() == 2.0


def test_soft_value_tends_to_max_as_alpha_shrinks():
    q = torch.tensor([0.3, -1.0, 0.7])
    assert fn.soft_value(q, 1e-3).item() == pytest.approx(0.7, abs=1e-3)
    # Upper bound: max + alpha log |A|.
    assert fn.soft_value(q, 0.1).item() <= 0.7 + 0.1 * math.log(3) + 1e-7


def test_boltzmann_probabilities():
    q = torch.tensor([0.0, math.log(3.0)])
    assert fn.boltzmann_probs(q, 1.0).tolist() == pytest.approx([0.25, 0.75])
    assert fn.boltzmann_probs(torch.tensor([1.0, 3.0, 3.0]), 0.0).tolist() == [0.0, 0.5, 0.5]


def test_log_softmax_matches_torch_even_for_huge_values():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1e4, 1e4 - 1, -1e4, 0.0]])
    assert torch.allclose(fn.log_softmax(x), torch.log_softmax(x, -1), atol=1e-6)
    y = torch.randn(3, 5, 2)
    assert torch.allclose(fn.log_softmax(y, dim=1), torch.log_softmax(y, 1), atol=1e-6)


def test_entropy_of_uniform_and_greedy_policies():
    assert fn.policy_entropy(torch.zeros(4), 0.3).item() == pytest.approx(math.log(4))
    assert fn.policy_entropy(torch.tensor([0.0, 5.0]), 0.0).item() == pytest.approx(0.0)


def test_boltzmann_sample_frequencies():
    gen = torch.Generator().manual_seed(0)
    q = torch.tensor([0.0, math.log(3.0)]).expand(40_000, 2)
    freq = fn.boltzmann_sample(q, 1.0, gen).float().mean().item()
    assert freq == pytest.approx(0.75, abs=0.01)
    assert fn.boltzmann_sample(torch.tensor([[0.0, 2.0, 1.0]]), 0.0).item() == 1


def test_soft_target_terminated_vs_truncated():
    q_t = torch.zeros(2, 1, 2)  # two transitions, one head, two actions: V = alpha log 2
    r_t = torch.ones(2, 1)
    gamma, alpha = 0.9, 1.0
    terminated = torch.tensor([True, False])  # the second one was truncated: it bootstraps
    discount_t = gamma * (~terminated).float()
    v_t = fn.soft_value(q_t, alpha)
    y = fn.soft_q_target(r_t, discount_t, v_t)
    assert y[:, 0].tolist() == pytest.approx([1.0, 1.0 + 0.9 * math.log(2.0)])


def test_a_discount_per_head_lets_continuing_heads_bootstrap_through_the_end():
    v_t = torch.ones(2, 2)  # two transitions, two heads
    terminated = torch.tensor([True, False])
    continuing = torch.tensor([False, True])  # the second head outlives the episode
    discount_t = 0.9 * ((~terminated)[:, None] | continuing).float()
    y = fn.soft_q_target(torch.zeros(2, 2), discount_t, v_t)
    assert y.tolist() == [[0.0, pytest.approx(0.9)], [pytest.approx(0.9)] * 2]


def test_soft_q_learning_td_error_per_head():
    q_tm1 = torch.tensor([[[0.5, 0.2], [1.0, -1.0]]])  # B=1, K=2, A=2
    a_tm1 = torch.tensor([1])
    r_t = torch.tensor([[1.0, -0.1]])
    discount_t = torch.tensor([0.9])
    q_t = torch.tensor([[[0.0, 0.0], [2.0, 1.0]]])
    alpha = 0.5
    td = fn.soft_q_learning(q_tm1, a_tm1, r_t, discount_t, q_t, alpha)
    v0 = 0.5 * math.log(2.0)
    v1 = 0.5 * math.log(math.exp(4.0) + math.exp(2.0))
    assert td[0].tolist() == pytest.approx([1.0 + 0.9 * v0 - 0.2, -0.1 + 0.9 * v1 + 1.0])


def test_double_q_value_uses_selector_policy():
    q_eval = torch.tensor([[1.0, 3.0]])
    same = fn.soft_value_under(q_eval, q_eval, 0.7)
    assert same.item() == pytest.approx(fn.soft_value(q_eval, 0.7).item(), abs=1e-6)
    # Greedy double-Q: the selector picks action 0, the evaluator supplies its value.
    assert fn.soft_value_under(q_eval, torch.tensor([[5.0, 0.0]]), 0.0).item() == 1.0


def test_world_value_shapes_are_supported():
    q = torch.randn(3, 2, 4, 5)  # [B, K, G, A]
    td = fn.soft_q_learning(q, torch.tensor([0, 4, 2]), torch.zeros(3, 2, 4), torch.ones(3), q, 0.1)
    assert td.shape == (3, 2, 4)
    assert td[1, 1, 2].item() == pytest.approx(
        fn.soft_value(q[1, 1, 2], 0.1).item() - q[1, 1, 2, 4].item(), abs=1e-5
    )


def test_td_loss_kinds():
    td = torch.tensor([[0.5, 2.0], [-0.5, 0.0]])
    # Huber(0.5) = 0.125, Huber(2) = 1.5; mean over batch then sum over heads.
    assert fn.td_loss(td, "huber").item() == pytest.approx((0.125 + 0.125) / 2 + 1.5 / 2)
    assert fn.td_loss(td, "mse").item() == pytest.approx((0.125 + 0.125) / 2 + 2.0 / 2)
    with pytest.raises(ValueError, match="unknown loss"):
        fn.td_loss(td, "l1")


def test_compose_linear():
    q = torch.tensor([[[1.0, 2.0], [10.0, 20.0]]])
    assert fn.compose_linear(q, torch.tensor([0.5, 0.1])).tolist() == [[1.5, 3.0]]
    assert fn.compose_linear(q, torch.tensor([[1.0, -1.0]])).tolist() == [[-9.0, -18.0]]


def test_extended_reward_penalises_other_goals_only():
    r_t = torch.tensor([[2.0, -0.1], [-0.1, -0.1]])  # step 0 ended at goal 1, step 1 at none
    r = fn.extended_reward(r_t, torch.tensor([1, -1]), num_goals=3, penalty=-9.0)
    expected = torch.tensor([[[-9.0, 2.0, -9.0], [-9.0, -0.1, -9.0]], [[-0.1] * 3, [-0.1] * 3]])
    assert torch.equal(r, expected)


def test_wrong_goal_penalty_sits_below_the_worst_reach_value():
    # r_min + step * horizon - (r_max - r_min) = -0.1 - 1.0 - 2.1
    assert fn.wrong_goal_penalty(-0.1, 2.0, -0.1, 10) == pytest.approx(-3.2)
    assert fn.wrong_goal_penalty(0.0, 1.0, 0.5, 10) == pytest.approx(-1.0)  # paid steps: no bonus
