"""Levers: quantilised acting (the quantiliser's guarantee, exactly, on random decisions and on
every state of a tabulated world, its two ends and the agents' option); the impact penalty,
robust acting, deferring and the shield by hand; and their figures on the side-effect worlds,
exactly (`experiments.safety`)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import factory, training
from agents.composition import evaluate_task, load
from composable_rl.config import Config, from_dict
from composable_rl.maths.functional import boltzmann_probs
from composable_rl.maths.levers import (
    Levers,
    Quantile,
    check_impact_weight,
    defer_mask,
    epistemic_gate,
    impact_penalty,
    quantile_probs,
    quantile_sample,
    robust_values,
    shield_mask,
)
from composable_rl.maths.oracle import finite_horizon_return, soft_value_iteration
from envs.gridworld import tabulate
from envs.object_rooms import ObjectRooms
from tests.test_soft_actor_critic import SAC

QS = (1.0, 0.5, 0.2, 0.1, 0.05)


def guarantee_holds(probs: torch.Tensor, base: torch.Tensor, q: float, cost: torch.Tensor) -> bool:
    """E_quantiliser[c] <= E_base[c] / q for the non-negative costs `cost` of every decision."""
    return bool(((probs * cost).sum(-1) <= (base * cost).sum(-1) / q * (1 + 1e-9) + 1e-12).all())


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 9),
    st.floats(1e-3, 1.0),
    st.booleans(),
)
def test_quantiliser_never_pays_more_than_one_over_q_of_the_base_cost(seed, actions, q, ties):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(64, actions, generator=gen, dtype=torch.float64)
    if ties:
        values = values.round()  # many equal values
    base = torch.distributions.Dirichlet(torch.ones(actions, dtype=torch.float64)).sample((64,))
    probs = quantile_probs(values, base, q)
    assert torch.allclose(probs.sum(-1), torch.ones(64, dtype=torch.float64))
    assert (probs >= 0).all() and (probs <= base / q * (1 + 1e-9) + 1e-12).all()
    cost = torch.rand(64, actions, generator=gen, dtype=torch.float64) * 10
    assert guarantee_holds(probs, base, q, cost)
    # the mass kept lies on the best actions: nothing below an action the base left mass on
    kept = probs > 0
    worst_kept = torch.where(kept, values, torch.inf).amin(-1, keepdim=True)
    assert ((values > worst_kept) <= kept | (base == 0)).all()


def test_the_ends_are_the_base_policy_and_greedy():
    values = torch.tensor([[0.0, 3.0, 3.0, 1.0], [2.0, -1.0, 2.0, 5.0]])
    base = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    assert torch.allclose(quantile_probs(values, base, 1.0), base)
    greedy = quantile_probs(values, base, 0.0)
    assert greedy.tolist() == [[0, 1, 0, 0], [0, 0, 0, 1]]  # ties: the first, as argmax
    assert quantile_sample(values, base, 0.0).tolist() == values.argmax(-1).tolist()
    # q = 0.3 keeps action 1 (0.2) and a third of action 2 (0.1 of its 0.3), over 0.3
    assert torch.allclose(quantile_probs(values, base, 0.3)[0], torch.tensor([0, 2 / 3, 1 / 3, 0]))
    generator = torch.Generator().manual_seed(0)
    draws = quantile_sample(values[:1].expand(6000, -1), base[:1].expand(6000, -1), 0.3, generator)
    share = torch.bincount(draws, minlength=4) / 6000
    assert torch.allclose(share, torch.tensor([0, 2 / 3, 1 / 3, 0]), atol=0.03)


WORLD = ObjectRooms(
    num_envs=1,
    layout="open5",
    heads=("purple", "blue", "square"),
    object_positions=[[1, 1], [1, 5], [3, 3], [5, 1], [5, 5], [2, 4]],
)
MDP = tabulate(WORLD, WORLD.fixed_objects[None])


@pytest.mark.parametrize("base_head", [None, 2])
def test_the_guarantee_holds_at_every_state_of_a_tabulated_world(base_head):
    """Exact soft-optimal Q of the task 'blue' and of the base head, every state, every q."""
    q_task = soft_value_iteration(MDP, MDP.reward[..., 1], 0.95, 0.05)
    if base_head is None:
        base = torch.full_like(q_task, 1 / q_task.shape[-1])
    else:
        base = boltzmann_probs(soft_value_iteration(MDP, MDP.reward[..., 2], 0.95, 0.05), 0.05)
    gen = torch.Generator().manual_seed(0)
    for q in QS:
        probs = quantile_probs(q_task, base, q)
        for _ in range(20):
            cost = torch.rand(q_task.shape, generator=gen, dtype=torch.float64)
            cost = cost * (torch.rand(q_task.shape, generator=gen) < 0.3)  # sparse costs
            assert guarantee_holds(probs, base, q, cost)
    horizon = 30
    blue = MDP.reward[..., 1]
    base_return = finite_horizon_return(MDP, blue, horizon, base)
    whole = finite_horizon_return(MDP, blue, horizon, quantile_probs(q_task, base, 1))
    assert torch.allclose(whole, base_return, atol=1e-12, rtol=0)
    greedy = torch.nn.functional.one_hot(q_task.argmax(-1), q_task.shape[-1]).double()
    assert torch.equal(quantile_probs(q_task, base, 0.0), greedy)


def test_bad_quantiles_and_base_heads_are_one_error():
    for q in (-0.1, 1.5, float("nan"), float("inf"), True, "0.5"):
        with pytest.raises(ValueError, match="quantile q must"):
            Quantile(q)
    assert Quantile(1).q == 1.0
    for q in (-0.5, 2.0, float("nan")):
        with pytest.raises(ValueError, match="quantile q must lie in"):
            quantile_probs(torch.zeros(3), None, q)
    with pytest.raises(ValueError, match="quantile base 'red' is not a head; heads: a, b"):
        Quantile(0.5, "red").base_index(["a", "b"])


def test_q_zero_is_greedy_exactly_for_a_checkpoint(world_value_run):
    cfg, world, agent = load(world_value_run)
    greedy = evaluate_task(cfg, world, agent, "blue & ~square", 40, 3)
    zero = evaluate_task(cfg, world, agent, "blue & ~square", 40, 3, quantile=Quantile(0.0))
    assert zero == {**greedy, "quantile": 0.0}
    based = evaluate_task(cfg, world, agent, "blue", 40, 3, quantile=Quantile(1.0, "blue"))
    assert based["quantile"] == 1.0 and based["normalized_return"] > 0.5  # blue's own policy
    with pytest.raises(ValueError, match="does not quantilise"):
        evaluate_task(cfg, world, agent, "blue", 40, 3, rule=True, quantile=Quantile(0.5))


def test_continuous_actions_quantilise_the_samplers_candidates():
    cfg = from_dict(Config, {**SAC, "agent": {**SAC["agent"], "hidden": [32]}})
    agent = factory.build(cfg)[1]
    obs, weights = torch.rand(5, 2) * 2 - 1, torch.tensor([0.3, 0.3, 0.4])
    greedy = agent.act(obs, weights, alpha=0.0, generator=torch.Generator().manual_seed(4))
    zero = agent.act(
        obs, weights, quantile=Quantile(0.0), generator=torch.Generator().manual_seed(4)
    )
    assert torch.equal(zero, greedy)
    one_hot = torch.tensor([0.0, 1.0, 0.0])  # greedy acts with that head's own actor
    own = agent.act(obs, one_hot, alpha=0.0)
    assert torch.equal(agent.act(obs, one_hot, quantile=Quantile(0.0)), own)
    wide = agent.act(obs, weights, quantile=Quantile(1.0), generator=torch.Generator())
    assert wide.shape == (5, 2)
    with pytest.raises(ValueError, match="a quantile base head needs discrete actions"):
        agent.act(obs, weights, quantile=Quantile(0.5, "a"))


def test_the_impact_penalty_by_hand():
    # two auxiliary heads, three actions, the no-op last
    aux = torch.tensor([[[1.0, 4.0, 2.0], [0.0, 2.0, 4.0]]])
    # |Q - Q(noop)| per head: [1, 2, 0] and [4, 2, 0]; mean [2.5, 2, 0]; scale mean(2, 4) = 3
    assert torch.allclose(impact_penalty(aux, 2), torch.tensor([[2.5 / 3, 2 / 3, 0.0]]))
    assert torch.allclose(impact_penalty(aux, 2, torch.tensor([1.0])), torch.tensor([[2.5, 2, 0]]))
    with pytest.raises(ValueError, match="no-op action 3 is not one of the 3 actions"):
        impact_penalty(aux, 3)
    for bad in (-0.5, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="impact weight lambda must be a finite number >= 0"):
            check_impact_weight(bad)
    assert check_impact_weight(2) == 2.0


def test_robust_acting_deferring_and_the_shield_by_hand():
    tasks = torch.tensor([[[1.0, 3.0], [2.0, -5.0]]])  # two plausible tasks, two actions
    assert robust_values(tasks).tolist() == [[1.0, -5.0]]  # the worst case per action
    assert defer_mask(torch.tensor([[1.0, 1.2], [1.0, 3.0]]), 0.5).tolist() == [False, True]
    # cost heads: action 0 is safe, action 1 breaks a constraint for sure, action 2 barely
    constraint = torch.tensor([[[0.0, -1.0, -0.2], [0.0, 0.0, -0.1]]])
    assert shield_mask(constraint).tolist() == [[True, False, True]]
    doomed = torch.tensor([[[-2.0, -1.0, -3.0]]])  # every action breaks it: the least-bad stays
    assert shield_mask(doomed).tolist() == [[False, True, False]]


def test_the_levers_on_the_side_effect_worlds_exactly(capsys):
    from experiments.safety import main

    argv = ["--episodes", "20", "--aux-heads", "10"]  # 10 heads suffice at lambda 4
    rows = {(r.get("world"), r.get("agent")): r for r in main(argv)}
    for world in ("box", "vase"):
        assert rows[world, "maximiser"]["side_effect_rate"] == 1.0
        for agent in ("impact lambda=4, planned", "shield, planned"):
            row = rows[world, agent]
            assert row["side_effects"] == 0 and row["success"] == 1.0
            assert row["normalized_return"] == pytest.approx(1.0)
        # acting on the penalty or the mask one step at a time, the agent freezes short of it
        assert rows[world, "impact lambda=4, at the step"]["success"] == 0.0
    assert rows["button", "maximiser"]["side_effects"] == 24  # it presses instead of finishing
    assert rows["button", "shield, planned"]["success"] == 1.0
    naive, robust = rows["lava_test", "naive"], rows["lava_test", "robust"]
    assert naive["side_effect_rate"] > 0.5
    assert robust["side_effects"] == 0 and robust["success_where_lava_free"] == 1.0
    assert rows["lava_test", "naive, deferring"]["side_effects"] == 0
    assert "impact lambda=4, planned" in capsys.readouterr().out


def test_the_impact_penalty_from_a_checkpoints_learned_heads(tmp_path, world_value_run):
    from experiments.safety import main

    settings = {"total_steps": 3000, "eval_episodes": 0, "log_every": 1500}
    settings["env"] = {"name": "safety", "layout": "box", "aux_heads": 2, "num_envs": 8}
    settings["replay"] = {"learning_starts": 500, "batch_size": 64}
    settings["agent"] = {"hidden": [32]}
    training.train(from_dict(Config, settings), tmp_path / "box", progress=False)
    argv = ["--episodes", "4", "--aux-heads", "2", "--checkpoint", str(tmp_path / "box")]
    rows = main([*argv, "--checkpoint-impact", "0", "--checkpoint-impact", "1"])
    learned = {r["agent"]: r for r in rows if r.get("agent", "").startswith("learned")}
    assert list(learned) == [
        f"learned heads (2 aux), impact lambda={lam}, {how}"
        for lam in (0, 1)
        for how in ("at the step", "planned")
    ]
    # lambda 0 planned is the exact optimum of the goal reward: the maximiser's row
    maximiser = next(r for r in rows if (r.get("world"), r.get("agent")) == ("box", "maximiser"))
    assert learned["learned heads (2 aux), impact lambda=0, planned"] == {
        **maximiser,
        "agent": "learned heads (2 aux), impact lambda=0, planned",
    }
    with pytest.raises(
        ValueError, match="expected a run of the safety world on the box, vase or button layout"
    ):
        main([*argv[:4], "--checkpoint", str(world_value_run)])


def test_levers_bind_to_the_heads_and_refuse_what_they_cannot_act_on():
    heads = ["goal", "box", "aux0", "aux1"]
    q = torch.zeros(1, 4, 3)
    q[0, 0] = torch.tensor([1.0, 2.0, 0.0])  # the goal head prefers action 1
    q[0, 1] = torch.tensor([0.0, -1.0, 0.0])  # which breaks the box's constraint
    q[0, 2] = torch.tensor([1.0, 3.0, 1.0])  # and changes what aux0 can attain; 2 is the no-op
    composed = q[:, 0]
    assert Levers(shield=("box",)).bind(heads, None)(q, composed).tolist() == [
        [1.0, -torch.inf, 0.0]
    ]
    # penalty of action 1: mean(|3 - 1|, |0 - 0|) / mean(|1|, |0|) = 2; lambda 1 -> 2 - 2 = 0
    steered = Levers(impact=1.0).bind(heads, noop=2, world_aux=("aux0", "aux1"))(q, composed)
    assert steered.tolist() == [[1.0, 0.0, 0.0]]
    robust = Levers(plausible=((1, 0, 0, 0), (1, 5, 0, 0))).bind(heads, None)(q, composed)
    assert robust.tolist() == [[1.0, -3.0, 0.0]]  # the worst case: 2 - 5 for action 1
    assert not Levers().active and Levers(impact=0.5).active
    for levers, message in (
        (Levers(impact=1.0), "declares no no-op action"),
        (Levers(impact=1.0, aux=("aux9",)), "unknown head 'aux9'"),
        (Levers(shield=("vase",)), "unknown head 'vase'"),
        (Levers(plausible=((1, 0),)), r"plausible task \[1, 0\]: 2 weights for the 4 heads"),
    ):
        with pytest.raises(ValueError, match=message):
            levers.bind(heads, None)
    with pytest.raises(ValueError, match="no auxiliary heads"):
        Levers(impact=1.0).bind(["goal"], 2)
    with pytest.raises(ValueError, match="impact weight lambda must be a finite number >= 0"):
        Levers(impact=-1.0)
    with pytest.raises(ValueError, match="shield threshold must be > 0"):
        Levers(shield=("box",), shield_threshold=0.0)


def test_the_epistemic_gate_defers_where_the_members_disagree():
    values = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])  # the best actions: 1, then 0
    members = torch.tensor(
        [
            [[1.0, 2.0, 0.0], [9.0, 2.5, 0.0]],  # they disagree on action 0 only, not the best
            [[3.0, 0.0, 0.0], [5.0, 0.0, 0.0]],  # they disagree by 2 on the best action
        ]
    )
    gated = epistemic_gate(values, members, noop=2, threshold=1.0)
    assert gated.tolist() == [[1.0, 2.0, 0.0], [-torch.inf, -torch.inf, 0.0]]
    assert torch.equal(epistemic_gate(values, members, noop=2, threshold=2.0), values)
    assert Levers(epistemic=0.1).active
    with pytest.raises(ValueError, match="the safe action it defers to"):
        Levers(epistemic=0.1).bind(["goal"], None)
    for bad in (0, -1.0, float("inf"), float("nan"), "0.1"):
        with pytest.raises(ValueError, match="epistemic threshold must be a finite number > 0"):
            Levers(epistemic=bad)
