"""Preallocated tensor ring buffer with reward vectors (DESIGN.md §5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """A sampled minibatch; rewards are vectors, one column per head."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    next_obs: torch.Tensor
    goal: torch.Tensor


class TensorReplay:
    """Ring buffer of transitions stored in preallocated tensors; add and sample are index ops.

    Only `terminated` is stored: a truncated transition bootstraps like any other, and its
    `next_obs` is the real final observation, not the first one of the next episode.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        num_heads: int,
        obs_dtype: torch.dtype = torch.uint8,
        device: str | torch.device = "cpu",
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        kw = {"device": self.device}
        self.obs = torch.zeros((capacity, *obs_shape), dtype=obs_dtype, **kw)
        self.next_obs = torch.zeros((capacity, *obs_shape), dtype=obs_dtype, **kw)
        self.action = torch.zeros(capacity, dtype=torch.long, **kw)
        self.reward = torch.zeros((capacity, num_heads), dtype=torch.float32, **kw)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, **kw)
        self.goal = torch.full((capacity,), -1, dtype=torch.long, **kw)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        next_obs: torch.Tensor,
        goal: torch.Tensor | None = None,
    ) -> None:
        """Writes a batch of N transitions at the ring's head (one indexed copy per field)."""
        n = obs.shape[0]
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.action[idx] = action
        self.reward[idx] = reward
        self.terminated[idx] = terminated
        self.goal[idx] = -1 if goal is None else goal
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Uniform sample with replacement from the filled part of the ring."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(self.size, (batch_size,), device=self.device, generator=generator)
        return Batch(
            self.obs[idx],
            self.action[idx],
            self.reward[idx],
            self.terminated[idx],
            self.next_obs[idx],
            self.goal[idx],
        )
