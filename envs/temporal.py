"""Temporal tasks on the Office world: a reward machine stepped beside the agent.

`OfficeTask` is a batched training world for one task, with the machine state in the
observation (the directly trained baseline). `evaluate_temporal` runs any policy of (cell,
machine state) on a task and scores it against the product-BFS oracle.
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from composable_rl.functional import wrong_goal_penalty
from composable_rl.reward_machine import RewardMachine, from_ltl, load_reward_machine
from envs.office import ALPHABET, PROPOSITIONS, OfficeWorld
from envs.oracle import product_steps

TEMPORAL_KEYS = ("task", "start", "success", "steps", "oracle_steps", "violations")
Policy = Callable[[Tensor, Tensor], Tensor]


def office_machine(task: str) -> RewardMachine:
    """The machine of a task given as an LTL formula or a reward-machine YAML file path."""
    if task.endswith((".yaml", ".yml")):
        return replace(load_reward_machine(Path(task), PROPOSITIONS), alphabet=ALPHABET)
    return from_ltl(task, PROPOSITIONS, ALPHABET)


class OfficeTask(OfficeWorld):
    """N Office worlds pursuing one temporal task; observation [N, 2] = (cell, 108 + state).

    Reward (one head, "task"): the step reward, r_max on the step that reaches an accepting
    machine state, `violation_reward` on the step that enters a rejecting one; both end the
    episode. The default violation reward is the library's wrong-goal penalty over all 108
    cells, below the value of wandering forever, so breaking a rule never pays.
    """

    def __init__(
        self,
        *,
        task: str,
        violation_reward: float | None = None,
        observation: str = "indices",
        **kwargs,
    ) -> None:
        if observation != "indices":
            raise ValueError("a temporal task observes (cell, machine state) as indices only")
        self.machine = office_machine(task)
        self.task = task
        table, _ = self.machine.table(ALPHABET)
        self.machine_next = table
        states = len(self.machine.states)
        self.accepting = torch.zeros(states, dtype=torch.bool)
        self.accepting[list(self.machine.accepting)] = True
        self.rejecting = torch.zeros(states, dtype=torch.bool)
        self.rejecting[list(self.machine.rejecting)] = True
        super().__init__(observation="indices", bound_heads=False, **kwargs)
        cells = self.height * self.width
        if violation_reward is None:
            violation_reward = wrong_goal_penalty(self.r_min, self.r_max, self.step_reward, cells)
        self.violation_reward = violation_reward
        for name in ("machine_next", "accepting", "rejecting"):
            setattr(self, name, getattr(self, name).to(self.device))
        self.head_names, self.num_heads = ["task"], 1
        self.goal_names, self.num_goals = [], 0
        self.obs_shape = (2,)
        self.num_features = self.height * self.width + states

    def reset(self, seed=0) -> Tensor:
        """Reset cells (see OfficeWorld.reset) and put every machine in its initial state."""
        self.state = torch.full((self.num_envs,), self.machine.initial, device=self.device)
        return super().reset(seed)

    def observe(self, agent: Tensor, objects: Tensor) -> Tensor:
        """long [B, 2]: the agent's cell and 108 + the machine state of each slot."""
        return self.encode(agent, self.state)

    def encode(self, cells: Tensor, states: Tensor) -> Tensor:
        """Observation long [B, 2] of agents in cells [B] with machine states [B]."""
        return torch.stack([cells, self.height * self.width + states], 1)

    def start_episodes(self, mask: Tensor) -> None:
        """Next episode in the slots where mask: fresh start cell, initial machine state."""
        super().start_episodes(mask)
        self.state = self.state.masked_fill(mask, self.machine.initial)

    def advance(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Move, read the label, step the machine: (reward [N, 1], terminated, truncated, goal)."""
        self.agent = self.next_cell[self.agent, actions]
        self.state = self.machine_next[self.state, self.labels(self.agent)]
        done, failed = self.accepting[self.state], self.rejecting[self.state]
        reward = torch.full((self.num_envs, 1), self.step_reward, device=self.device)
        reward = torch.where(done[:, None], self.r_max, reward)
        reward = torch.where(failed[:, None], self.violation_reward, reward)
        self.t = self.t + 1
        terminated = done | failed
        truncated = ~terminated & (self.t >= self.max_steps)
        return reward, terminated, truncated, torch.full_like(self.state, -1)


def evaluate_temporal(
    task: str,
    policy: Policy,
    starts: str = "standard",
    episodes: int = 100,
    max_steps: int = 200,
    seed: int = 10_000,
    device: str = "cpu",
) -> dict:
    """One row: success rate, mean steps, mean oracle steps, violation rate of `policy`.

    policy(cells [N], machine states [N]) -> actions [N]. `starts` is standard (2, 1) or random
    (uniform over cells without a proposition, one per episode). Steps are counted to
    acceptance (max_steps for episodes that never get there); the oracle is the fewest steps
    from the same starts by breadth-first search over world x machine.
    """
    kind = {"standard": "standard", "random": "unlabelled"}.get(starts)
    if kind is None:
        raise ValueError(f"starts must be 'standard' or 'random', got {starts!r}")
    machine = office_machine(task)
    world = OfficeWorld(num_envs=episodes, starts=kind, device=device)
    world.reset(seed)
    table, _ = machine.table(world.alphabet)
    table = table.to(world.device)
    accepting = torch.zeros(len(machine.states), dtype=torch.bool, device=world.device)
    accepting[list(machine.accepting)] = True
    rejecting = torch.zeros_like(accepting)
    rejecting[list(machine.rejecting)] = True
    oracle = product_steps(world.next_cell, world.cell_label, table, accepting)
    cells = world.agent.clone()
    state = torch.full_like(cells, machine.initial)
    oracle_steps = oracle[cells, state]
    steps = torch.full_like(cells, max_steps)
    running = torch.ones_like(cells, dtype=torch.bool)
    violated = torch.zeros_like(running)
    with torch.no_grad():
        for t in range(1, max_steps + 1):
            actions = policy(cells, state).to(device=world.device, dtype=torch.long)
            cells = torch.where(running, world.next_cell[cells, actions], cells)
            state = torch.where(running, table[state, world.labels(cells)], state)
            steps = torch.where(running & accepting[state], t, steps)
            violated |= running & rejecting[state]
            running &= ~(accepting[state] | rejecting[state])
            if not running.any():
                break
    success = accepting[state]
    return {
        "task": task,
        "start": starts,
        "success": success.double().mean().item(),
        "steps": steps.double().mean().item(),
        "oracle_steps": oracle_steps.double().mean().item(),
        "violations": violated.double().mean().item(),
    }
