"""Skill machines (Nangue Tasse et al. 2024): reward-machine states run Boolean compositions.

In each machine state, value iteration over the machine alone picks the best outgoing edge; its
formula, conjoined with the negation of the edges into rejecting states (the constraints, e.g.
`~n`), is a Boolean expression over proposition heads, evaluated by `expressions` on world
values Q[B, G, A]. The machine advances on observed labels and the composition switches with it.

Picking edges on the machine alone ignores where in the world each edge can be taken (coffee
near the office beats coffee near the agent). `continuation_targets` fixes that with the same
world values: in a deterministic world with step reward c, a world value to goal g satisfies
Q(s, g, a) - b = gamma^(d - 1) (R(g) - b), b = c / (1 - gamma), where R(g) is the composed
task's reward at g and d the steps to g. Replacing R(g) by the value of going on from g in the
next machine state (found by value iteration over (machine state, goal) pairs) turns the
composition into an optimal policy for the whole temporal task when the world values are exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from composable_rl.languages import expressions
from composable_rl.languages.reward_machine import TRUE, RewardMachine


def machine_values(machine: RewardMachine, gamma: float, tol: float = 1e-12) -> Tensor:
    """V [U] of the machine as an MDP whose actions are its edges (staying pays nothing)."""
    value = torch.zeros(len(machine.states), dtype=torch.float64)
    for _ in range(10 * len(machine.states) + 1000):
        new = torch.zeros_like(value)
        for edge in machine.edges:
            if edge.target != edge.source:
                q = edge.reward + gamma * value[edge.target]
                new[edge.source] = torch.maximum(new[edge.source], q)
        if (new - value).abs().max() <= tol:
            return new
        value = new
    return value


def skill_expression(machine: RewardMachine, state: int, gamma: float) -> str | None:
    """The Boolean task run in `state`: best edges (ties joined by |) & ~(constraint edges).

    None where there is nothing to do (accepting or rejecting states, or no way out). An edge
    formula `true` becomes the bound head MAX (every goal satisfies it).
    """
    rejecting = machine.rejecting
    if state in machine.accepting or state in rejecting:
        return None
    value = machine_values(machine, gamma)
    out = [e for e in machine.edges if e.source == state and e.target != state]
    useful = [e for e in out if e.target not in rejecting]
    if not useful:
        return None
    worth = [e.reward + gamma * float(value[e.target]) for e in useful]
    best = max(worth)
    chosen = [e for e, w in zip(useful, worth, strict=True) if w >= best - 1e-9]

    def term(formula: str) -> str:
        return "MAX" if formula.strip() == TRUE else f"({formula})"

    goal = expressions.parse(" | ".join(dict.fromkeys(term(e.formula) for e in chosen)))
    avoid = [term(e.formula) for e in out if e.target in rejecting]
    if not avoid:
        return expressions.to_string(goal)
    constraint = expressions.parse(f"~({' | '.join(dict.fromkeys(avoid))})")
    if constraint in _conjuncts(goal):  # e.g. the edge `f & !n` already avoids n
        return expressions.to_string(goal)
    return expressions.to_string(expressions.Binary("&", goal, constraint))


def _conjuncts(expr: expressions.Expr) -> list[expressions.Expr]:
    """The operands of a chain of `&` (the expression itself if it is no conjunction)."""
    if isinstance(expr, expressions.Binary) and expr.op == "&":
        return _conjuncts(expr.left) + _conjuncts(expr.right)
    return [expr]


def planned_values(
    values: Tensor, terminal: Tensor, target: Tensor, step_reward: float, gamma: float
) -> Tensor:
    """World values [..., G, A] whose terminal rewards [..., G] are replaced by `target`.

    Goals whose target is -inf (they lead to a violation) get -inf everywhere.
    """
    base = step_reward / (1.0 - gamma)
    reach = ((values - base) / (terminal - base).unsqueeze(-1)).clamp(min=0.0)
    allowed = torch.isfinite(target)
    gain = torch.where(allowed, target - base, 0.0).unsqueeze(-1)
    return torch.where(allowed.unsqueeze(-1), base + reach * gain, -torch.inf)


def continuation_targets(
    goal_values: Tensor,
    terminal: Tensor,
    goal_next: Tensor,
    accepting: Tensor,
    rejecting: Tensor,
    step_reward: float,
    gamma: float,
    r_max: float,
) -> Tensor:
    """Value [U, G] of reaching goal g in machine state u, counting what follows.

    goal_values [U, G, G', A]: the composition of state u evaluated with the agent standing on
    goal cell g; terminal [U, G']: that composition's reward at g'; goal_next [U, G']: the
    machine state after reaching g' from u. Reaching an accepting state pays r_max, a rejecting
    one is forbidden (-inf), any other goal is worth c + gamma * V(next state, g'). Value
    iteration over the U * G pairs; optimal plans visit each pair at most once, so U * G + 1
    sweeps suffice.
    """
    states, goals = terminal.shape
    base = step_reward / (1.0 - gamma)
    value = torch.full((states, goals), base, dtype=goal_values.dtype)
    finish, forbid = accepting[goal_next], rejecting[goal_next]
    target = value
    for _ in range(states * goals + 1):
        going_on = step_reward + gamma * value[goal_next, torch.arange(goals)]
        target = torch.where(finish, r_max, going_on).masked_fill(forbid, -torch.inf)
        planned = planned_values(
            goal_values, terminal[:, None, :], target[:, None, :], step_reward, gamma
        )
        new = planned.amax((-2, -1))
        if torch.equal(new, value):
            break
        value = new
    return target
