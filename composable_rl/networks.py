"""Shared encoder + one fused output layer for every head (DESIGN.md §4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp_encoder(in_features: int, hidden: Sequence[int]) -> nn.Sequential:
    """Flatten then Linear+ReLU layers: fast on CPU for small grids."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    return nn.Sequential(*layers)


def cnn_encoder(
    obs_shape: Sequence[int], hidden: Sequence[int], channels: int = 32
) -> nn.Sequential:
    """Two 3x3 convolutions (same padding) followed by the MLP layers."""
    c, h, w = obs_shape
    convs = nn.Sequential(
        nn.Conv2d(c, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
    )
    return nn.Sequential(convs, mlp_encoder(channels * h * w, hidden))


class MultiHeadQNetwork(nn.Module):
    """Q(s) for K heads in one forward pass: [B, K, A], or [B, K, G, A] with world-value heads.

    Observations may be uint8 (one-hot planes); they are cast to float inside the network so the
    replay can store them compactly.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_heads: int,
        num_actions: int,
        num_goals: int = 0,
        encoder: str = "mlp",
        hidden: Sequence[int] = (256, 256),
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("hidden must name at least one layer width")
        if encoder == "mlp":
            self.encoder = mlp_encoder(int(torch.tensor(obs_shape).prod()), hidden)
        elif encoder == "cnn":
            if len(obs_shape) != 3:
                raise ValueError(
                    f"cnn encoder needs (C, H, W) observations, got {tuple(obs_shape)}"
                )
            self.encoder = cnn_encoder(obs_shape, hidden)
        else:
            raise ValueError(f"unknown encoder {encoder!r}; expected 'mlp' or 'cnn'")
        self.out_shape = (
            (num_heads, num_goals, num_actions) if num_goals else (num_heads, num_actions)
        )
        self.head = nn.Linear(hidden[-1], int(torch.tensor(self.out_shape).prod()))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q values of every head (and goal) for a batch of observations."""
        features = self.encoder(obs.float())
        return self.head(features).view(obs.shape[0], *self.out_shape)
