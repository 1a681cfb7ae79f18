"""Soft actor-critic heads: the squashed-Gaussian densities, the candidate sampler against the
exact composed Boltzmann density, acting and updating, errors for mismatched head types, and a
short run whose learned soft Q-functions match the exact ones of the linear-quadratic world."""

import json
import math

import pytest
import torch

from agents import composition, factory, training
from agents.soft_actor_critic import SoftActorCritic
from composable_rl.config import Config, ConfigError, from_dict
from composable_rl.maths import functional as fn
from composable_rl.maths import lq_oracle as lq
from composable_rl.replay import Batch
from composable_rl.run.checkpoint import latest_checkpoint, load_checkpoint
from envs.linear_quadratic import LinearQuadraticConfig, bases
from tests.scripts import run_script

ALPHA = 0.05
BOUND = LinearQuadraticConfig().action_bound
SAC = {
    "seed": 0,
    "total_steps": 64_000,
    "log_every": 8_000,
    "eval_episodes": 64,
    "env": {"name": "linear_quadratic", "num_envs": 16},
    "agent": {
        "heads": "soft_actor_critic",
        "gamma": 0.9,
        "alpha": ALPHA,
        "hidden": [128, 128],
        "lr": 0.001,
        "tau": 0.02,
        "target_period": 1,
        "max_grad_norm": 0.0,
        # the mean of the twin critics: their minimum learns values biased low (docs/continuous.md)
        "sac": {"autotune": False, "clipped_double_q": False},
    },
    "replay": {
        "capacity": 100_000,
        "batch_size": 256,
        "learning_starts": 2_000,
        "replay_ratio": 16,
    },
}


def exact_heads(alpha: float = ALPHA) -> list[lq.SoftLQ]:
    b = bases(LinearQuadraticConfig())
    return [lq.solve(b.F, b.G, m, r, 0.9, alpha) for m, r in zip(b.M, b.R, strict=True)]


def test_squashed_gaussian_densities_match_torch_and_stay_exact_where_tanh_saturates():
    gen = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(5, 3, generator=gen), 0.3 * torch.randn(5, 3, generator=gen)
    noise = torch.randn(5, 3, generator=gen)
    u, log_prob = fn.tanh_gaussian_sample(mean, log_std, noise)
    squashed = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()]
    )
    assert torch.allclose(squashed.log_prob(u).sum(-1), log_prob, atol=1e-3)
    z = mean + log_std.exp() * noise
    by_z = fn.gaussian_log_prob(mean, log_std, z) - fn.tanh_log_det(z).sum(-1)
    assert torch.allclose(by_z, log_prob, atol=1e-5)
    far = torch.full((1, 2), 12.0)  # tanh(12) is 1.0 in float32: atanh cannot recover z
    assert torch.isfinite(fn.gaussian_log_prob(far, torch.full((1, 2), -2.0), far + 0.1)).all()


@pytest.mark.parametrize("shift", [0.0, 0.5, 1.0])
def test_candidate_sampler_draws_the_exact_composed_boltzmann_density(shift):
    """Candidates from the exact heads' Gaussian policies and from their product (shifted by
    `shift` of its standard deviation, as an imperfect product would be), scored by the exact
    composed Q and drawn by self-normalised importance sampling, follow the density
    exp(sum_k w_k Q_k / alpha): mean within 5% of a standard deviation, standard deviation
    within 5%."""
    sols, b = exact_heads(), bases(LinearQuadraticConfig())
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    x = torch.tensor([0.3, -0.2], dtype=torch.float64)
    n, m = 40_000, 16
    gen = torch.Generator().manual_seed(0)
    means = torch.stack([lq.augmented(x) @ s.gain.T for s in sols])  # [K, D]
    log_stds = torch.stack([0.5 * torch.log(0.5 * ALPHA / s.H.diagonal()) for s in sols])
    product_mean, product_log_std = fn.gaussian_product(means, log_stds, weights)
    means = torch.cat([means, (product_mean + shift * product_log_std.exp())[None]])
    log_stds = torch.cat([log_stds, product_log_std[None]])  # [K + 1, D]: the proposals
    noise = torch.randn(n, m, 4, 2, generator=gen, dtype=torch.float64)
    drawn = (means + log_stds.exp() * noise).reshape(n, m * 4, 2)
    each = torch.distributions.Normal(means, log_stds.exp()).log_prob(drawn[:, :, None]).sum(-1)
    log_q = torch.logsumexp(each, -1) - math.log(4)
    scores = sum(
        w * lq.soft_q(s, b.F, b.G, 0.9, x.expand(n, m * 4, 2), drawn)
        for w, s in zip(weights, sols, strict=True)
    )
    chosen = drawn[torch.arange(n), fn.importance_choice(scores, log_q, ALPHA, gen)]
    mean, cov = lq.composed_boltzmann(sols, weights, x, ALPHA)
    std = cov.diagonal().sqrt()
    assert ((chosen.mean(0) - mean).abs() <= 0.05 * std).all(), (chosen.mean(0), mean)
    assert ((chosen.std(0) / std - 1).abs() <= 0.05).all(), (chosen.std(0), std)


def test_the_actors_product_is_the_composed_density_of_exact_heads():
    sols = exact_heads()
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    x = torch.tensor([-0.6, 0.9], dtype=torch.float64)
    means = torch.stack([lq.augmented(x) @ s.gain.T for s in sols])
    log_stds = torch.stack([0.5 * torch.log(0.5 * ALPHA / s.H.diagonal()) for s in sols])
    mean, log_std = fn.gaussian_product(means, log_stds, weights)
    exact_mean, cov = lq.composed_boltzmann(sols, weights, x, ALPHA)
    assert torch.allclose(mean, exact_mean)
    assert torch.allclose(2 * log_std, cov.diagonal().log())


@pytest.fixture(scope="module")
def tiny_agent() -> SoftActorCritic:
    cfg = from_dict(Config, {**SAC, "agent": {**SAC["agent"], "hidden": [32]}})
    return factory.build(cfg)[1]


def test_acting_stays_in_the_box_and_one_head_acts_by_its_own_actor(tiny_agent):
    obs = torch.rand(6, 2) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    mixed = torch.tensor([0.3, 0.3, 0.4]).expand(6, -1)
    for weights in (mixed, torch.eye(3)[[0, 1, 2, 0, 1, 2]]):
        actions = tiny_agent.act(obs, weights, generator=gen)
        assert actions.shape == (6, 2) and actions.abs().max() <= BOUND
    mean, _ = tiny_agent.actors(obs)
    greedy = tiny_agent.greedy(obs, torch.eye(3)[[1] * 6])
    assert torch.allclose(greedy, BOUND * torch.tanh(mean[:, 1]))
    best = tiny_agent.greedy(obs, mixed)
    _, _, means = tiny_agent.candidates(obs, mixed, True, gen)  # the K actors' and the product's
    both = torch.cat([means, best[:, None] / BOUND], 1)
    values = (tiny_agent.head_values_at(obs, both) * mixed[:, :, None]).sum(1)
    assert (values[:, -1] >= values[:, :-1].amax(1) - 1e-5).all()  # the means are candidates


def test_an_update_trains_critics_and_actors_and_moves_the_target_by_tau(tiny_agent):
    gen = torch.Generator().manual_seed(1)
    b = 32
    batch = Batch(
        torch.randn(b, 2, generator=gen),
        (torch.rand(b, 2, generator=gen) * 2 - 1) * BOUND,
        torch.randn(b, 3, generator=gen),
        torch.zeros(b, dtype=torch.bool),
        torch.randn(b, 2, generator=gen),
        torch.full((b,), -1),
    )
    critic = [p.clone() for p in tiny_agent.online.parameters()]
    actor = [p.clone() for p in tiny_agent.actors.parameters()]
    target = [p.clone() for p in tiny_agent.target.parameters()]
    alpha = tiny_agent.log_alpha.clone()
    metrics = tiny_agent.update(batch)
    assert metrics["td_loss"].dim() == 0 and metrics["actor_loss"].dim() == 0
    for key in ("td_error", "q_mean", "entropy", "alpha"):
        assert metrics[key].shape == (3,) and torch.isfinite(metrics[key]).all()
    for before, now in [
        *zip(critic, tiny_agent.online.parameters(), strict=True),
        *zip(actor, tiny_agent.actors.parameters(), strict=True),
    ]:
        assert not torch.equal(before, now)
    for before, now, online in zip(
        target, tiny_agent.target.parameters(), tiny_agent.online.parameters(), strict=True
    ):
        assert torch.allclose(now, before + tiny_agent.cfg.tau * (online - before), atol=1e-6)
    assert torch.equal(alpha, tiny_agent.log_alpha)  # autotune off: the temperature stays


def test_critic_hidden_sets_the_twin_critics_layers_and_leaves_the_actors_alone():
    sac = {**SAC["agent"]["sac"], "critic_hidden": [16, 16, 16]}
    cfg = from_dict(Config, {**SAC, "agent": {**SAC["agent"], "hidden": [32], "sac": sac}})
    agent = factory.build(cfg)[1]
    obs, actions = 2, 2  # linear_quadratic: 2-D states and actions
    for critics in (agent.online, agent.target):
        shapes = [tuple(w.shape) for w in critics.net.weights]
        assert shapes == [(2, obs + actions, 16), (2, 16, 16), (2, 16, 16), (2, 16, 3)]
    assert [w.shape[1:] for w in agent.actors.net.weights] == [(obs, 32), (32, 3 * 2 * actions)]
    q = agent.head_values_at(torch.zeros(4, obs), torch.zeros(4, 1, actions))
    assert q.shape == (4, 3, 1)


def test_head_types_must_fit_the_worlds_actions():
    with pytest.raises(ConfigError, match="soft_actor_critic heads learn box actions.*discrete"):
        factory.build(from_dict(Config, {"agent": {"heads": "soft_actor_critic"}}))
    lq_world = {"env": {"name": "linear_quadratic", "num_envs": 2}}
    for heads in ("soft_q", "successor_features"):
        with pytest.raises(ConfigError, match=f"{heads} heads learn discrete actions.*box"):
            factory.build(from_dict(Config, {**lq_world, "agent": {"heads": heads}}))


@pytest.fixture(scope="module")
def lq_run(tmp_path_factory):
    cfg = from_dict(Config, SAC)
    run_dir = tmp_path_factory.mktemp("runs") / "sac"
    return cfg, run_dir, training.train(cfg, run_dir, progress=False)


def test_learned_soft_q_of_every_head_is_within_5_percent_of_the_exact_one(lq_run):
    cfg, run_dir, result = lq_run
    world, agent = factory.build(cfg)
    load_checkpoint(latest_checkpoint(run_dir), agent)
    sols, b = exact_heads(), bases(LinearQuadraticConfig())
    axis = torch.linspace(-1, 1, 5)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, axis, indexing="ij"), -1).reshape(-1, 4)
    x, u = grid[:, :2], grid[:, 2:]  # states in [-1, 1]^2, actions in [-1, 1]^2
    with torch.no_grad():
        learned = agent.twins(agent.online(x, u)).double()  # [S, K]
    for k, (name, sol) in enumerate(zip(world.head_names, sols, strict=True)):
        exact = lq.soft_q(sol, b.F, b.G, 0.9, x, u)
        error = (learned[:, k] - exact).abs().mean() / exact.abs().mean()
        assert error <= 0.05, f"{name}: mean |dQ| / mean |Q| = {error:.3f}"
    for row in result["eval"]:
        assert row["normalized_return"] >= 0.95, row


def test_a_boolean_task_on_heads_without_goals_is_one_error(lq_run):
    cfg, run_dir, _ = lq_run
    _, world, agent = composition.load(run_dir)
    with pytest.raises(ValueError, match="Boolean tasks need a world that declares goals"):
        composition.evaluate_task(cfg, world, agent, "east & north", 4, 0)


def test_the_continuous_composition_experiment_scores_learned_exact_and_direct(
    lq_run, tmp_path, capsys
):
    from experiments import linear_continuous

    _, run_dir, _ = lq_run
    rows = linear_continuous.main(
        ["--checkpoint", str(run_dir), "--vectors", "2", "--direct", "1", "--direct-steps", "2400"]
        + ["--episodes", "16", "--out", str(tmp_path)]
    )
    assert len(rows) == 2 and "direct_normalized" in rows[0] and "direct_normalized" not in rows[1]
    for row in rows:
        assert 0.95 <= row["exact_heads_normalized"] < 1  # composition itself loses a little
        assert row["composed_normalized"] >= 0.9
        assert row["ratio"] == pytest.approx(
            row["composed_normalized"] / row["exact_heads_normalized"]
        )
    out = capsys.readouterr().out
    assert "ratio: mean" in out and "direct_normalized: mean" in out


@pytest.mark.parametrize("combine", ["max", "sum"])
def test_the_homeostatic_agent_acts_on_its_value_program_over_the_candidates(tiny_agent, combine):
    from agents.homeostatic import HomeostaticAgent
    from composable_rl.homeostasis import load_value_program

    program = load_value_program(
        {
            "variables": {"far": {"setpoint": 0.5, "kp": 2.0}, "tired": {"setpoint": 0.5}},
            "weights": {"east": "far", "effort": "tired"},
            "combine": combine,
        },
        tiny_agent.head_names,
    )
    obs = torch.rand(6, 2) * 2 - 1
    levels = torch.tensor([[0.1, 0.5], [0.5, 0.1], [0.2, 0.2]]).repeat(2, 1)
    homeostatic = HomeostaticAgent(tiny_agent, program, num_envs=6, alpha=0.0)
    actions = homeostatic.act(obs, levels)
    assert actions.shape == (6, 2) and actions.abs().max() <= BOUND
    weights = homeostatic.controller.last_weights

    def composed(q: torch.Tensor) -> torch.Tensor:
        return program.compose(q, weights)

    _, _, means = tiny_agent.candidates(obs, weights, True, None)
    both = torch.cat([means, actions[:, None] / BOUND], 1)
    values = composed(tiny_agent.head_values_at(obs, both))
    assert (values[:, -1] >= values[:, :-1].amax(1) - 1e-5).all()  # the best of the candidates


def test_zero_shot_weights_act_through_the_sampler_and_wrong_lengths_are_one_error(
    lq_run, tmp_path
):
    _, run_dir, _ = lq_run
    out = tmp_path / "rows.json"
    args = ["--checkpoint", str(run_dir), "--episodes", "8", "--logdir", str(tmp_path)]
    done = run_script("zero_shot.py", *args, "--weights", "0.5,0.3,0.2", "--json", str(out))
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())
    assert row["task"] == "0.5*east + 0.3*north + 0.2*effort" and row["episodes"] == 8
    assert row["return"] < 0 and row["ci95"] >= 0
    wrong = run_script("zero_shot.py", *args, "--weights", "1,2")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
