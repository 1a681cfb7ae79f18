"""The component-action rule of Skill Machines (Nangue Tasse et al. 2024), a baseline for
Boolean composition with continuous actions: every literal (a head, or a negated head) acts for
itself with the actor of its best goal, and an OR (AND) takes the action of the child whose own
value is the highest (lowest). The composed values are never maximised over actions, which is
what `composition.composed_policy` does instead; the two sit side by side in zero_shot's table.
For temporal tasks the rule runs each machine state's expression (`rule_machine_policy`), as
the published skill machines do, beside the skill machine that acts on composed values.
"""

from __future__ import annotations

import torch
from torch import Tensor

from agents.heads import HeadsAgent
from agents.world_value_actor_critic import WorldValueActorCritic
from composable_rl.languages import expressions
from composable_rl.languages.reward_machine import RewardMachine
from composable_rl.languages.skill_machine import skill_expression
from composable_rl.world import Act


def rule_choice(
    expr: expressions.Expr, values: Tensor, head_names: list[str]
) -> tuple[Tensor, Tensor]:
    """The rule's (value [N], chosen actor [N]) for a Boolean expression over world values.

    values [N, K, G, C]: Q_k(s, g, a_c) at C = K * G candidates, the actions of the actors of
    the columns (k, g) in that order. Negations are pushed onto the heads (De Morgan); a negated
    head's value is Q_MAX + Q_MIN - Q_k, so it needs the bound heads MAX and MIN.
    """
    g = values.shape[2]

    def literal(name: str, negated: bool) -> tuple[Tensor, Tensor]:
        head = head_names.index(name)
        # every head's value at goal g of the action of the actor of column (head, g): [N, K, G]
        at_own = values[..., head * g : (head + 1) * g].diagonal(dim1=2, dim2=3)
        per_goal = at_own[:, head]
        if negated:
            if "MAX" not in head_names or "MIN" not in head_names:
                raise ValueError("NOT needs the bound heads MAX and MIN (env.bound_heads: true)")
            bounds = at_own[:, head_names.index("MAX")] + at_own[:, head_names.index("MIN")]
            per_goal = bounds - per_goal
        value, goal = per_goal.max(1)
        return value, head * g + goal

    def walk(node: expressions.Expr, negated: bool) -> tuple[Tensor, Tensor]:
        if isinstance(node, expressions.Head):
            return literal(node.name, negated)
        if isinstance(node, expressions.Unary) and node.op == "~":
            return walk(node.operand, not negated)
        if isinstance(node, expressions.Binary) and node.op in ("|", "&"):
            left, right = walk(node.left, negated), walk(node.right, negated)
            highest = (node.op == "|") != negated  # De Morgan swaps OR and AND under a NOT
            take_left = left[0] >= right[0] if highest else left[0] <= right[0]
            return (
                torch.where(take_left, left[0], right[0]),
                torch.where(take_left, left[1], right[1]),
            )
        text = expressions.to_string(node)
        raise ValueError(f"the component-action rule composes |, & and ~ over heads, not {text!r}")

    return walk(expr, False)


def rule_policy(agent: HeadsAgent, expr: expressions.Expr) -> Act:
    """Greedy policy of the component-action rule over world-value soft actor-critic heads:
    each column's actor proposes its mean action."""
    if not isinstance(agent, WorldValueActorCritic):
        raise ValueError(
            "the component-action rule needs world-value soft actor-critic heads "
            "(agent.heads: soft_actor_critic with agent.world_values: true)"
        )

    def act(obs: Tensor, _context: Tensor) -> Tensor:
        with torch.no_grad():
            means = agent.actor_means(obs)  # [N, K * G, D] of (-1, 1)^D
            values = agent.head_values_at(obs, means)
            _, chosen = rule_choice(expr, values, agent.head_names)
            rows = torch.arange(len(chosen), device=chosen.device)
            return agent.to_box(means[rows, chosen])

    return act


def rule_machine_policy(agent: HeadsAgent, machine: RewardMachine) -> Act:
    """The Skill Machines baseline for a temporal task: in each machine state the rule acts on
    that state's Boolean expression (`skill_expression`, edges picked on the machine alone) over
    world-value soft actor-critic heads. policy(obs, machine states [N]) -> actions."""
    if not isinstance(agent, WorldValueActorCritic) or "MAX" not in agent.head_names:
        raise ValueError(
            "the component-action rule needs world-value soft actor-critic heads with the "
            "bound heads MAX and MIN"
        )
    gamma = agent.cfg.gamma
    texts = [skill_expression(machine, u, gamma) for u in range(len(machine.states))]
    trees = [None if text is None else expressions.parse(text) for text in texts]

    def act(obs: Tensor, state: Tensor) -> Tensor:
        with torch.no_grad():
            means = agent.actor_means(obs)  # [N, K * G, D] of (-1, 1)^D
            values = agent.head_values_at(obs, means)
            chosen = torch.zeros_like(state)
            for u, tree in enumerate(trees):
                if tree is not None:
                    _, pick = rule_choice(tree, values, agent.head_names)
                    chosen = torch.where(state == u, pick, chosen)
            rows = torch.arange(len(chosen), device=chosen.device)
            return agent.to_box(means[rows, chosen])

    return act
