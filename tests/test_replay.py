"""Tensor replay ring: wrap-around, field integrity, sampling."""

import pytest
import torch

from composable_rl.replay import TensorReplay
from composable_rl.world import ObservationSpec


def _fill(buf: TensorReplay, start: int, n: int) -> None:
    ids = torch.arange(start, start + n)
    obs = ids.view(n, 1, 1).expand(n, 2, 3).to(torch.uint8)
    buf.add(obs, ids, ids[:, None].float().expand(n, 3), ids % 2 == 0, obs + 1, ids)


def test_ring_wraps_and_keeps_transitions_aligned():
    buf = TensorReplay(capacity=10, obs_shape=(2, 3), num_heads=3)
    _fill(buf, 0, 6)
    _fill(buf, 6, 6)  # wraps: slots 0, 1 now hold ids 10, 11
    assert len(buf) == 10 and buf.pos == 2
    assert buf.action.tolist() == [10, 11, 2, 3, 4, 5, 6, 7, 8, 9]
    batch = buf.sample(64, torch.Generator().manual_seed(0))
    ids = batch.action
    assert torch.equal(batch.obs[:, 0, 0].long(), ids)
    assert torch.equal(batch.next_obs[:, 0, 0].long(), ids + 1)
    assert torch.equal(batch.reward[:, 2], ids.float())
    assert torch.equal(batch.terminated, ids % 2 == 0)
    assert torch.equal(batch.goal, ids)
    assert set(ids.tolist()) <= set(range(2, 12))


def test_sampling_only_reads_filled_slots():
    buf = TensorReplay(capacity=100, obs_shape=(1,), num_heads=1)
    _fill_small = torch.arange(5)
    buf.add(
        _fill_small[:, None].to(torch.uint8),
        _fill_small,
        torch.zeros(5, 1),
        torch.zeros(5, dtype=torch.bool),
        _fill_small[:, None].to(torch.uint8),
    )
    assert buf.sample(500).action.max().item() <= 4
    assert (buf.goal[:5] == -1).all()


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        TensorReplay(4, (1,), 1).sample(2)
    with pytest.raises(ValueError, match="capacity"):
        TensorReplay(0, (1,), 1)


@pytest.mark.parametrize("filled", [6, 12])
def test_state_dict_restores_a_ring_that_samples_the_same(filled):
    buf = TensorReplay(capacity=10, obs_shape=(2, 3), num_heads=3)
    for start in range(0, filled, 6):
        _fill(buf, start, 6)
    state = buf.state_dict()
    assert state["obs"].shape[0] == len(buf)
    copy = TensorReplay(capacity=10, obs_shape=(2, 3), num_heads=3)
    copy.load_state_dict(state)
    assert (copy.pos, len(copy)) == (buf.pos, len(buf))
    a, b = (r.sample(32, torch.Generator().manual_seed(3)) for r in (buf, copy))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    _fill(buf, 100, 3)
    _fill(copy, 100, 3)
    assert torch.equal(buf.action, copy.action)


def test_state_dict_refuses_another_shape_or_a_smaller_ring():
    buf = TensorReplay(capacity=10, obs_shape=(2, 3), num_heads=3)
    _fill(buf, 0, 6)
    _fill(buf, 6, 6)
    with pytest.raises(ValueError, match="capacity of 20"):
        TensorReplay(capacity=20, obs_shape=(2, 3), num_heads=3).load_state_dict(buf.state_dict())
    with pytest.raises(ValueError, match="obs"):
        TensorReplay(capacity=10, obs_shape=(3, 3), num_heads=3).load_state_dict(buf.state_dict())


def test_index_observations_are_kept_as_int32_and_sampled_as_long():
    spec = ObservationSpec((3,), torch.long, "indices", num_features=5_000)
    assert spec.stored_dtype == torch.int32
    assert ObservationSpec((3,), torch.long, "indices", 2**40).stored_dtype == torch.long
    buf = TensorReplay(8, spec.shape, 1, spec.dtype, stored_dtype=spec.stored_dtype)
    obs = torch.tensor([[0, 17, 4_999]] * 6)
    buf.add(obs, torch.arange(6), torch.zeros(6, 1), torch.zeros(6, dtype=torch.bool), obs + 1)
    assert buf.obs.dtype == torch.int32
    batch = buf.sample(16)
    assert batch.obs.dtype == torch.long and (batch.obs == obs[0]).all()
    assert (batch.next_obs == obs[0] + 1).all()
    # a ring saved with int64 observations (before they were kept as int32) loads into it
    wide = TensorReplay(8, spec.shape, 1, spec.dtype)
    wide.add(obs, torch.arange(6), torch.zeros(6, 1), torch.zeros(6, dtype=torch.bool), obs)
    buf.load_state_dict(wide.state_dict())
    assert torch.equal(buf.obs[:6].long(), obs)
    floats = TensorReplay(8, spec.shape, 1, torch.float32)
    with pytest.raises(ValueError, match="saved replay field obs"):
        floats.load_state_dict(wide.state_dict())
