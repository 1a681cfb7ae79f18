"""Temporal tasks on the Office world: a reward machine stepped beside the agent.

`OfficeTask` is a batched training world for one task, with the machine state in the
observation (the directly trained baseline). `evaluate_temporal` runs any policy of (cell,
machine state) on a task and scores it against the product-BFS oracle.
"""

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from composable_rl.config import doc
from composable_rl.evaluation import exact_head_rows
from composable_rl.languages.ltl import from_ltl
from composable_rl.languages.reward_machine import RewardMachine
from composable_rl.languages.reward_machine_yaml import load_reward_machine
from composable_rl.maths.functional import wrong_goal_penalty
from composable_rl.maths.oracle import product_steps
from composable_rl.registry import register_world
from composable_rl.share import follow_share
from composable_rl.world import Act
from envs.gridworld import GoalGridConfig
from envs.office import ALPHABET, PROPOSITIONS, OfficeWorld

TEMPORAL_KEYS = ("task", "start", "success", "steps", "oracle_steps", "achievable", "violations")


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

    episode_state = (*OfficeWorld.episode_state, "state")  # + each slot's machine state

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
        self.goal_membership = torch.zeros(0, 1, dtype=torch.bool, device=self.device)
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
    policy: Act,
    starts: str = "standard",
    episodes: int = 100,
    max_steps: int = 200,
    seed: int = 10_000,
    device: str = "cpu",
    observation: str = "indices",
) -> dict:
    """One row: success rate, mean steps, mean oracle steps, violation rate of `policy`.

    policy(observations [N, ...] of the primitive Office world, machine states [N]) -> actions
    [N]. `starts` is standard (2, 1) or random
    (uniform over cells without a proposition, one per episode). Steps are counted to
    acceptance (max_steps for episodes that never get there); the oracle is the fewest steps
    from the same starts by breadth-first search over world x machine, averaged over the starts
    from which the task can be completed at all (`achievable`, a fraction; None if none).
    """
    kind = {"standard": "standard", "random": "unlabelled"}.get(starts)
    if kind is None:
        raise ValueError(f"starts must be 'standard' or 'random', got {starts!r}")
    machine = office_machine(task)
    world = OfficeWorld(num_envs=episodes, starts=kind, observation=observation, device=device)
    world.reset(seed)
    table, accepting, rejecting = machine_arrays(machine, world.alphabet, world.device)
    oracle = product_steps(world.next_cell, world.cell_label, table, accepting)
    cells = world.agent.clone()
    oracle_steps = oracle[cells, machine.initial]

    def move(cells: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        cells = world.next_cell[cells, actions.to(device=world.device, dtype=torch.long)]
        return cells, world.labels(cells)

    def observe(cells: Tensor) -> Tensor:
        return world.observe(cells, world.objects)

    machine_tensors = (machine.initial, table, accepting, rejecting)
    run = machine_episodes(policy, observe, move, cells, machine_tensors, max_steps)
    return temporal_row(task, starts, run, oracle_steps)


def machine_arrays(
    machine: RewardMachine, alphabet: list, device: str | torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """A machine as tensors on `device`: next state [U, L] by label index of `alphabet`, and
    its accepting and rejecting states as masks [U]."""
    table, _ = machine.table(alphabet)
    accepting = torch.zeros(len(machine.states), dtype=torch.bool, device=device)
    accepting[list(machine.accepting)] = True
    rejecting = torch.zeros_like(accepting)
    rejecting[list(machine.rejecting)] = True
    return table.to(device), accepting, rejecting


def machine_episodes(
    policy: Act,
    observe: Callable[[Tensor], Tensor],
    move: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    position: Tensor,
    machine: tuple[int, Tensor, Tensor, Tensor],
    max_steps: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run policy(obs, machine states) from positions [N, ...] beside a reward machine
    (initial state, next-state table [U, L], accepting [U], rejecting [U]) until each episode
    accepts or rejects: (success [N], steps [N] to acceptance, max_steps if none; violated
    [N]). move(positions, actions) -> (positions, labels [N]); observe(positions) -> obs."""
    initial, table, accepting, rejecting = machine
    state = torch.full(position.shape[:1], initial, dtype=torch.long, device=table.device)
    steps = torch.full_like(state, max_steps)
    running = torch.ones_like(state, dtype=torch.bool)
    violated = torch.zeros_like(running)
    with torch.no_grad():
        for t in range(1, max_steps + 1):
            follow_share()
            moved, label = move(position, policy(observe(position), state))
            keep = running.view(-1, *[1] * (position.dim() - 1))
            position = torch.where(keep, moved, position)
            state = torch.where(running, table[state, label], state)
            steps = torch.where(running & accepting[state], t, steps)
            violated |= running & rejecting[state]
            running &= ~(accepting[state] | rejecting[state])
            if not running.any():
                break
    return accepting[state], steps, violated


def temporal_row(
    task: str, starts: str, run: tuple[Tensor, Tensor, Tensor], oracle_steps: Tensor
) -> dict:
    """The result row of `machine_episodes`' run beside the oracle's steps [N] (-1: the task
    cannot be completed from that start)."""
    success, steps, violated = run
    possible = oracle_steps >= 0
    return {
        "task": task,
        "start": starts,
        "success": success.double().mean().item(),
        "steps": steps.double().mean().item(),
        "oracle_steps": oracle_steps[possible].double().mean().item() if possible.any() else None,
        "achievable": possible.double().mean().item(),
        "violations": violated.double().mean().item(),
    }


@dataclasses.dataclass
class OfficeConfig(GoalGridConfig):
    """office: the Office world of Toro Icarte et al. (2018), propositions a-g and n."""

    name: str = doc("office", "This world.")

    starts: Literal["anywhere", "unlabelled", "standard"] = doc(
        "anywhere",
        "Start cells: uniform over all cells, over cells without a proposition, or the standard "
        "start (2, 1).",
    )
    task: str = doc(
        "",
        "Train directly on one temporal task, an LTL formula such as 'F(f & F g) & G !n' or a "
        "reward-machine YAML file, with the machine state in the observation (the baseline for "
        "skill machines); empty = the primitive tasks.",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        yield from super().problems()
        if self.task and self.observation != "indices":
            yield "observation", "a temporal task observes (cell, machine state) as indices only"


def make_office(section: OfficeConfig, num_envs: int, device: str) -> OfficeWorld:
    """The Office world of a section: primitive tasks, or one temporal task when `task` is set."""
    common = {
        "num_envs": num_envs,
        "max_steps": section.max_steps,
        "r_max": section.r_max,
        "r_min": section.r_min,
        "step_reward": section.step_reward,
        "starts": section.starts,
        "device": device,
    }
    if section.task:
        return OfficeTask(task=section.task, **common)
    return OfficeWorld(bound_heads=section.bound_heads, observation=section.observation, **common)


def evaluate_office(section: OfficeConfig, act: Act, episodes: int, device: str) -> list[dict]:
    """Primitive heads against the exact oracle; a temporal task's success and steps against the
    product-BFS oracle, from the standard start and from random starts."""
    world = make_office(section, episodes, device)
    if not section.task:
        return exact_head_rows(world, act)
    weights = torch.ones(episodes, 1, device=device)

    def policy(obs: Tensor, states: Tensor) -> Tensor:
        cells = obs[:, 0]
        return act(world.encode(cells, states), weights[: len(cells)])

    return [
        evaluate_temporal(section.task, policy, starts, episodes, device=device)
        for starts in ("standard", "random")
    ]


def evaluate_office_temporal(
    section: OfficeConfig,
    task: str,
    make_policy: Callable[[RewardMachine], Act],
    episodes: int,
    seed: int,
    device: str,
) -> list[dict]:
    """Rows for the standard start and for random starts of the policy that `make_policy`
    builds for the machine of `task` (e.g. a skill machine over the proposition heads)."""
    policy = make_policy(office_machine(task))
    observed = {"observation": section.observation}
    return [
        evaluate_temporal(task, policy, starts, episodes, seed=seed, device=device, **observed)
        for starts in ("standard", "random")
    ]


register_world("office", OfficeConfig, make_office, evaluate_office, evaluate_office_temporal)
