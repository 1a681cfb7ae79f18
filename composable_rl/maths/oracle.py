"""Exact oracles on tabular models: soft value iteration, world values, finite-horizon returns
and product breadth-first search, as pure tensor functions of a `TabularMDP`."""

import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from composable_rl.maths.functional import extended_reward, soft_value


@dataclass
class TabularMDP:
    """Deterministic MDPs over agent cells for L layouts (S = H*W states, A actions, K heads).

    Invalid states (walls; object cells in ObjectRooms) self-loop with zero reward and never
    terminate.
    """

    next_state: Tensor  # [L, S, A] long
    reward: Tensor  # [L, S, A, K] float64
    terminal: Tensor  # [L, S, A] bool
    goal: Tensor  # [L, S, A] long, -1 when no object is collected
    valid: Tensor  # [L, S] bool, cells the agent may stand on


def backup(mdp: TabularMDP, reward: Tensor, value: Tensor, gamma: float = 1.0) -> Tensor:
    """Q [L, S, A] = reward + gamma * V(next state), with no bootstrap on terminal transitions."""
    layouts = value.shape[0]
    v_next = value.gather(1, mdp.next_state.reshape(layouts, -1)).view_as(mdp.next_state)
    return reward + gamma * torch.where(mdp.terminal, 0.0, v_next)


def soft_value_iteration(
    mdp: TabularMDP,
    reward: Tensor,
    gamma: float,
    alpha: float,
    tol: float = 1e-10,
    max_iters: int = 10_000,
    allowed: Tensor | None = None,
) -> Tensor:
    """Soft-optimal Q [L, S, A] float64 for a scalar reward [L, S, A] (alpha == 0: hard max).

    `allowed` [L, S, A] bool restricts the agent to those actions (a shield): the others get
    Q = -inf, and every valid state needs one allowed action.
    """
    reward = reward.double()
    q = torch.zeros_like(reward)
    if allowed is not None and not allowed.any(-1)[mdp.valid].all():
        raise ValueError("every valid state needs at least one allowed action")
    for _ in range(max_iters):
        q_new = backup(mdp, reward, soft_value(q, alpha), gamma)
        q_new = torch.where(mdp.valid[..., None], q_new, 0.0)
        if allowed is not None:
            q_new = q_new.masked_fill(~allowed, -torch.inf)
            delta = torch.where(allowed, q_new - q, 0.0).abs().max()
        else:
            delta = (q_new - q).abs().max()
        q = q_new
        if delta <= tol:
            return q
    warnings.warn(
        f"soft value iteration did not reach tol={tol} in {max_iters} iterations",
        RuntimeWarning,
        stacklevel=2,
    )
    return q


def finite_horizon_return(
    mdp: TabularMDP,
    reward: Tensor,
    horizon: int,
    policy: Literal["optimal", "random"] | Tensor = "optimal",
) -> Tensor:
    """Exact undiscounted expected return [L, S] of episodes of at most `horizon` steps.

    policy "optimal" is the best non-stationary policy (max over actions), "random" the uniform
    one (mean over actions), and a tensor [L, S, A] of action probabilities a stationary one;
    truncation at the horizon adds nothing further.
    """
    if not isinstance(policy, Tensor) and policy not in ("optimal", "random"):
        raise ValueError(f"policy must be 'optimal', 'random' or a tensor, got {policy!r}")
    reward = reward.double()
    value = torch.zeros(mdp.valid.shape, dtype=torch.float64, device=reward.device)
    for _ in range(horizon):
        q = backup(mdp, reward, value)
        if isinstance(policy, Tensor):
            value = (q * policy).sum(-1)
        else:
            value = q.amax(-1) if policy == "optimal" else q.mean(-1)
    return value


def discounted_optimal_policy(
    mdp: TabularMDP, reward: Tensor, gamma: float, tie: float = 1e-9
) -> Tensor:
    """Action probabilities [L, S, A] of the optimal stationary policy of the gamma-discounted
    reward, uniform over the actions within `tie` of the best (value iteration converges to
    1e-10, so exact ties arrive as near ties). Its finite-horizon return is what an agent that
    learns the discounted values exactly would score, below the finite-horizon optimum when
    timing matters."""
    q = soft_value_iteration(mdp, reward, gamma, 0.0)
    best = (q >= q.amax(-1, keepdim=True) - tie).to(q.dtype)
    return best / best.sum(-1, keepdim=True)


def task_reward(mdp: TabularMDP, goal_rewards: Tensor, step_reward: float) -> Tensor:
    """Reward [L, S, A] float64 of goal_rewards[g] on reaching goal g, step_reward otherwise.

    Invalid states get 0, as in `tabulate`, so any goal-reaching task can be solved exactly.
    """
    goal_rewards = goal_rewards.to(device=mdp.goal.device, dtype=torch.float64)
    if int(mdp.goal.max()) >= goal_rewards.shape[0]:
        raise ValueError(f"the MDP has goal {int(mdp.goal.max())}, beyond goal_rewards")
    reward = torch.where(mdp.goal >= 0, goal_rewards[mdp.goal.clamp(min=0)], step_reward)
    return torch.where(mdp.valid[..., None], reward, 0.0)


def world_value_iteration(
    mdp: TabularMDP,
    reward: Tensor,
    num_goals: int,
    penalty: float,
    gamma: float,
    alpha: float,
    tol: float = 1e-10,
    max_iters: int = 10_000,
) -> Tensor:
    """World values Q [L, S, G, A] float64 of a reward [L, S, A] (Nangue Tasse et al. 2020).

    Q[:, :, g] solves the same MDP except that terminating at any goal other than g pays
    `penalty`; the G goal-conditioned problems run as extra layouts of one soft value iteration.
    """
    if num_goals < 1 or int(mdp.goal.max()) >= num_goals:
        raise ValueError(f"num_goals={num_goals} must be positive and cover every goal index")
    # The learner's own extended reward, on every (layout, state, action) as one batch.
    flat = extended_reward(reward.double().reshape(-1, 1), mdp.goal.reshape(-1), num_goals, penalty)
    extended = flat.view(*reward.shape, num_goals).permute(0, 3, 1, 2)  # [L, G, S, A]
    tiled = TabularMDP(**{k: v.repeat_interleave(num_goals, 0) for k, v in vars(mdp).items()})
    q = soft_value_iteration(tiled, extended.flatten(0, 1), gamma, alpha, tol, max_iters)
    return q.view(extended.shape).transpose(1, 2).contiguous()


def product_steps(
    next_cell: Tensor, cell_label: Tensor, machine_next: Tensor, accepting: Tensor
) -> Tensor:
    """Fewest steps [S, U] from (cell, machine state) to an accepting machine state.

    next_cell [S, A] is the world's deterministic move, cell_label [S] the label index the agent
    sees on entering a cell, machine_next [U, L] the machine's transition per label and
    accepting [U] bool. Breadth-first search over the product, run backwards from the accepting
    states as synchronous unit-cost relaxation; -1 where acceptance is unreachable (e.g. after
    a violated constraint).
    """
    cells, states = next_cell.shape[0], machine_next.shape[0]
    unreachable = cells * states + 1
    steps = torch.where(accepting, 0, unreachable).expand(cells, states).clone()
    # successor (cell', state') of every (cell, state, action), flat: cell' * U + state'
    state_after = machine_next[:, cell_label[next_cell]]  # [U, S, A]
    successor = next_cell[None] * states + state_after  # [U, S, A]
    for _ in range(cells * states):
        best = steps.flatten()[successor].amin(-1).T + 1  # [S, U]
        relaxed = torch.where(accepting, 0, torch.minimum(steps, best))
        if torch.equal(relaxed, steps):
            break
        steps = relaxed
    return torch.where(steps >= unreachable, -1, steps)
