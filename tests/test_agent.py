"""The multi-head soft-Q agent on synthetic data: one update trains every head."""

import pytest
import torch

from agents.soft_q import MultiHeadSoftQ
from composable_rl.config import AgentConfig
from composable_rl.maths import functional as fn
from composable_rl.replay import Batch
from composable_rl.world import ActionSpec


def _agent(**overrides) -> MultiHeadSoftQ:
    settings = {"hidden": [32], "lr": 1e-2, "tau": 1.0, "target_period": 500, **overrides}
    cfg = AgentConfig(**settings)
    return MultiHeadSoftQ((2, 3, 3), ActionSpec.discrete(4), ["a", "b", "c"], cfg)


def _batch(n: int = 64) -> Batch:
    gen = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 2, (n, 2, 3, 3), generator=gen, dtype=torch.uint8)
    return Batch(
        obs,
        torch.randint(4, (n,), generator=gen),
        torch.randn(n, 3, generator=gen),
        torch.ones(n, dtype=torch.bool),
        obs,
        torch.full((n,), -1),
    )


@pytest.mark.parametrize("double_q", [True, False])
def test_updates_fit_terminal_rewards_for_every_head(double_q):
    agent, batch = _agent(double_q=double_q), _batch()
    first = agent.update(batch)
    for _ in range(300):
        last = agent.update(batch)
    assert first["td_error"].shape == (3,)
    # All transitions terminate, so the target is the reward itself: every head must fit it.
    assert (last["td_error"] < 0.25 * first["td_error"]).all()


def test_hard_and_polyak_target_updates():
    agent = _agent(tau=1.0, target_period=2)
    batch = _batch()
    agent.update(batch)
    diff = [
        (o - t).abs().sum().item()
        for o, t in zip(agent.online.parameters(), agent.target.parameters(), strict=True)
    ]
    assert max(diff) > 0  # one update: the target has not been copied yet
    agent.update(batch)
    for o, t in zip(agent.online.parameters(), agent.target.parameters(), strict=True):
        assert torch.equal(o, t)
    soft = _agent(tau=0.5, target_period=1)
    before = [t.clone() for t in soft.target.parameters()]
    soft.update(batch)
    for o, t, b in zip(soft.online.parameters(), soft.target.parameters(), before, strict=True):
        assert torch.allclose(t, 0.5 * (o + b))


def test_act_composes_heads_and_explores():
    agent = _agent()
    obs = _batch(8).obs
    w = torch.tensor([[1.0, 0.0, 0.0]]).expand(8, 3)
    greedy = agent.act(obs, w, alpha=0.0)
    assert torch.equal(greedy, agent.online(obs)[:, 0].argmax(-1))
    gen = torch.Generator().manual_seed(0)
    explore = agent.act(obs.repeat(200, 1, 1, 1), w.repeat(200, 1), epsilon=1.0, generator=gen)
    assert set(explore.tolist()) == {0, 1, 2, 3}


def test_bootstrap_masks_are_fixed_per_slot_and_member():
    slots = torch.arange(20_000)
    mask = fn.bootstrap_mask(slots, 3, 0.5)
    assert mask.shape == (20_000, 3) and torch.equal(mask, fn.bootstrap_mask(slots, 3, 0.5))
    assert ((mask.float().mean(0) - 0.5).abs() < 0.02).all()  # each member: half the slots
    both = (mask[:, 0] & mask[:, 1]).float().mean()
    assert abs(both - 0.25) < 0.02  # members draw independently
    assert torch.equal(fn.bootstrap_mask(slots[[7, 7, 3]], 3, 0.5), mask[[7, 7, 3]])
    assert fn.bootstrap_mask(slots, 3, 1.0).all()


def test_an_ensemble_member_learns_only_from_its_own_slots():
    agent = _agent(ensemble=3, bootstrap=0.5)
    batch = _batch()
    values = agent.member_values(batch.obs)
    assert values.shape == (64, 3, 3, 4)
    torch.testing.assert_close(agent.head_values(batch.obs), values.mean(1))
    # slots that member 0 never learns from (and that the others do)
    slots = torch.arange(10_000)
    mask = fn.bootstrap_mask(slots, 3, 0.5)
    outside = slots[~mask[:, 0] & mask[:, 1]][:64]
    rows = 3 * 4  # member-major output rows: member 0's are the first K * A
    before = agent.online.head.weight.detach().clone()
    agent.update(batch._replace(index=outside))
    after = agent.online.head.weight.detach()
    assert torch.equal(after[:rows], before[:rows])
    assert not torch.equal(after[rows : 2 * rows], before[rows : 2 * rows])
    diagnostics = agent.update(batch._replace(index=slots[:64]))
    assert diagnostics["td_error"].shape == (3,)  # per head, over the members
