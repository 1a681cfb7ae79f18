"""Soft actor-critic speed: ours against Stable-Baselines3 SAC on Hopper-v5, and the cost of an
update with three heads (mo-hopper-v5) against one (Hopper-v5).

    python -m bench.continuous [--json PATH] [--quick]

Both learners train the same network (two hidden layers of 256 for the actor and for each of the
twin critics), batch 256, one update per env step, Adam at 3e-4, tau 0.005, gamma 0.99 and an
entropy temperature tuned from 1.0, on one environment, for the same env steps; the table gives
env-steps/s over the whole run (updates start after the same warm-up in both). Prints one table
and the speed targets, met or missed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch

from agents.factory import build
from agents.training import train
from bench.throughput import (
    Scale,
    Target,
    interleaved_rates,
    learn_seconds,
    measured,
    report,
    row,
)
from composable_rl.config import load_config
from composable_rl.replay import TensorReplay
from composable_rl.run.runtime import configure_cpu

HOPPER = Path(__file__).resolve().parent.parent / "configs" / "hopper.yaml"
FULL = Scale(seconds=3.0, warmup=20, train_steps=20_000, learning_starts=5_000, sb3_steps=20_000)
QUICK = Scale(seconds=0.05, warmup=2, train_steps=600, learning_starts=300, sb3_steps=600)
UPDATE_ENVS = ("Hopper-v5", "mo-hopper-v5")


def ours(scale: Scale) -> list:
    """Env-steps/s of train() on configs/hopper.yaml for `train_steps` steps (no evaluation)."""
    cfg = load_config(
        HOPPER,
        [
            f"total_steps={scale.train_steps}",
            f"replay.learning_starts={scale.learning_starts}",
            "eval_episodes=0",
            f"log_every={scale.train_steps}",
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(cfg, Path(tmp) / "run", progress=False)
        seconds = time.perf_counter() - start
    setting = (
        f"Hopper-v5, 1 env, MLP {cfg.agent.hidden}, batch {cfg.replay.batch_size}, 1 update per "
        f"env step after {scale.learning_starts:,}, {scale.train_steps:,} steps"
    )
    return [row("ours-sac", setting, scale.train_steps / seconds, "env-steps/s")]


def sb3(scale: Scale) -> list:
    """Env-steps/s of Stable-Baselines3 SAC with the same settings (or a skip row)."""
    try:
        import gymnasium
        from stable_baselines3 import SAC
    except ImportError:
        setting = 'skipped: stable-baselines3 not importable; pip install -e ".[bench]"'
        return [row("sb3-sac", setting, "skipped", "env-steps/s")]
    cfg = load_config(HOPPER)
    model = SAC(
        "MlpPolicy",
        gymnasium.make("Hopper-v5"),
        learning_rate=cfg.agent.lr,
        buffer_size=cfg.replay.capacity,
        learning_starts=scale.learning_starts,
        batch_size=cfg.replay.batch_size,
        tau=cfg.agent.tau,
        gamma=cfg.agent.gamma,
        train_freq=1,
        gradient_steps=1,
        ent_coef="auto",
        policy_kwargs={"net_arch": list(cfg.agent.hidden)},
        device="cpu",
        seed=0,
    )
    seconds = learn_seconds(model, scale.sb3_steps)
    setting = f"Hopper-v5, same settings, {scale.sb3_steps:,} steps"
    return [row("sb3-sac", setting, scale.sb3_steps / seconds, "env-steps/s")]


def updates(scale: Scale) -> list:
    """Updates/s of our agent with 1 head (Hopper-v5) and 3 heads (mo-hopper-v5), timed in
    interleaved rounds on replays of random transitions, and their time ratio."""
    steps, heads = {}, {}
    for i, env_id in enumerate(UPDATE_ENVS):
        cfg = load_config(HOPPER, [f"env.id={env_id}"])
        world, agent = build(cfg)
        obs, act, k = world.observation_spec, world.action_spec, len(world.head_names)
        world.close()
        heads[i] = k
        replay = TensorReplay(4096, obs.shape, k, obs.dtype, "cpu", act.shape, act.dtype)
        n = replay.capacity
        replay.add(
            torch.randn(n, *obs.shape),
            act.sample(n),
            torch.randn(n, k),
            torch.zeros(n, dtype=torch.bool),
            torch.randn(n, *obs.shape),
        )
        gen = torch.Generator().manual_seed(0)

        def step(_: int, agent=agent, replay=replay, gen=gen, size=cfg.replay.batch_size) -> None:
            agent.update(replay.sample(size, gen))

        steps[i] = step
    rates = interleaved_rates(steps, scale)
    rows = [
        row("update", f"{env_id}, K={heads[i]}, batch 256", rates[i], "updates/s")
        for i, env_id in enumerate(UPDATE_ENVS)
    ]
    ratio = f"time per update, K={heads[1]} / K={heads[0]}"
    return [*rows, row("update", ratio, rates[0] / rates[1], "x")]


def targets(rows: list) -> list[Target]:
    """The speed targets against this run's rows (a missing row is left out)."""
    values = {(r["what"], r["unit"]): r["value"] for r in rows if not isinstance(r["value"], str)}
    found = []
    if ("ours-sac", "x") in values:
        found.append(Target("ours / SB3 SAC env-steps/s", values[("ours-sac", "x")], ">=", 1.5))
    if ("update", "x") in values:
        found.append(Target("update time K=3 / K=1", values[("update", "x")], "<=", 1.5))
    return found


def main(argv: Sequence[str] | None = None) -> list:
    """Runs the three measurements, prints the table and the targets; returns the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the rows as JSON")
    parser.add_argument("--quick", action="store_true", help="tiny measurements (smoke test)")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = measured(
        [partial(ours, scale), partial(sb3, scale), partial(updates, scale)], "continuous"
    )
    if not isinstance(rows[1]["value"], str):
        ratio = rows[0]["value"] / rows[1]["value"]
        rows.insert(2, row("ours-sac", "ours / SB3 SAC env-steps/s", ratio, "x"))
    return report(rows, targets(rows), args.json)


if __name__ == "__main__":
    configure_cpu()  # process-wide, as in train.py's CLI
    main()
