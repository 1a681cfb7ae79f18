"""What the training loop gathers between two log points, kept on the device so that the steps
in between never wait for it, and the TensorBoard scalars it becomes at each log point."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from composable_rl.run.logging import EPISODIC_RETURN


class LogWindow:
    """Finished episodes' returns per behaviour task (one per head, plus 'mixed' for weight
    vectors) and the sums of the learner's update diagnostics, since the last log point.

    Diagnostics are a learner's `update` output: scalars (a name ending in `_loss` is logged as
    `losses/<name>`, any other as `policy/<name>`) and [K] vectors, one entry per head, logged
    as `heads/<head>/<name>`.
    """

    def __init__(self, head_names: list[str], device: str | torch.device, step: int) -> None:
        self.head_names = head_names
        self.device = device
        self.returns = torch.zeros(len(head_names) + 1, device=device)
        self.counts = torch.zeros(len(head_names) + 1, device=device)
        self.sums: dict[str, Tensor] = {}
        self.num_updates = 0
        self.step, self.time = step, time.perf_counter()

    def episodes(self, done: Tensor, ep_return: Tensor, task: Tensor) -> None:
        """Add the returns of the slots that finished (`done` [N]) by task (-1: mixed)."""
        slot = torch.where(task < 0, self.returns.shape[0] - 1, task)
        self.returns.index_add_(0, slot, ep_return * done)
        self.counts.index_add_(0, slot, done.to(ep_return.dtype))

    def update(self, metrics: dict[str, Tensor]) -> None:
        """Add one update's diagnostics."""
        for key, value in metrics.items():
            if key in self.sums:
                self.sums[key] += value
            else:
                self.sums[key] = value.clone()
        self.num_updates += 1

    def close(self, step: int) -> tuple[dict[str, float | Tensor], float]:
        """The window's scalars by tag and its env-steps per second; then it starts afresh at
        `step`. This is where the host reads the device."""
        now = time.perf_counter()
        sps = (step - self.step) / max(now - self.time, 1e-9)
        counts, returns = self.counts.tolist(), self.returns.tolist()
        scalars: dict[str, float | Tensor] = {}
        if sum(counts) > 0:
            scalars[EPISODIC_RETURN] = sum(returns) / sum(counts)
        for name, c, r in zip(self.head_names + ["mixed"], counts, returns, strict=True):
            if c > 0:
                scalars[f"tasks/{name}/episodic_return"] = r / c
        for key, total in self.sums.items():
            mean = total / self.num_updates
            if mean.dim() == 0:
                scalars[f"losses/{key}" if key.endswith("_loss") else f"policy/{key}"] = mean
            else:
                for name, value in zip(self.head_names, mean, strict=True):
                    scalars[f"heads/{name}/{key}"] = value
        self.returns.zero_()
        self.counts.zero_()
        self.sums.clear()
        self.num_updates, self.step, self.time = 0, step, now
        return scalars, sps
