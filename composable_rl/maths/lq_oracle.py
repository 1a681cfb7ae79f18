"""Exact oracles of linear dynamics with quadratic rewards, under entropy regularisation.

The state is augmented with a constant 1, z = [x, 1], so that a reward with a target,
r = -(x - c)^T Q (x - c) - u^T R u, is the quadratic form -z^T M z - u^T R u, and the dynamics
x' = A x + B u become z' = F z + G u. For any reward of that form with R positive definite, the
soft (maximum-entropy, temperature alpha) optimum with discount gamma is exact:

    V(z) = -z^T P z + v0,   Q(z, u) = r(z, u) + gamma V(F z + G u)
         = Q(z, u*) - (u - u*)^T H (u - u*),   u* = -H^-1 L z,
    H = R + gamma G^T P G,  L = gamma G^T P F,  P = M + gamma F^T P F - L^T H^-1 L,
    pi(u | z) = N(u*, alpha / 2 H^-1),  v0 = alpha / 2 log det(pi alpha H^-1) / (1 - gamma).

Its mean u* is the optimal policy of the reward alone (the entropy adds constants only). A
positive weighted sum of such rewards is again of that form, which makes the optimum of every
composed task exact too. The value of any linear-Gaussian policy follows from a Lyapunov
equation. Everything is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

ITERATIONS = 10_000
TOLERANCE = 1e-12


@dataclass(frozen=True)
class SoftLQ:
    """The soft optimum of one reward: value matrix P [Z, Z] and constant v0, the quadratic
    coefficients H [D, D] and L [D, Z] of its Q in u, and the reward (M, R) it solves."""

    P: Tensor
    v0: float
    H: Tensor
    L: Tensor
    M: Tensor
    R: Tensor

    @property
    def gain(self) -> Tensor:
        """K [D, Z] of the optimal mean action u* = K z."""
        return -torch.linalg.solve(self.H, self.L)


def augment(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """F [n + 1, n + 1] and G [n + 1, d] of the dynamics on z = [x, 1]."""
    n, d = B.shape
    F = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    F[:n, :n], F[n, n] = A.double(), 1.0
    G = torch.zeros(n + 1, d, dtype=torch.float64)
    G[:n] = B.double()
    return F, G


def target_cost(Q: Tensor, target: Tensor) -> Tensor:
    """M [n + 1, n + 1] with z^T M z = (x - target)^T Q (x - target)."""
    n = Q.shape[0]
    Q, c = Q.double(), target.double()
    M = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    M[:n, :n] = Q
    M[:n, n] = M[n, :n] = -Q @ c
    M[n, n] = c @ Q @ c
    return M


def solve(F: Tensor, G: Tensor, M: Tensor, R: Tensor, gamma: float, alpha: float) -> SoftLQ:
    """The soft optimum of reward -z^T M z - u^T R u (R positive definite) by iterating the
    discounted Riccati map to a fixed point; RuntimeError if it does not settle."""
    P = M.clone()
    for _ in range(ITERATIONS):
        H = R + gamma * G.T @ P @ G
        L = gamma * G.T @ P @ F
        new = M + gamma * F.T @ P @ F - L.T @ torch.linalg.solve(H, L)
        new = (new + new.T) / 2
        if (new - P).abs().max() <= TOLERANCE * max(1.0, float(new.abs().max())):
            P = new
            break
        P = new
    else:
        raise RuntimeError("the discounted Riccati iteration did not converge")
    H = R + gamma * G.T @ P @ G
    L = gamma * G.T @ P @ F
    d = H.shape[0]
    log_det = d * math.log(math.pi * alpha) - float(torch.logdet(H)) if alpha > 0 else 0.0
    v0 = 0.5 * alpha * log_det / (1 - gamma)
    return SoftLQ(P, v0, H, L, M, R)


def augmented(x: Tensor) -> Tensor:
    """States [..., n] as z = [x, 1] [..., n + 1] (float64)."""
    x = x.double()
    return torch.cat([x, torch.ones(*x.shape[:-1], 1, dtype=torch.float64)], -1)


def quad(z: Tensor, M: Tensor) -> Tensor:
    """z^T M z for a batch of vectors [..., Z] -> [...]."""
    return torch.einsum("...i,ij,...j->...", z, M, z)


def reward(M: Tensor, R: Tensor, x: Tensor, u: Tensor) -> Tensor:
    """-z^T M z - u^T R u [...] for states [..., n] and actions [..., d]."""
    return -quad(augmented(x), M) - quad(u.double(), R)


def soft_q(sol: SoftLQ, F: Tensor, G: Tensor, gamma: float, x: Tensor, u: Tensor) -> Tensor:
    """The exact soft Q [...] of states [..., n] and actions [..., d]."""
    z_next = augmented(x) @ F.T + u.double() @ G.T
    return reward(sol.M, sol.R, x, u) + gamma * (-quad(z_next, sol.P) + sol.v0)


def soft_value(sol: SoftLQ, x: Tensor) -> Tensor:
    """The exact soft value V [...] of states [..., n]."""
    return -quad(augmented(x), sol.P) + sol.v0


def policy_value(
    F: Tensor,
    G: Tensor,
    M: Tensor,
    R: Tensor,
    gain: Tensor,
    noise: Tensor,
    gamma: float,
) -> tuple[Tensor, float]:
    """(S, s0) of the discounted value -z^T S z + s0 of reward -z^T M z - u^T R u (no entropy)
    under the policy u = gain z + e, e of zero mean and covariance `noise` [D, D]."""
    closed = F + G @ gain
    cost = M + gain.T @ R @ gain
    S = cost.clone()
    for _ in range(ITERATIONS):
        new = cost + gamma * closed.T @ S @ closed
        if (new - S).abs().max() <= TOLERANCE * max(1.0, float(new.abs().max())):
            S = new
            break
        S = new
    else:
        raise RuntimeError("the policy's discounted value does not converge (unstable policy?)")
    s0 = -float(torch.trace(R @ noise) + gamma * torch.trace(G.T @ S @ G @ noise)) / (1 - gamma)
    return S, s0


def composed_gain(sols: list[SoftLQ], weights: Tensor) -> Tensor:
    """K [D, Z] of the greedy policy on sum_k w_k Q_k of exact soft Q's: the maximiser of a
    positive weighted sum of concave quadratics in u."""
    w = weights.double()
    H = sum(wk * s.H for wk, s in zip(w, sols, strict=True))
    L = sum(wk * s.L for wk, s in zip(w, sols, strict=True))
    return -torch.linalg.solve(H, L)


def composed_boltzmann(
    sols: list[SoftLQ], weights: Tensor, x: Tensor, alpha: float
) -> tuple[Tensor, Tensor]:
    """Mean [..., d] and covariance [d, d] of the density proportional to
    exp(sum_k w_k Q_k(x, u) / alpha) over u, for positive weights."""
    w = weights.double()
    H = sum(wk * s.H for wk, s in zip(w, sols, strict=True))
    return augmented(x) @ composed_gain(sols, weights).T, 0.5 * alpha * torch.linalg.inv(H)
