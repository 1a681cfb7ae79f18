"""Successor-feature heads: the TD maths against soft value iteration, GPI, the agent's
composition paths, config rules, a training run and the multi-objective evaluation row."""

import dataclasses

import pytest
import torch

from agents import composition, factory, training
from agents.homeostatic import HomeostaticAgent
from agents.successor import SuccessorFeatures
from composable_rl.config import AgentConfig, Config, ConfigError, from_dict
from composable_rl.evaluation import multi_objective_row
from composable_rl.homeostasis import load_value_program
from composable_rl.maths import functional as fn
from composable_rl.maths.mo_metrics import simplex_lattice
from composable_rl.maths.oracle import TabularMDP, soft_value_iteration
from composable_rl.world import ActionSpec
from tests.corridor_world import Corridor
from tests.test_train import SMALL


def random_mdp(states: int = 6, actions: int = 3, heads: int = 2, seed: int = 0) -> TabularMDP:
    """A deterministic MDP with terminal transitions and vector rewards (one layout)."""
    gen = torch.Generator().manual_seed(seed)
    return TabularMDP(
        next_state=torch.randint(states, (1, states, actions), generator=gen),
        reward=torch.randn(1, states, actions, heads, generator=gen, dtype=torch.float64),
        terminal=torch.rand(1, states, actions, generator=gen) < 0.2,
        goal=torch.full((1, states, actions), -1),
        valid=torch.ones(1, states, dtype=torch.bool),
    )


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_successor_td_fixed_point_is_the_soft_optimal_q(alpha):
    """Iterating psi <- target under the policy softmax(w . psi / alpha) (policy iteration in
    feature space) reaches features whose w . psi + alpha * eta is soft value iteration's Q."""
    mdp, gamma = random_mdp(), 0.8
    w = torch.tensor([0.7, -1.3], dtype=torch.float64)
    s, a, k = mdp.reward.shape[1:]
    states = torch.arange(s).repeat_interleave(a)
    actions = torch.arange(a).repeat(s)
    next_s = mdp.next_state[0, states, actions]
    discount = gamma * (~mdp.terminal[0, states, actions]).double()
    r_t = mdp.reward[0, states, actions]
    psi = torch.zeros(s, k + 1, a, dtype=torch.float64)
    for _ in range(400):
        psi_t = psi[next_s]
        q_select = fn.successor_q(psi_t, w, alpha)
        td = fn.successor_td(psi[states], actions, r_t, discount, psi_t, q_select, alpha)
        psi = psi.clone()
        psi[states, :, actions] += td
    expected = soft_value_iteration(mdp, mdp.reward @ w, gamma, alpha)[0]
    torch.testing.assert_close(fn.successor_q(psi, w, alpha), expected, atol=1e-8, rtol=0)
    if alpha > 0:
        assert psi[:, -1].abs().max() > 0.1  # the entropy feature carries part of the value


def test_successor_q_weights_features_and_adds_the_entropy_term():
    psi = torch.tensor([[[1.0, 2.0], [3.0, -1.0], [10.0, 20.0]]])  # [1, K + 1 = 3, A = 2]
    q = fn.successor_q(psi, torch.tensor([[2.0, 1.0]]), alpha=0.1)
    torch.testing.assert_close(q, torch.tensor([[2 + 3 + 1.0, 4 - 1 + 2.0]]))


def sf_agent(gpi: bool = True, support: list[list[float]] | None = None) -> SuccessorFeatures:
    successor = {"gpi": gpi, "support": support or []}
    cfg = from_dict(
        AgentConfig, {"heads": "successor_features", "hidden": [16], "successor": successor}
    )
    torch.manual_seed(0)
    return SuccessorFeatures((4,), ActionSpec.discrete(3), ["a", "b"], cfg)


def test_gpi_is_never_below_the_policy_of_the_weights_themselves():
    agent, obs = sf_agent(support=[[1.0, -1.0]]), torch.randn(32, 4)
    w = torch.randn(32, 2)
    own = fn.successor_q(agent.online(obs, w), w, agent.cfg.alpha)
    gpi = agent.linear_values(obs, w)
    assert agent.candidates(w).shape == (32, 4, 2)  # w, two one-hots, one support vector
    assert (gpi >= own - 1e-6).all() and (gpi > own + 1e-6).any()
    agent.cfg.successor.gpi_own = False  # only the one-hots and the support set, made unit
    unit = torch.tensor([[1, 0], [0, 1], [2**-0.5, -(2**-0.5)]])
    torch.testing.assert_close(agent.candidates(w)[5], unit)
    assert (agent.linear_values(obs, w) <= gpi + 1e-6).all()
    agent.cfg.successor.gpi = False
    torch.testing.assert_close(agent.linear_values(obs, w), own)


def test_head_values_are_each_heads_own_policy_and_scale_does_not_change_the_policy():
    agent, obs = sf_agent(), torch.randn(8, 4)
    heads = agent.head_values(obs)
    for k in range(2):
        one_hot = torch.nn.functional.one_hot(torch.tensor(k), 2).float().expand(8, -1)
        expected = fn.successor_q(agent.online(obs, one_hot), one_hot, agent.cfg.alpha)
        torch.testing.assert_close(heads[:, k], expected)
    w = torch.randn(8, 2)
    torch.testing.assert_close(agent.online(obs, w), agent.online(obs, 3.0 * w))


def test_training_weights_mix_one_hots_support_and_unit_directions():
    agent = sf_agent(support=[[0.6, 0.8]])
    agent.cfg.successor.one_hot_prob, agent.cfg.successor.support_prob = 0.3, 0.3
    torch.manual_seed(1)
    z = agent.training_weights(20_000)
    one_hot = (z == 1).any(1) & (z == 0).any(1)
    support = (z == torch.tensor([0.6, 0.8])).all(1)
    assert abs(one_hot.float().mean() - 0.3) < 0.02 and abs(support.float().mean() - 0.3) < 0.02
    torch.testing.assert_close(z.norm(dim=1), torch.ones(20_000))
    assert ((z < 0).any(1)).float().mean() > 0.2  # signed directions, not only mixtures


@pytest.mark.parametrize(
    ("agent", "key"),
    [
        ({"heads": "successor_features", "world_values": True}, "agent.world_values"),
        ({"successor": {"support_prob": 0.5}}, "agent.successor.support_prob"),
        (
            {"successor": {"one_hot_prob": 0.8, "support_prob": 0.4, "support": [[1, 0]]}},
            "agent.successor.support_prob",
        ),
        ({"successor": {"support": [[1, 0], [1, 0, 0]]}}, "agent.successor.support"),
    ],
)
def test_config_rules_of_successor_features(agent, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(Config, {"agent": agent})


def test_support_vectors_need_one_weight_per_head():
    cfg = from_dict(Config, {**SMALL, "agent": {**SMALL["agent"], "heads": "successor_features"}})
    bad = dataclasses.replace(
        cfg.agent, successor=dataclasses.replace(cfg.agent.successor, support=[[1.0, 0.0]])
    )
    with pytest.raises(ConfigError, match=r"agent\.successor\.support: need one weight per head"):
        factory.build(dataclasses.replace(cfg, agent=bad))


@pytest.fixture(scope="module")
def sf_run(tmp_path_factory):
    """A short successor-feature run on the small world of the training tests."""
    data = {
        **SMALL,
        "total_steps": 40_000,
        "agent": {**SMALL["agent"], "heads": "successor_features", "alpha": 0.01},
        "tasks": {**SMALL["tasks"], "weight_dist": "sphere", "single_head_prob": 0.3},
    }
    run_dir = tmp_path_factory.mktemp("runs") / "sf"
    return run_dir, training.train(from_dict(Config, data), run_dir, progress=False)


def test_successor_run_learns_every_head_and_composes_from_its_checkpoint(sf_run):
    run_dir, result = sf_run
    scores = {row["task"]: row["normalized_return"] for row in result["eval"]}
    assert min(scores.values()) > 0.9, scores
    cfg, world, agent = composition.load(run_dir)
    assert isinstance(agent, SuccessorFeatures)
    linear = composition.evaluate_task(cfg, world, agent, "blue - 0.5*square", 200, seed=3)
    boolean = composition.evaluate_task(cfg, world, agent, "purple & square", 200, seed=3)
    assert linear["normalized_return"] > 0.8, linear
    assert boolean["normalized_return"] > 0.8, boolean


def test_homeostatic_agent_acts_through_gpi_on_scaled_weights():
    agent = sf_agent()
    program = load_value_program(
        {
            "variables": {"x": {"setpoint": 0.5}, "y": {"setpoint": 0.5}},
            "weights": {"a": "x", "b": "y"},
        },
        head_names=["a", "b"],
    )
    homeostatic = HomeostaticAgent(agent, program, 16, head_scale=[2.0, 1.0], alpha=0.0)
    obs, levels = torch.randn(16, 4), torch.rand(16, 2)
    actions = homeostatic.act(obs, levels)
    scaled = homeostatic.controller.last_weights * torch.tensor([2.0, 1.0])
    assert (scaled < 0).any() and (scaled > 0).any()  # levels above and below the setpoints
    torch.testing.assert_close(actions, agent.linear_values(obs, scaled).argmax(-1))


def test_multi_objective_row_matches_closed_form_values_of_a_corridor():
    """Weights w over (left, right) pick the end with the larger weight; every start's
    discounted vector return is known in closed form, so expected utility is exact."""
    world, gamma = Corridor(num_envs=64, length=5, max_steps=10), 0.9

    def act(obs, weights):
        return (weights[:, 1] >= weights[:, 0]).long()

    weights = simplex_lattice(2, 4)
    row = multi_objective_row(world, act, weights, gamma=gamma, reference_point=[-2.0, -2.0])
    world.reset(10_000)
    starts = world.cell.double()
    lattice = [(1 - i / 4, i / 4) for i in range(5)]
    utilities, values = [], []
    for w_left, w_right in lattice:
        right = w_right >= w_left
        steps = (4 - starts) if right else starts
        walk = -0.1 * (1 - gamma ** (steps - 1)) / (1 - gamma)
        end = gamma ** (steps - 1)
        v = torch.stack([walk + end * (-1 if right else 1), walk + end * (1 if right else -1)], 1)
        values.append(v.mean(0))
        utilities.append(float(values[-1] @ torch.tensor([w_left, w_right], dtype=torch.float64)))
    assert row["weights"] == 5 and row["episodes"] == 64
    assert row["expected_utility"] == pytest.approx(sum(utilities) / 5, abs=1e-5)
    assert row["hypervolume"] > 0


def test_training_behaviour_acts_on_each_slots_own_policy_unless_told_to_use_gpi():
    agent, obs, w = sf_agent(support=[[1.0, -1.0]]), torch.randn(64, 4), torch.randn(64, 2)
    own = fn.successor_q(agent.online(obs, w), w, agent.cfg.alpha)
    torch.testing.assert_close(agent.behaviour_values(obs, w), own)
    assert not torch.equal(agent.behaviour_values(obs, w), agent.linear_values(obs, w))
    agent.cfg.successor.behaviour_gpi = True
    torch.testing.assert_close(agent.behaviour_values(obs, w), agent.linear_values(obs, w))


def test_gpi_features_take_per_action_the_candidate_that_values_it_most():
    psi = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)  # [B, M, F, A]
    q = torch.tensor([[[0.0, 5.0], [3.0, 1.0], [1.0, 2.0]], [[9.0, 0.0], [0.0, 0.0], [0.0, 7.0]]])
    got = fn.gpi_features(psi, q)
    assert got.shape == (2, 2, 2)
    torch.testing.assert_close(got[0, :, 0], psi[0, 1, :, 0])  # candidate 1 best for action 0
    torch.testing.assert_close(got[0, :, 1], psi[0, 0, :, 1])
    torch.testing.assert_close(got[1, :, 0], psi[1, 0, :, 0])
    torch.testing.assert_close(got[1, :, 1], psi[1, 2, :, 1])


def test_bootstrap_follows_gpi_over_candidates_only_when_asked():
    agent, next_obs, z = sf_agent(), torch.randn(16, 4), torch.randn(16, 2)
    with torch.no_grad():  # a target that differs from the online network, as after updates
        for p in agent.target.parameters():
            p.add_(0.1 * torch.randn_like(p))
    own_psi = agent.target(next_obs, z)
    agent.cfg.successor.gpi_target = False
    psi_t, q_select = agent.bootstrap(next_obs, z)
    torch.testing.assert_close(psi_t, own_psi)
    torch.testing.assert_close(q_select, fn.successor_q(agent.online(next_obs, z), z, 0.02))
    agent.cfg.successor.gpi_target = True
    psi_t, q_select = agent.bootstrap(next_obs, z)
    torch.testing.assert_close(q_select, agent.linear_values(next_obs, z))
    assert not torch.allclose(psi_t, own_psi)
