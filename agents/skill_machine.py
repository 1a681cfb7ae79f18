"""Skill-machine agent: trained world-value heads run a temporal task zero-shot.

Each machine state owns a Boolean composition of the proposition heads (see
`composable_rl.languages.skill_machine`); the agent acts greedily on the composition of each
env's current machine state. With `plan=True` (default) the composition's terminal rewards are
replaced by the values of going on from each goal, so the agent also weighs what comes after
the next edge.
Discrete heads score every action; continuous (soft actor-critic) heads score the candidate
actions their actors propose (`candidate_values`), and the best candidate is taken (or, with a
`quantile`, the quantiliser of those values draws one, over a uniform base). With a step model
(`entered`, the world's conservative account of which goal an action enters), the machine is
shielded: it never takes an action that enters a goal whose label fails the task while another
does not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from agents.heads import HeadsAgent
from composable_rl.languages.expressions import evaluate
from composable_rl.languages.reward_machine import Label, RewardMachine
from composable_rl.languages.skill_machine import (
    continuation_targets,
    planned_values,
    skill_expression,
)
from composable_rl.maths.levers import Quantile, quantile_sample


class SkillMachineAgent:
    """Acts on a reward machine with world-value heads incl. MAX and MIN (`candidate_values`).

    The world is described by tensors so that agents never import envs: `alphabet` lists the
    labels by index, `goal_label` [G] is the label index of each goal, `goal_membership` [G, K]
    says which heads reward which goal, `goal_obs` [G, ...] is the observation of standing on
    each goal; `step_reward`, `r_max` and `r_min` are the world's rewards. `entered(obs,
    actions)` [N, C] (-1 none), where given, names the goal each of C actions enters.
    """

    def __init__(
        self,
        agent: HeadsAgent,
        machine: RewardMachine,
        alphabet: Sequence[Label],
        goal_label: Tensor,
        goal_membership: Tensor,
        goal_obs: Tensor,
        step_reward: float,
        r_max: float,
        r_min: float,
        plan: bool = True,
        seed: int = 0,
        quantile: Quantile | None = None,
        entered: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        if not agent.num_goals or "MAX" not in agent.head_names or "MIN" not in agent.head_names:
            raise ValueError("a skill machine needs world-value heads with the bounds MAX and MIN")
        if quantile is not None and quantile.base is not None:
            raise ValueError("a skill machine quantilises over a uniform base: leave the base out")
        self.agent, self.machine, self.plan, self.quantile = agent, machine, plan, quantile
        self.entered = entered
        self.generator = torch.Generator(device=goal_obs.device).manual_seed(seed)
        self.step_reward, self.gamma = step_reward, agent.cfg.gamma
        table, _ = machine.table(alphabet)
        self.expressions = [
            skill_expression(machine, u, self.gamma) for u in range(len(machine.states))
        ]
        device = goal_obs.device
        truth = dict(zip(agent.head_names, goal_membership.T.float(), strict=True))
        ones = torch.ones(goal_label.shape[0], device=device)
        self.terminal = torch.stack(
            [
                torch.full_like(ones, r_min)
                if text is None
                else torch.where(evaluate(text, truth, bounds=(ones, 0 * ones)) > 0.5, r_max, r_min)
                for text in self.expressions
            ]
        )  # [U, G]
        accepting = torch.zeros(len(machine.states), dtype=torch.bool, device=device)
        accepting[list(machine.accepting)] = True
        rejecting = torch.zeros_like(accepting)
        rejecting[list(machine.rejecting)] = True
        table = table.to(device)
        goal_next = table[:, goal_label]  # [U, G]
        empty = machine.table([()])[0].to(device)  # [U, 1]: after a step that enters no goal
        # [U, G + 1]: entering goal g (the last column: no goal) in state u fails the task
        self.fails = torch.cat([rejecting[goal_next], rejecting[empty]], 1)
        with torch.no_grad():
            at_goals = self.compose(self.agent.candidate_values(goal_obs, self.generator)[0])
        self.target = continuation_targets(
            at_goals, self.terminal, goal_next, accepting, rejecting, step_reward, self.gamma, r_max
        )

    def compose(self, q: Tensor) -> Tensor:
        """Composed world values [U, B, G, C] of every machine state's expression (0 if none)
        from the heads' values q [B, K, G, C] at C actions."""
        heads = {name: q[:, k] for k, name in enumerate(self.agent.head_names)}
        bounds = (heads["MAX"], heads["MIN"])
        alpha = self.agent.cfg.alpha
        return torch.stack(
            [
                torch.zeros_like(bounds[0])
                if text is None
                else evaluate(text, heads, alpha=alpha, bounds=bounds)
                for text in self.expressions
            ]
        )

    @torch.no_grad()
    def act(self, obs: Tensor, context: Tensor) -> Tensor:
        """Greedy (or quantilised) actions [N, ...] for observations [N, ...] in the machine
        states `context` [N]: an action index for discrete heads, a candidate action for
        continuous ones."""
        state = context
        rows = torch.arange(obs.shape[0], device=obs.device)
        q, candidates = self.agent.candidate_values(obs, self.generator)
        values = self.compose(q)[state, rows]  # [N, G, C]
        terminal = self.terminal[state]
        if self.plan:
            values = planned_values(
                values, terminal, self.target[state], self.step_reward, self.gamma
            )
        else:  # only goals that take the edge: reaching another one does not end the task
            wanted = terminal == terminal.amax(1, keepdim=True)
            values = values.masked_fill(~wanted.unsqueeze(-1), -torch.inf)
        scores = values.amax(1)
        safe = None
        if self.entered is not None:
            every = torch.arange(scores.shape[-1], device=obs.device).expand_as(scores)
            safe = self.safe(obs, state, every if candidates is None else candidates)
            scores = scores.masked_fill(~safe, -torch.inf)
        if self.quantile is None:
            best = scores.argmax(-1)
        else:  # over a uniform base, or one uniform over the safe actions
            base = None if safe is None else safe / safe.sum(-1, keepdim=True)
            best = quantile_sample(scores, base, self.quantile.q, self.generator)
        return best if candidates is None else candidates[rows, best]

    def safe(self, obs: Tensor, state: Tensor, actions: Tensor) -> Tensor:
        """Which of C actions [N, C, ...] from observations [N, ...] in machine states [N] enter
        no goal whose label fails the task, by the step model [N, C] (all of them where none
        does: the shield only ever chooses among the actions it has). A step that enters no
        goal reads the empty label, as the world's steps do."""
        fails = self.fails[state[:, None], self.entered(obs, actions)]  # -1: the last column
        return ~fails | fails.all(-1, keepdim=True)
