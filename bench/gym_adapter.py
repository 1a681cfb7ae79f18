"""Overhead of the Gymnasium adapter world against the bare Gymnasium SyncVectorEnv it wraps.

    python -m bench.gym_adapter

Steps CartPole-v1 with N copies under random actions, both ways in one run: the adapter (torch
actions in, tensors out, final observations gathered) and a bare same-step-autoreset
SyncVectorEnv (numpy actions in, numpy out). Rounds alternate between the two so that both see
the same drifts of a shared machine; each reports its median env-steps/s, then their ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from bench.throughput import progress
from composable_rl.config import from_dict
from envs.gymnasium_world import GymnasiumConfig, make

ENV_ID = "CartPole-v1"
NUM_ENVS = 16
STEPS = 20_000  # env steps of each contender, over all rounds
ROUNDS = 10
WARMUP_CALLS = 20
TARGET_RATIO = 0.8
POOL = 64  # pre-drawn rows of random actions, cycled through


def steps_per_second(step: Callable[[int], object], calls: int) -> float:
    """Env-steps/s of `calls` calls of step(i), each stepping NUM_ENVS envs."""
    start = time.perf_counter()
    for i in range(calls):
        step(i)
    return calls * NUM_ENVS / (time.perf_counter() - start)


def contenders() -> tuple[dict[str, Callable[[int], object]], Callable[[], None]]:
    """The step functions of the adapter and of the bare vector env, and a function closing both."""
    world = make(from_dict(GymnasiumConfig, {"id": ENV_ID}), NUM_ENVS, "cpu")
    bare = SyncVectorEnv(
        [lambda: gymnasium.make(ENV_ID)] * NUM_ENVS, autoreset_mode=AutoresetMode.SAME_STEP
    )
    world.reset(0)
    bare.reset(seed=0)
    tensor_actions = torch.randint(world.action_spec.n, (POOL, NUM_ENVS))
    numpy_actions = np.random.default_rng(0).integers(world.action_spec.n, size=(POOL, NUM_ENVS))

    def close() -> None:
        """Close both vector envs."""
        world.close()
        bare.close()

    steps = {
        "adapter (GymnasiumWorld)": lambda i: world.step(tensor_actions[i % POOL]),
        "bare SyncVectorEnv": lambda i: bare.step(numpy_actions[i % POOL]),
    }
    return steps, close


def main() -> dict[str, float]:
    """Time both contenders in interleaved rounds, print the table and return the medians."""
    torch.set_num_threads(1)  # the adapter's tensor work is a few tiny copies per step
    torch.manual_seed(0)
    steps, close = contenders()
    calls = STEPS // (NUM_ENVS * ROUNDS)
    rates: dict[str, list[float]] = {name: [] for name in steps}
    try:
        for step in steps.values():
            for i in range(WARMUP_CALLS):
                step(i)
        for _ in progress(range(ROUNDS), "gym adapter", "round"):
            for name, step in steps.items():
                rates[name].append(steps_per_second(step, calls))
    finally:
        close()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    width = max(len(name) for name in medians)
    print(f"{ENV_ID}, N={NUM_ENVS}, {calls * NUM_ENVS * ROUNDS} env steps each, {ROUNDS} rounds")
    print(f"{'what'.ljust(width)}  {'env-steps/s':>12}  range")
    for name, value in medians.items():
        low, high = min(rates[name]), max(rates[name])
        print(f"{name.ljust(width)}  {value:>12,.0f}  {low:,.0f}-{high:,.0f}")
    ratio = medians["adapter (GymnasiumWorld)"] / medians["bare SyncVectorEnv"]
    mark = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"ratio adapter / bare: {ratio:.2f}x ({mark}: target >= {TARGET_RATIO}x)")
    return medians


if __name__ == "__main__":
    main()
