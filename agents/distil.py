"""Distil one composition of soft actor-critic heads into an actor of its own (after Haarnoja et
al. 2018, composable deep RL): fit an actor to the frozen composed values' greedy policy at
the states of the run's replay, with no new environment steps. The candidate sampler scores
every actor's proposals with every critic at every step; a distilled actor acts by one forward
pass, which pays for a composition that will be used for long.

The actor regresses on the sampler's greedy choice (the best of every actor's candidates by the
composed values, max over goals for world-value heads) at a pool of replay states. Climbing the
composed values by their gradient instead, as soft actor-critic actors learn, found the critics'
errors: on `purple` it ended 0.46 of the optimum, where imitation reached 0.996.
"""

from __future__ import annotations

import time

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors
from torch import Tensor, nn
from tqdm import tqdm

from agents.heads import Compose, HeadsAgent, make_adam
from agents.soft_actor_critic import EnsembleMLP, SoftActorCritic
from composable_rl.run.checkpoint import load_run_state
from composable_rl.run.logging import write_bytes
from composable_rl.share import follow_share
from composable_rl.world import Act


class DistilledActor(nn.Module):
    """An MLP as wide as the agent's heads from observations to one action of (-1, 1)^D."""

    def __init__(self, agent: SoftActorCritic, obs_size: int) -> None:
        super().__init__()
        self.net = EnsembleMLP(1, [obs_size, *agent.cfg.hidden, agent.action_size])

    def forward(self, obs: Tensor) -> Tensor:
        """Actions [N, D] of (-1, 1)^D for observations [N, ...]."""
        return torch.tanh(self.net(obs.flatten(1).float()[None])[0])


def replay_states(checkpoint: str, agent: HeadsAgent) -> Tensor:
    """The observations [B, ...] in the replay saved with `checkpoint`, on the agent's device
    (a ValueError names what is missing: heads without actors, or a run saved without its
    replay)."""
    if not isinstance(agent, SoftActorCritic):
        raise ValueError(
            "distillation fits an actor to soft actor-critic heads' composed values; this "
            f"checkpoint has {type(agent).__name__} heads"
        )
    state = load_run_state(checkpoint)
    if state is None or "replay.obs" not in state:
        raise ValueError(
            f"{checkpoint} holds no replay to distil from: train with checkpoint.replay: true"
        )
    return state["replay.obs"].to(agent.box_half.device)


def distil(
    agent: SoftActorCritic,
    compose: Compose,
    states: Tensor,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    pool: int = 16_384,
    seed: int = 0,
    progress: bool = True,
) -> tuple[DistilledActor, list[float]]:
    """An actor fitted to the sampler's greedy choice on `compose` at `pool` of `states` (drawn
    once), and its mean squared error at the first step and every 10% of the steps. Each step
    first follows the process's share of the cores (`follow_share`)."""
    generator = torch.Generator(device=states.device).manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's random state kept
        torch.manual_seed(seed)
        actor = DistilledActor(agent, states[0].numel()).to(states.device)
    optimizer = make_adam(list(actor.parameters()), lr)
    obs = states[torch.randperm(len(states), generator=generator, device=states.device)[:pool]]
    with torch.no_grad():
        chosen = torch.cat(
            [agent.choose(part, compose, None, 0.0, generator)[0] for part in obs.split(1024)]
        )
    trace = []
    for step in tqdm(range(steps), desc="distil", disable=not progress, unit="step"):
        follow_share()
        rows = torch.randint(len(obs), (batch_size,), generator=generator, device=obs.device)
        loss = (actor(obs[rows]) - chosen[rows]).square().sum(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == 0 or (step + 1) % max(1, steps // 10) == 0:
            trace.append(float(loss.detach()))
    return actor, trace


def distilled_policy(agent: SoftActorCritic, actor: DistilledActor) -> Act:
    """The actor's mean action in the world's box, for observations [N, ...]."""

    def act(obs: Tensor, _context: Tensor) -> Tensor:
        with torch.no_grad():
            return agent.to_box(actor(obs))

    return act


def acting_rate(policy: Act, states: Tensor, rows: int = 64, seconds: float = 1.0) -> float:
    """Actions per second of `policy` on batches of `rows` observations, timed over about
    `seconds` after a warm-up call."""
    obs = states[:rows]
    context = torch.zeros(len(obs), 1, device=obs.device)
    policy(obs, context)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < 3:
        policy(obs, context)
        calls += 1
    return calls * len(obs) / elapsed


def save_actor(actor: DistilledActor, task: str, checkpoint: str, path: str) -> None:
    """Write the actor's weights, the task and the checkpoint it came from (whole or not at
    all)."""
    state = {name: value.contiguous() for name, value in actor.state_dict().items()}
    meta = {"task": task, "checkpoint": str(checkpoint)}
    write_bytes(save_tensors(state, metadata=meta), path)


def load_actor(agent: SoftActorCritic, obs_size: int, path: str, task: str) -> DistilledActor:
    """The actor `save_actor` wrote for `task` on this agent's heads (a ValueError says why
    not: another task, other heads, or not such a file)."""
    actor = DistilledActor(agent, obs_size)
    try:
        with safe_open(path, framework="pt") as saved:
            meta = saved.metadata() or {}
        if meta.get("task") != task:
            raise ValueError(f"it was distilled for {meta.get('task')!r}, not {task!r}")
        actor.load_state_dict(load_file(path))
    except (SafetensorError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: not an actor distilled for these heads: {err}") from None
    return actor.eval()
