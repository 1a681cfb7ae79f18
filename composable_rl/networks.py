"""Shared encoder + one fused output layer for every head."""

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


class _RowSum(torch.autograd.Function):
    """Sum of weight rows [B, J] -> [B, out]; backward scatters with index_add_, which on CPU
    is several times faster than embedding_bag's own sort-based backward."""

    @staticmethod
    def forward(ctx, indices: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(indices)
        ctx.rows = weight.shape[0]
        return nn.functional.embedding_bag(indices, weight, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (indices,) = ctx.saved_tensors
        per_index = grad[:, None].expand(-1, indices.shape[1], -1).reshape(-1, grad.shape[1])
        weight_grad = grad.new_zeros(ctx.rows, grad.shape[1])
        return None, weight_grad.index_add_(0, indices.flatten(), per_index)


class SparseLinear(nn.Module):
    """A Linear layer over a multi-hot input given as the indices of its ones: [B, F] -> [B, out].

    Equals `nn.Linear(num_features, out)` applied to the dense 0/1 vector, at the cost of F
    weight rows summed instead of a num_features-wide matrix product.
    """

    def __init__(self, num_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / num_features**0.5
        self.weight = nn.Parameter(torch.empty(num_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        # the rows of each bag are summed without materialising them all: [B, F] -> [B, out]
        summed = _RowSum.apply(indices.reshape(-1, indices.shape[-1]), self.weight)
        return summed.view(*indices.shape[:-1], -1) + self.bias


def sparse_mlp_encoder(num_features: int, hidden: Sequence[int]) -> nn.Sequential:
    """The MLP encoder for index observations: sparse first layer, then Linear+ReLU layers."""
    return nn.Sequential(
        SparseLinear(num_features, hidden[0]), nn.ReLU(), mlp_encoder(hidden[0], hidden[1:])
    )


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


class GoalConditionedEncoder(nn.Module):
    """One feature vector per goal from index observations: [B, F] -> [B, G, hidden[-1]].

    Goal g's own columns of the observation (`goal_slots[g]`, e.g. where object g is) pass
    through a second sparse layer that marks them as the target; the rest of the MLP is shared
    by every goal, as in a universal value function approximator (Schaul et al. 2015). What is
    learned about reaching one object then transfers to the others and to unseen layouts.
    """

    def __init__(self, num_features: int, goal_slots: torch.Tensor, hidden: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("goal_slots", goal_slots.long(), persistent=False)
        self.shared = SparseLinear(num_features, hidden[0])
        self.target = SparseLinear(num_features, hidden[0])
        self.rest = mlp_encoder(hidden[0], hidden[1:])

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        marked = self.target(indices[:, self.goal_slots])  # [B, G, hidden[0]]
        first = torch.relu(self.shared(indices)[:, None] + marked)
        return self.rest(first.flatten(0, 1)).view(*first.shape[:2], -1)


def require_layers(hidden: Sequence[int]) -> None:
    """Refuse an encoder without hidden layers (its width is what the heads read)."""
    if not hidden:
        raise ValueError("hidden must name at least one layer width")


def build_encoder(
    obs_shape: Sequence[int], encoder: str, hidden: Sequence[int], sparse_features: int = 0
) -> nn.Module:
    """The observation encoder [B, ...] -> [B, hidden[-1]]: a sparse MLP for index observations
    (`sparse_features` wide), else an MLP or a CNN."""
    require_layers(hidden)
    if sparse_features > 0:
        if encoder != "mlp":
            raise ValueError(f"index observations need the 'mlp' encoder, got {encoder!r}")
        return sparse_mlp_encoder(sparse_features, hidden)
    if encoder == "mlp":
        return mlp_encoder(int(torch.tensor(obs_shape).prod()), hidden)
    if encoder == "cnn":
        if len(obs_shape) != 3:
            raise ValueError(f"cnn encoder needs (C, H, W) observations, got {tuple(obs_shape)}")
        return cnn_encoder(obs_shape, hidden)
    raise ValueError(f"unknown encoder {encoder!r}; expected 'mlp' or 'cnn'")


class MultiHeadQNetwork(nn.Module):
    """Q(s) for K heads in one forward pass: [B, K, A], or [B, K, G, A] with world-value heads.

    Observations may be uint8 (one-hot planes); they are cast to float inside the network so the
    replay can store them compactly. With `sparse_features > 0` they are instead the indices of the
    ones of a multi-hot vector of that width, and the MLP's first layer is computed sparsely.
    `goal_slots` [G, J] (index observations with goals only) makes the network goal-conditioned:
    the world values of goal g come from a `GoalConditionedEncoder` feature with one output
    layer shared by all goals.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_heads: int,
        num_actions: int,
        num_goals: int = 0,
        encoder: str = "mlp",
        hidden: Sequence[int] = (256, 256),
        sparse_features: int = 0,
        goal_slots: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.sparse = sparse_features > 0
        self.goal_conditioned = goal_slots is not None
        if self.goal_conditioned and (not self.sparse or goal_slots.shape[0] != num_goals):
            raise ValueError("goal_slots needs index observations and one row per goal")
        if self.goal_conditioned:
            require_layers(hidden)
            self.encoder = GoalConditionedEncoder(sparse_features, goal_slots, hidden)
        else:
            self.encoder = build_encoder(obs_shape, encoder, hidden, sparse_features)
        self.out_shape = (
            (num_heads, num_goals, num_actions) if num_goals else (num_heads, num_actions)
        )
        # a goal-conditioned feature is already per goal: its output layer covers K * A only
        outputs = self.out_shape[::2] if self.goal_conditioned else self.out_shape
        self.head = nn.Linear(hidden[-1], int(torch.tensor(outputs).prod()))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q values of every head (and goal) for a batch of observations."""
        features = self.encoder(obs if self.sparse else obs.float())
        if self.goal_conditioned:  # [B, G, K * A] -> [B, K, G, A]
            k, g, a = self.out_shape
            return self.head(features).view(obs.shape[0], g, k, a).transpose(1, 2)
        return self.head(features).view(obs.shape[0], *self.out_shape)


class ConditionedHeadsNetwork(nn.Module):
    """Successor features psi(s, a; z) of F outputs per action for any weight vectors z over the
    K base rewards: [B, M, K] weights -> [B, M, F, A] (M candidate weights per observation).

    The observation is encoded once; each z enters through a layer that mixes it with the
    encoding, then one more hidden layer (a universal successor-feature approximator, Borsa et
    al. 2019), so M candidates cost M passes of two small layers, not M encoders. z is fed by
    its direction only: the policy for z is that for c * z with c > 0 up to the entropy
    temperature, and a unit input keeps the layer's scale fixed.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_weights: int,
        num_features: int,
        num_actions: int,
        encoder: str = "mlp",
        hidden: Sequence[int] = (256, 256),
        sparse_features: int = 0,
    ) -> None:
        super().__init__()
        self.sparse = sparse_features > 0
        self.encoder = build_encoder(obs_shape, encoder, hidden, sparse_features)
        width = hidden[-1]
        self.mix_obs = nn.Linear(width, width)
        self.mix_weights = nn.Linear(num_weights, width, bias=False)
        self.trunk = mlp_encoder(width, [width])
        self.out_shape = (num_features, num_actions)
        self.head = nn.Linear(width, num_features * num_actions)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """The shared encoding [B, hidden[-1]] of a batch of observations."""
        return self.encoder(obs if self.sparse else obs.float())

    def heads(self, encoding: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Outputs [B, M, F, A] for encodings [B, H] and weights [B, M, K]."""
        direction = weights / weights.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        mixed = torch.relu(self.mix_obs(encoding)[:, None] + self.mix_weights(direction))
        return self.head(self.trunk(mixed.flatten(0, 1))).view(*weights.shape[:2], *self.out_shape)

    def forward(self, obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Outputs [B, F, A] for one weight vector per observation (weights [B, K])."""
        return self.heads(self.encode(obs), weights[:, None])[:, 0]
