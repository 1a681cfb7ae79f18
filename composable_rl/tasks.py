"""Behaviour-task distributions: what each env slot pursues while the heads learn off-policy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def sample_task_weights(
    n: int,
    num_heads: int,
    single_head_prob: float,
    weight_dist: str = "dirichlet",
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    fixed: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws n tasks: weights [n, K] and the base head index [n] (-1 for a random mixture).

    A task is one base head with probability `single_head_prob`, otherwise a weight vector.

    `dirichlet` gives positive weights summing to one (mixtures of wanted things); `uniform`
    gives weights in [-1, 1] so that some heads are actively avoided. `fixed` pins every task to
    one weight vector (reported as a mixture, -1).
    """
    if fixed is not None:
        if len(fixed) != num_heads:
            raise ValueError(f"fixed weights need {num_heads} values, got {len(fixed)}")
        weights = torch.tensor(fixed, dtype=torch.float32, device=device).expand(n, -1)
        return weights, torch.full((n,), -1, dtype=torch.long, device=device)
    u = torch.rand((n, num_heads), generator=generator, device=device)
    if weight_dist == "dirichlet":
        mixed = -torch.log(u.clamp_min(1e-12))
        mixed = mixed / mixed.sum(1, keepdim=True)
    elif weight_dist == "uniform":
        mixed = 2 * u - 1
    else:
        raise ValueError(f"unknown weight_dist {weight_dist!r}; expected 'dirichlet' or 'uniform'")
    head = torch.randint(num_heads, (n,), generator=generator, device=device)
    one_hot = torch.nn.functional.one_hot(head, num_heads).to(mixed.dtype)
    single = torch.rand(n, generator=generator, device=device) < single_head_prob
    return torch.where(single[:, None], one_hot, mixed), torch.where(single, head, -1)


def task_stream(n: int, block: int, **kwargs) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless per-step task draws (weights [n, K], head [n]) for n slots, `block` steps at a time.

    One `sample_task_weights(n * block, **kwargs)` call per block replaces `block` calls of a
    dozen small tensor ops each (DESIGN.md §5); the draws have the same distribution.
    """
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")
    while True:
        weights, heads = sample_task_weights(n * block, **kwargs)
        yield from zip(weights.reshape(block, n, -1), heads.reshape(block, n), strict=True)
