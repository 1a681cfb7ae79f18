"""The linear-quadratic world and its exact oracle: the soft Bellman equation by quadrature, policy
values against rollouts of the world, optimality of the Riccati gain, per-slot seeding, and a
composition of exact heads that loses something."""

import math

import pytest
import torch

from composable_rl.config import Config, ConfigError, from_dict
from composable_rl.maths import lq_oracle as lq
from composable_rl.registry import make_world
from envs.check import check_world
from envs.linear_quadratic import (
    LinearQuadraticConfig,
    LinearQuadraticWorld,
    bases,
    discounted_returns,
    exact_scores,
    start_states,
)

SECTION = LinearQuadraticConfig()
GAMMA, ALPHA = SECTION.discount, 0.05


def head_solutions(alpha: float = ALPHA) -> list[lq.SoftLQ]:
    b = bases(SECTION)
    return [lq.solve(b.F, b.G, m, r, GAMMA, alpha) for m, r in zip(b.M, b.R, strict=True)]


def test_soft_value_is_alpha_logsumexp_of_soft_q_by_quadrature():
    """V(x) = alpha log integral exp(Q(x, u) / alpha) du, on a fine grid of actions."""
    b = bases(SECTION)
    grid = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    cell = float(grid[1] - grid[0]) ** 2
    u = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    for sol in head_solutions():
        for x in ([0.3, -0.7], [-1.0, 1.0]):
            x = torch.tensor(x, dtype=torch.float64)
            q = lq.soft_q(sol, b.F, b.G, GAMMA, x.expand(len(u), -1), u)
            v = ALPHA * (torch.logsumexp(q / ALPHA, 0) + math.log(cell))
            assert float(v) == pytest.approx(float(lq.soft_value(sol, x)), abs=1e-6)


def test_policy_value_matches_rollouts_of_the_world():
    """The Lyapunov value of a linear policy equals its discounted return in the world."""
    b = bases(SECTION)
    gain = torch.tensor([[-1.0, 0.2, 0.5], [0.1, -0.8, 0.3]], dtype=torch.float64)
    weights = torch.tensor([0.5, 0.3, 0.2])
    M = sum(w * m for w, m in zip(weights.double(), b.M, strict=True))
    R = sum(w * r for w, r in zip(weights.double(), b.R, strict=True))
    S, s0 = lq.policy_value(b.F, b.G, M, R, gain, torch.zeros(2, 2, dtype=torch.float64), GAMMA)
    starts = start_states(16)
    exact = -lq.quad(lq.augmented(starts), S) + s0

    def act(obs: torch.Tensor, _w: torch.Tensor) -> torch.Tensor:
        return (lq.augmented(obs) @ gain.T).float()

    simulated = discounted_returns(SECTION, act, weights, 16, "cpu")
    assert torch.allclose(simulated, exact, rtol=1e-4, atol=1e-4)


def test_the_riccati_gain_beats_every_perturbed_gain():
    b = bases(SECTION)
    w = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    M = sum(wk * m for wk, m in zip(w, b.M, strict=True))
    R = sum(wk * r for wk, r in zip(w, b.R, strict=True))
    best = lq.solve(b.F, b.G, M, R, GAMMA, 0.0).gain
    z0 = lq.augmented(start_states(64))
    none = torch.zeros(2, 2, dtype=torch.float64)

    def value(gain: torch.Tensor) -> float:
        S, s0 = lq.policy_value(b.F, b.G, M, R, gain, none, GAMMA)
        return float((-lq.quad(z0, S) + s0).mean())

    gen = torch.Generator().manual_seed(0)
    optimum = value(best)
    for _ in range(20):
        assert (
            value(best + 0.05 * torch.randn(best.shape, generator=gen, dtype=torch.float64))
            < optimum
        )


def test_composed_boltzmann_is_the_gaussian_of_the_summed_quadratics():
    sols, w = head_solutions(), torch.tensor([0.3, 0.3, 0.4])
    b = bases(SECTION)
    x = torch.tensor([[0.2, -0.4]], dtype=torch.float64)
    mean, cov = lq.composed_boltzmann(sols, w, x, ALPHA)
    u = mean + torch.tensor([[0.1, -0.05]], dtype=torch.float64)
    composed = sum(wk * lq.soft_q(s, b.F, b.G, GAMMA, x, u) for wk, s in zip(w, sols, strict=True))
    at_mean = sum(
        wk * lq.soft_q(s, b.F, b.G, GAMMA, x, mean) for wk, s in zip(w, sols, strict=True)
    )
    quadratic = (u - mean) @ torch.linalg.inv(cov) @ (u - mean).T * ALPHA / 2
    assert float(at_mean - composed) == pytest.approx(float(quadratic), rel=1e-9)


def test_composition_of_exact_heads_falls_short_of_the_optimum_but_beats_chance():
    starts = start_states(64)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        w = -torch.log(torch.rand(3, generator=gen))
        s = exact_scores(SECTION, w / w.sum(), starts)
        assert s["random_return"] < s["exact_heads_return"] < s["oracle_return"]
    single = exact_scores(SECTION, torch.tensor([1.0, 0.0, 0.0]), starts)
    assert single["exact_heads_return"] == pytest.approx(single["oracle_return"], rel=1e-9)


def test_world_passes_the_contract_and_seeds_every_slot_on_its_own():
    world = make_world(SECTION, 8)
    check_world(world)
    batch = world.reset(5)
    for i in (0, 3, 7):
        assert torch.equal(LinearQuadraticWorld(SECTION, 1).reset(5 + i)[0], batch[i])


def test_rewards_truncation_clipping_and_walls():
    world = LinearQuadraticWorld(LinearQuadraticConfig(max_steps=2), 2)
    start = world.reset(0)
    obs, reward, terminated, truncated, info = world.step(torch.tensor([[9.0, 0.0], [0.0, 0.0]]))
    bound = SECTION.action_bound
    assert torch.allclose(obs[0], start[0] + SECTION.dt * torch.tensor([bound, 0.0]))
    assert reward[0, 2] == pytest.approx(-SECTION.effort * bound**2)
    d = SECTION.target_distance
    east = -((start[1, 0] - d) ** 2 * SECTION.along + start[1, 1] ** 2 * SECTION.across)
    assert reward[1, 0] == pytest.approx(float(east), rel=1e-5)
    assert not terminated.any() and not truncated.any()
    obs, _, _, truncated, info = world.step(torch.zeros(2, 2))
    assert truncated.all() and not torch.equal(obs, info["final_obs"])
    world = LinearQuadraticWorld(SECTION, 2)
    world.reset(0)
    for _ in range(10):
        obs = world.step(torch.full((2, 2), 9.0))[0]
    assert torch.equal(obs, torch.full((2, 2), SECTION.wall))


def test_weights_make_one_task_head_paying_the_weighted_sum():
    weights = [0.2, 0.5, 0.3]
    task = LinearQuadraticWorld(LinearQuadraticConfig(weights=weights), 4)
    three = LinearQuadraticWorld(SECTION, 4)
    assert task.head_names == ["task"]
    task.reset(3), three.reset(3)
    actions = torch.tensor([[1.0, -2.0], [0.0, 0.5], [3.0, 3.0], [-1.0, 0.0]])
    paid = task.step(actions)[1]
    assert torch.allclose(paid[:, 0], three.step(actions)[1] @ torch.tensor(weights))
    for bad in ([0.0, 0.0, 0.0], [1.0, 2.0], [1.0, -1.0, 0.0]):
        with pytest.raises(ConfigError, match="env.weights"):
            from_dict(Config, {"env": {"name": "linear_quadratic", "weights": bad}})
