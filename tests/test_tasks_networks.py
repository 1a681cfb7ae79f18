"""Behaviour-task sampling and the fused multi-head network."""

import pytest
import torch

from composable_rl.networks import MultiHeadQNetwork
from composable_rl.tasks import TaskStream, sample_task_weights


def test_task_weights_single_and_mixed():
    gen = torch.Generator().manual_seed(1)
    w, head = sample_task_weights(4000, 3, 0.3, "dirichlet", gen)
    single = head >= 0
    assert single.float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert torch.equal(w[single], torch.nn.functional.one_hot(head[single], 3).float())
    assert torch.allclose(w[~single].sum(1), torch.ones((~single).sum()))
    assert (w >= 0).all()
    w, _ = sample_task_weights(1000, 3, 0.0, "uniform", gen)
    assert (w < 0).any() and w.abs().max() <= 1
    with pytest.raises(ValueError, match="weight_dist"):
        sample_task_weights(2, 3, 0.5, "gauss")


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_network_output_shapes(encoder):
    obs = torch.randint(0, 2, (5, 3, 7, 7), dtype=torch.uint8)
    assert MultiHeadQNetwork((3, 7, 7), 4, 4, encoder=encoder, hidden=[32])(obs).shape == (5, 4, 4)
    world = MultiHeadQNetwork((3, 7, 7), 4, 4, num_goals=6, encoder=encoder, hidden=[32])
    assert world(obs).shape == (5, 4, 6, 4)


def test_network_rejects_bad_settings():
    with pytest.raises(ValueError, match="encoder"):
        MultiHeadQNetwork((3, 7, 7), 2, 4, encoder="transformer")
    with pytest.raises(ValueError, match="hidden"):
        MultiHeadQNetwork((3, 7, 7), 2, 4, hidden=[])


def test_sparse_mlp_equals_dense_mlp_on_the_one_hot_input():
    torch.manual_seed(0)
    width, hidden = 30, [16, 8]
    sparse = MultiHeadQNetwork((4,), 3, 2, hidden=hidden, sparse_features=width)
    dense = MultiHeadQNetwork((width,), 3, 2, hidden=hidden)
    with torch.no_grad():
        dense.encoder[1].weight.copy_(sparse.encoder[0].weight.T)
        dense.encoder[1].bias.copy_(sparse.encoder[0].bias)
    dense.encoder[3].load_state_dict(sparse.encoder[2][1].state_dict())
    dense.head.load_state_dict(sparse.head.state_dict())
    indices = torch.stack([torch.randperm(width)[:4] for _ in range(10)])
    indices[0, 1] = indices[0, 0]  # a repeated index counts twice, as a 2 in the dense input
    multi_hot = torch.zeros(10, width).scatter_add_(1, indices, torch.ones(10, 4))
    assert torch.allclose(sparse(indices), dense(multi_hot), atol=1e-6)
    sparse(indices).square().sum().backward()
    dense(multi_hot).square().sum().backward()
    first_dense = dense.encoder[1].weight.grad.T
    assert torch.allclose(sparse.encoder[0].weight.grad, first_dense, atol=1e-5)
    assert torch.allclose(sparse.head.weight.grad, dense.head.weight.grad, atol=1e-5)
    with pytest.raises(ValueError, match="index observations"):
        MultiHeadQNetwork((4,), 3, 2, encoder="cnn", sparse_features=width)


def test_goal_conditioned_network_shares_weights_across_goals():
    torch.manual_seed(0)
    slots = torch.tensor([[1, 2], [3, 4], [5, 6]])
    net = MultiHeadQNetwork(
        (7,), 2, 4, num_goals=3, hidden=[16, 8], sparse_features=40, goal_slots=slots
    )
    obs = torch.randint(0, 40, (5, 7))
    q = net(obs)
    assert q.shape == (5, 2, 3, 4)
    # A goal's values depend on its own columns only through the shared weights: goals whose
    # columns hold the same indices get the same values, and permuting the slots permutes goals.
    twin = obs.clone()
    twin[:, 3:5] = twin[:, 1:3]
    q_twin = net(twin)
    assert torch.allclose(q_twin[:, :, 0], q_twin[:, :, 1])
    perm = torch.tensor([2, 0, 1])
    permuted = MultiHeadQNetwork(
        (7,), 2, 4, num_goals=3, hidden=[16, 8], sparse_features=40, goal_slots=slots[perm]
    )
    permuted.load_state_dict(net.state_dict())
    assert torch.allclose(permuted(obs), q[:, :, perm], atol=1e-6)
    with pytest.raises(ValueError, match="goal_slots"):
        MultiHeadQNetwork((7,), 2, 4, num_goals=2, sparse_features=40, goal_slots=slots)
    with pytest.raises(ValueError, match="goal_slots"):
        MultiHeadQNetwork((3, 7, 7), 2, 4, num_goals=3, goal_slots=slots)


def test_fixed_task_weights():
    w, head = sample_task_weights(3, 2, 0.5, fixed=[0.25, -1.0])
    assert w.tolist() == [[0.25, -1.0]] * 3 and head.tolist() == [-1] * 3
    with pytest.raises(ValueError, match="need 2 values"):
        sample_task_weights(3, 2, 0.5, fixed=[1.0])


def test_task_stream_splits_block_draws_into_steps():
    kwargs = {"num_heads": 3, "single_head_prob": 0.5}
    stream = TaskStream(4, 5, generator=torch.Generator().manual_seed(1), **kwargs)
    steps = [next(stream) for _ in range(10)]
    first, second = (
        sample_task_weights(20, generator=g, **kwargs)
        for g in [torch.Generator().manual_seed(1)] * 2
    )
    weights = torch.cat([first[0], second[0]]).view(10, 4, 3)
    heads = torch.cat([first[1], second[1]]).view(10, 4)
    assert all(
        torch.equal(w, weights[i]) and torch.equal(h, heads[i]) for i, (w, h) in enumerate(steps)
    )
    fixed = next(TaskStream(2, 3, num_heads=2, single_head_prob=0.5, fixed=[1.0, -1.0]))
    assert fixed[0].tolist() == [[1.0, -1.0]] * 2 and fixed[1].tolist() == [-1, -1]
    with pytest.raises(ValueError, match="block"):
        TaskStream(2, 0, **kwargs)


def test_task_stream_resumes_mid_block():
    kwargs = {"num_heads": 3, "single_head_prob": 0.5}
    stream = TaskStream(4, 5, generator=torch.Generator().manual_seed(1), **kwargs)
    for _ in range(7):
        next(stream)
    gen = torch.Generator().manual_seed(1)
    resumed = TaskStream(4, 5, generator=gen, **kwargs)
    resumed.load_state_dict(stream.state_dict())
    gen.set_state(stream.kwargs["generator"].get_state())
    for _ in range(6):
        (w, h), (w2, h2) = next(stream), next(resumed)
        assert torch.equal(w, w2) and torch.equal(h, h2)
