"""Behaviour-task distributions: what each env slot pursues while the heads learn off-policy."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def sphere_weights(
    n: int, k: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """n weight vectors [n, K] uniform on the unit sphere: every sign pattern, all directions."""
    w = torch.randn((n, k), generator=generator, device=device)
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


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
    gives weights in [-1, 1] so that some heads are actively avoided; `sphere` gives unit
    vectors in every direction, the training distribution of successor features. `fixed` pins
    every task to one weight vector (reported as a mixture, -1).
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
    elif weight_dist == "sphere":
        mixed = sphere_weights(n, num_heads, generator, device)
    else:
        raise ValueError(
            f"unknown weight_dist {weight_dist!r}; expected 'dirichlet', 'uniform' or 'sphere'"
        )
    head = torch.randint(num_heads, (n,), generator=generator, device=device)
    one_hot = torch.nn.functional.one_hot(head, num_heads).to(mixed.dtype)
    single = torch.rand(n, generator=generator, device=device) < single_head_prob
    return torch.where(single[:, None], one_hot, mixed), torch.where(single, head, -1)


class TaskStream:
    """Endless per-step task draws (weights [n, K], head [n]) for n slots, `block` steps at a time.

    One `sample_task_weights(n * block, **kwargs)` call per block replaces `block` calls of a
    dozen small tensor ops each; the draws have the same distribution. The pending
    block is part of `state_dict`, so a resumed run draws what the uninterrupted one would.
    """

    def __init__(self, n: int, block: int, **kwargs) -> None:
        if block < 1:
            raise ValueError(f"block must be positive, got {block}")
        self.n, self.block, self.kwargs = n, block, kwargs
        self.weights: torch.Tensor | None = None
        self.heads: torch.Tensor | None = None
        self.index = block

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.index == self.block:
            weights, heads = sample_task_weights(self.n * self.block, **self.kwargs)
            self.weights = weights.reshape(self.block, self.n, -1)
            self.heads = heads.reshape(self.block, self.n)
            self.index = 0
        self.index += 1
        return self.weights[self.index - 1], self.heads[self.index - 1]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The pending block and the position in it (an empty block before the first draw)."""
        if self.weights is None:
            return {"index": torch.tensor(self.index)}
        return {"weights": self.weights, "heads": self.heads, "index": torch.tensor(self.index)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from a `state_dict`."""
        device = self.kwargs.get("device", "cpu")
        self.weights = state["weights"].to(device) if "weights" in state else None
        self.heads = state["heads"].to(device) if "heads" in state else None
        self.index = int(state["index"])
