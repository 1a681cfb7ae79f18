"""Preallocated tensor ring buffer with reward vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch


def _integers(*tensors: torch.Tensor) -> bool:
    """Whether every tensor holds integers (not floats, not bools)."""
    return all(not t.is_floating_point() and t.dtype != torch.bool for t in tensors)


class Batch(NamedTuple):
    """A sampled minibatch; rewards are vectors, one column per head."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    next_obs: torch.Tensor
    goal: torch.Tensor
    index: torch.Tensor | None = None  # the replay slots sampled (fixes bootstrap masks)


class TensorReplay:
    """Ring buffer of transitions stored in preallocated tensors; add and sample are index ops.

    Only `terminated` is stored: a truncated transition bootstraps like any other, and its
    `next_obs` is the real final observation, not the first one of the next episode. Actions
    are long indices by default, or float32 points of `action_shape` for a box of actions.
    Observations are kept in `stored_dtype` (default `obs_dtype`) and sampled as `obs_dtype`:
    index observations fit int32, which halves the memory a sample reads at random.
    """

    FIELDS = ("obs", "next_obs", "action", "reward", "terminated", "goal")

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        num_heads: int,
        obs_dtype: torch.dtype = torch.uint8,
        device: str | torch.device = "cpu",
        action_shape: Sequence[int] = (),
        action_dtype: torch.dtype = torch.long,
        stored_dtype: torch.dtype | None = None,
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        self.obs_dtype = obs_dtype
        kw = {"device": self.device}
        stored = {"dtype": obs_dtype if stored_dtype is None else stored_dtype, **kw}
        self.obs = torch.zeros((capacity, *obs_shape), **stored)
        self.next_obs = torch.zeros((capacity, *obs_shape), **stored)
        self.action = torch.zeros((capacity, *action_shape), dtype=action_dtype, **kw)
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
        """Writes a batch of N transitions at the ring's head: a slice copy per field, two where
        the ring wraps (an indexed write cost about 1.6 times as much)."""
        n = obs.shape[0]
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        if goal is None:
            goal = torch.full((n,), -1, dtype=torch.long, device=self.device)
        values = (obs, next_obs, action, reward, terminated, goal)
        head = min(n, self.capacity - self.pos)  # rows before the ring wraps
        for name, value in zip(self.FIELDS, values, strict=True):
            field = getattr(self, name)
            field[self.pos : self.pos + head] = value[:head]
            if head < n:
                field[: n - head] = value[head:]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The filled part of every field plus the ring's position (what a resumed run needs)."""
        state = {name: getattr(self, name)[: self.size] for name in self.FIELDS}
        return {**state, "pos": torch.tensor(self.pos), "size": torch.tensor(self.size)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Refill from a `state_dict` of a buffer with the same capacity and field shapes."""
        size = int(state["size"])
        if size > self.capacity or (size == self.capacity) != (int(state["pos"]) < size):
            raise ValueError(
                f"a saved replay of {size} transitions (ring position {int(state['pos'])}) "
                f"does not fit a capacity of {self.capacity}"
            )
        for name in self.FIELDS:
            saved, mine = state[name], getattr(self, name)
            # observations saved as int64 (before index observations were kept as int32) load
            widen = name in ("obs", "next_obs") and _integers(saved, mine)
            if saved.shape[1:] != mine.shape[1:] or not (saved.dtype == mine.dtype or widen):
                raise ValueError(
                    f"saved replay field {name} {tuple(saved.shape[1:])} {saved.dtype} does not "
                    f"fit {tuple(mine.shape[1:])} {mine.dtype}"
                )
            mine[:size] = saved
        self.pos, self.size = int(state["pos"]), size

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Uniform sample with replacement from the filled part of the ring. Rows are gathered
        with `index_select`, which on CPU took a third of the time of indexing with a tensor
        (`obs[idx]`) for a batch of 1024 (0.25 ms against 0.4-0.7 ms a sample)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(self.size, (batch_size,), device=self.device, generator=generator)

        def rows(field: torch.Tensor) -> torch.Tensor:
            return field.index_select(0, idx)

        return Batch(
            rows(self.obs).to(self.obs_dtype),
            rows(self.action),
            rows(self.reward),
            rows(self.terminated),
            rows(self.next_obs).to(self.obs_dtype),
            rows(self.goal),
            idx,
        )
