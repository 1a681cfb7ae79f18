"""Pure tensor functions of entropy-regularised (soft) Q-learning.

Names follow rlax: `q_tm1` are the values at the transition's first state, `a_tm1` the action taken
there, `r_t` and `discount_t` what the step returned and `q_t` the values at the next state. Every
function here is stateless, so tests can check it against hand-computed numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def soft_value(q: torch.Tensor, alpha: float, dim: int = -1) -> torch.Tensor:
    """V = alpha * logsumexp(Q / alpha) over actions; alpha = 0 gives the hard max."""
    if alpha == 0:
        return q.amax(dim=dim)
    return alpha * torch.logsumexp(q / alpha, dim=dim)


def boltzmann_probs(q: torch.Tensor, alpha: float, dim: int = -1) -> torch.Tensor:
    """pi(a|s) proportional to exp(Q/alpha); alpha = 0 puts uniform mass on the argmax set."""
    if alpha == 0:
        best = q == q.amax(dim=dim, keepdim=True)
        return best.to(q.dtype) / best.sum(dim=dim, keepdim=True)
    return torch.softmax(q / alpha, dim=dim)


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log softmax(x) over `dim`, by hand: on CPU about twice as fast as torch.log_softmax over
    the handful of actions of a gridworld (its kernel vectorises along the reduced axis)."""
    z = x - x.amax(dim=dim, keepdim=True)
    return z - z.exp().sum(dim=dim, keepdim=True).log()


def policy_entropy(q: torch.Tensor, alpha: float, dim: int = -1) -> torch.Tensor:
    """Entropy (nats) of the Boltzmann policy over the last axis."""
    if alpha == 0:
        p = boltzmann_probs(q, 0.0, dim)
        return -(p * p.clamp_min(1e-30).log()).sum(dim)
    logp = log_softmax(q / alpha, dim=dim)
    return -(logp.exp() * logp).sum(dim)


def boltzmann_sample(
    q: torch.Tensor, alpha: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Samples a ~ softmax(Q/alpha) over the last axis by the Gumbel-max trick (no host sync)."""
    if alpha == 0:
        return q.argmax(dim=-1)
    u = torch.rand(q.shape, generator=generator, device=q.device, dtype=q.dtype)
    gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
    return (q / alpha + gumbel).argmax(dim=-1)


def soft_value_under(q_eval: torch.Tensor, q_select: torch.Tensor, alpha: float) -> torch.Tensor:
    """E_{a~pi_select}[Q_eval(a) - alpha log pi_select(a)]: the double-Q soft state value.

    With `q_select is q_eval` this equals `soft_value(q_eval, alpha)` exactly; using the online
    network's policy to weigh the target network's values decouples selection from evaluation.
    """
    if alpha == 0:
        return q_eval.gather(-1, q_select.argmax(-1, keepdim=True)).squeeze(-1)
    logp = log_softmax(q_select / alpha)
    return (logp.exp() * (q_eval - alpha * logp)).sum(-1)


def soft_q_target(r_t: torch.Tensor, discount_t: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
    """y = r_t + discount_t * V(s_t); `discount_t` is 0 where the episode terminated.

    `r_t` and `v_t` are [B, K, ...] (one column per head); `discount_t` is [B], or [B, K] for a
    discount per head, and broadcasts.
    """
    discount = discount_t.reshape(discount_t.shape + (1,) * (v_t.dim() - discount_t.dim()))
    return r_t + discount * v_t


def soft_q_learning(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    alpha: float,
    q_t_selector: torch.Tensor | None = None,
) -> torch.Tensor:
    """Soft TD errors y - Q(s_tm1, a_tm1) for every head: q [B, K, A], r_t [B, K] -> [B, K].

    Extra leading head axes are allowed ([B, K, G, A] with r_t [B, K, G] for world-value heads).
    The target is computed without gradient. `q_t_selector` (online values at s_t) turns on the
    double-Q target.
    """
    with torch.no_grad():
        selector = q_t if q_t_selector is None else q_t_selector
        target = soft_q_target(r_t, discount_t, soft_value_under(q_t, selector, alpha))
    return target - select_action(q_tm1, a_tm1)


def select_action(q: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Q(s, a) for every head: q [B, ..., A] and actions [B] -> [B, ...]."""
    index = a.reshape(a.shape + (1,) * (q.dim() - 1)).expand(q.shape[:-1] + (1,))
    return q.gather(-1, index).squeeze(-1)


def td_loss(td: torch.Tensor, kind: str = "huber") -> torch.Tensor:
    """Scalar loss from TD errors [B, K, ...]: mean over the batch, summed over the heads.

    Summing over heads keeps each head's gradient independent of how many heads share the net.
    """
    if kind == "huber":
        per = F.huber_loss(td, torch.zeros_like(td), reduction="none", delta=1.0)
    elif kind == "mse":
        per = 0.5 * td.square()
    else:
        raise ValueError(f"unknown loss {kind!r}; expected 'huber' or 'mse'")
    return per.mean(0).sum()


def bootstrap_mask(index: torch.Tensor, members: int, p: float) -> torch.Tensor:
    """Which of `members` ensemble members learn from replay slots `index` [B]: [B, E] bool,
    each true with chance `p`, fixed per (slot, member) by an integer hash, so that a member
    keeps its own part of the data however often a slot is sampled (a bootstrap without a
    stored mask)."""
    x = index[:, None] * members + torch.arange(members, device=index.device)
    for _ in range(2):  # a 32-bit integer mix: neighbouring slots get unrelated bits
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    x = x ^ (x >> 16)
    return (x & 0xFFFFFF).to(torch.float32) < p * float(1 << 24)


def compose_linear(q: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Q_w = sum_k w_k Q_k: q [B, K, ..., A], weights [K] or [B, K] -> [B, ..., A]."""
    w = weights if weights.dim() == 2 else weights.expand(q.shape[0], -1)
    w = w.reshape(w.shape + (1,) * (q.dim() - 2))
    return (q * w).sum(1)


def extended_reward(
    r_t: torch.Tensor, goal_t: torch.Tensor, num_goals: int, penalty: float
) -> torch.Tensor:
    """World-value rewards [B, K, G]: r_t, except `penalty` where the step ended at another goal.

    `goal_t` [B] is the goal the transition terminated at (-1: none). Column g is the reward of
    "reach g": terminating at any goal g' != g is penalised, so Q[..., g, :] learns to reach g
    (Nangue Tasse, James & Rosman 2020).
    """
    goals = torch.arange(num_goals, device=goal_t.device)
    elsewhere = (goal_t[:, None] >= 0) & (goal_t[:, None] != goals)
    return torch.where(elsewhere[:, None, :], penalty, r_t[:, :, None].expand(-1, -1, num_goals))


def wrong_goal_penalty(r_min: float, r_max: float, step_reward: float, horizon: float) -> float:
    """Default extended reward for ending at a goal other than g (tasks share the step reward).

    In deterministic worlds the Boolean algebra is exact for any penalty <= r_min (per goal, a
    task's world value is a task-independent monotone function of that goal's reward), and
    argmax_a max_g then acts optimally. This default sits a margin below the worst value of
    reaching a goal, r_min + step_reward * horizon, so that column g really learns "reach g";
    the general bound r_min - (r_max - r_min) * D lies tens of units lower and slows learning.
    """
    return r_min + min(step_reward, 0.0) * horizon - (r_max - r_min)


def successor_q(psi: torch.Tensor, weights: torch.Tensor, alpha: float) -> torch.Tensor:
    """Soft Q of the weighted reward from successor features: w . psi[:K] + alpha * psi[K].

    psi [..., K + 1, A] holds the K base-reward features and, last, the discounted future
    entropy of the policy they belong to; weights [..., K] broadcast -> [..., A].
    """
    return (psi[..., :-1, :] * weights[..., :, None]).sum(-2) + alpha * psi[..., -1, :]


def successor_td(
    psi_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    psi_t: torch.Tensor,
    q_t_selector: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """TD errors [B, K + 1] of successor features under the policy softmax(q_t_selector / alpha).

    psi [B, K + 1, A], r_t [B, K]. The base features bootstrap as psi <- r + discount * E_pi[psi'];
    the entropy feature as eta <- discount * (H(pi(s_t)) + E_pi[eta']), so that
    w . psi + alpha * eta is the soft Q of reward w . r under pi (alpha = 0: greedy pi, no entropy).
    """
    with torch.no_grad():
        probs = boltzmann_probs(q_t_selector, alpha)
        expected = (psi_t * probs[:, None, :]).sum(-1)  # [B, K + 1]
        if alpha > 0:
            expected[:, -1] += policy_entropy(q_t_selector, alpha)
        reward = torch.cat([r_t, torch.zeros_like(r_t[:, :1])], 1)
        target = reward + discount_t[:, None] * expected
    return target - select_action(psi_tm1, a_tm1)


def gpi_features(psi: torch.Tensor, q_select: torch.Tensor) -> torch.Tensor:
    """Generalised policy improvement over M candidates: for every action, the features of the
    candidate whose value `q_select` [B, M, A] is highest there; psi [B, M, F, A] -> [B, F, A]."""
    best = q_select.argmax(1)  # [B, A]
    index = best[:, None, None, :].expand(-1, 1, psi.shape[2], -1)
    return psi.gather(1, index).squeeze(1)


HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def tanh_log_det(z: torch.Tensor) -> torch.Tensor:
    """log(1 - tanh(z)^2), the log-Jacobian of tanh, computed stably for large |z|."""
    return 2 * (math.log(2) - z - F.softplus(-2 * z))


def tanh_gaussian_sample(
    mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points u = tanh(mean + exp(log_std) * noise) of (-1, 1)^D and their log density under the
    tanh-squashed Gaussian: [..., D] -> ([..., D], [...]). `noise` is standard normal."""
    z = mean + log_std.exp() * noise
    log_prob = (-0.5 * noise.square() - log_std - HALF_LOG_TWO_PI - tanh_log_det(z)).sum(-1)
    return torch.tanh(z), log_prob


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Log density [...] of points z [..., D] under the diagonal Gaussian N(mean, exp(log_std)^2).
    A point u = tanh(z) of a squashed Gaussian has the density of z minus tanh_log_det(z): kept
    in z, it stays exact where tanh saturates and atanh(u) would not recover z."""
    noise = (z - mean) * torch.exp(-log_std)
    return (-0.5 * noise.square() - log_std - HALF_LOG_TWO_PI).sum(-1)


def importance_choice(
    scores: torch.Tensor,
    log_proposal: torch.Tensor,
    alpha: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Index [N] of one of C candidates [N, C], drawn by self-normalised importance sampling of
    the density exp(score / alpha) from candidates that were drawn from a proposal of log density
    `log_proposal` [N, C]: candidate j with probability proportional to
    exp(score_j / alpha - log_proposal_j). `alpha` is a float or one per row [N]; alpha = 0
    (a float) takes the best score."""
    if isinstance(alpha, float) and alpha == 0:
        return scores.argmax(-1)
    temperature = alpha if isinstance(alpha, float) else alpha[:, None]
    return boltzmann_sample(scores / temperature - log_proposal, 1.0, generator)


def gaussian_product(
    mean: torch.Tensor, log_std: torch.Tensor, exponents: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The diagonal Gaussian proportional to prod_k N(mean_k, std_k^2)^e_k (a product of
    experts): mean [..., K, D], log_std [..., K, D], exponents e [..., K] >= 0, not all zero ->
    mean and log_std [..., D]. Precisions add, weighted by e; so do precision-weighted means.
    When every expert is the Boltzmann density of a quadratic Q_k at one temperature alpha, the
    product with e = w is exactly the density of sum_k w_k Q_k at alpha."""
    precision = exponents[..., None] * torch.exp(-2 * log_std)
    total = precision.sum(-2)
    return (precision * mean).sum(-2) / total, -0.5 * torch.log(total)
