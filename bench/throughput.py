"""Throughput benchmark: env-only, acting, update, end-to-end training and an SB3 DQN baseline.

    python -m bench.throughput [--json PATH] [--quick] [--device cuda] [--device-graphs]

Prints one table (what, setting, value, unit) measured in one run on this machine, then the
speed targets marked met or missed. Speeds always come with their replay ratio. On a CUDA
device every measurement runs there (the env-only rows add N = 16,384 and 65,536; the SB3
baseline stays on the CPU and is skipped), timed to the end of the device's queued work.
`--device-graphs` adds the same rows with the world's step compiled (`device_graphs: true`):
env-only at the largest N of each observation, and end-to-end at replay ratio 1 against the
update limit timed around it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import operator
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from agents.factory import build, schedule_warnings
from agents.soft_q import MultiHeadSoftQ
from agents.training import train
from composable_rl.config import AgentConfig, Config, WorldConfig, load_config
from composable_rl.registry import make_world
from composable_rl.replay import Batch, TensorReplay
from composable_rl.run.capture import CapturedStep
from composable_rl.run.runtime import configure_cpu
from composable_rl.world import World

CPU = torch.device("cpu")
QUICKSTART = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"
ENV_SIZES = (1, 64, 1024, 4096)
DEVICE_ENV_SIZES = (16_384, 65_536)  # added on a CUDA device
ACT_SIZES = (1, 1024)
UPDATE_HEADS = (1, 4, 16)
UPDATE_BATCH = 256
UPDATE_HIDDEN = [80, 80]  # with the 7x13x13 planes input: ~100k parameters
REPLAY_RATIOS = (1.0, 0.25)
UPDATE_ROUNDS = 5  # interleaved timing rounds per head count (median reported)
SMALL_BATCH_ENVS = 64  # end-to-end reference beside the quickstart's own num_envs
ACTION_POOL = 64  # pre-generated action rows cycled through by the env-only loop
AROUND = "timed around the end-to-end runs at replay ratio 1 (mean of before and after)"
CAPTURED = "captured step (device_graphs)"
QUICKSTART_FILL = 8  # random-action steps of every env that fill the quickstart update's replay

Row = dict[str, str | float]


@dataclass(frozen=True)
class Scale:
    """How long each measurement runs: the full run or the seconds-long smoke test."""

    seconds: float  # minimum timed wall time of each steady-state loop
    warmup: int  # untimed calls before each loop
    train_steps: int  # env steps of each end-to-end run
    learning_starts: int | None  # None keeps the quickstart value
    sb3_steps: int


FULL = Scale(seconds=1.0, warmup=20, train_steps=600_000, learning_starts=None, sb3_steps=20_000)
QUICK = Scale(seconds=0.02, warmup=2, train_steps=4_096, learning_starts=512, sb3_steps=1_200)


@dataclass(frozen=True)
class Target:
    """One speed target of the issue, checked against a measured value."""

    label: str
    value: float
    op: str  # ">=" or "<="
    threshold: float

    def met(self) -> bool:
        """Whether the measured value satisfies the target."""
        return {">=": operator.ge, "<=": operator.le}[self.op](self.value, self.threshold)


def row(what: str, setting: str, value: float | str, unit: str) -> Row:
    """One table row in the JSON schema (what, setting, value, unit)."""
    return {"what": what, "setting": setting, "value": value, "unit": unit}


def bracketed(what: str, setting: str, before: float, after: float, unit: str) -> list[Row]:
    """A rate timed just before and just after other work: their mean, and after / before as
    the drift of the machine's speed in between."""
    return [
        row(what, setting, (before + after) / 2, unit),
        row(what, f"{setting}: after / before", after / before, "x"),
    ]


def calls_per_second(
    step: Callable[[int], object], scale: Scale, device: torch.device = CPU
) -> float:
    """Rate of step(i) over at least `scale.seconds` of wall time, after untimed warm-up calls."""
    return interleaved_rates({0: step}, scale, rounds=1, device=device)[0]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA launches return before the work is done)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rate(step: Callable[[int], object], seconds: float, device: torch.device = CPU) -> float:
    """Calls of step(i) per second over at least `seconds` of wall time, the last call's work
    done on the device."""
    synchronize(device)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(calls)
        calls += 1
    synchronize(device)
    return calls / (time.perf_counter() - start)


def measured(parts: Sequence[Callable[[], list[Row]]], desc: str) -> list[Row]:
    """The rows of a bench's measurements, taken in turn under a progress bar on stderr
    (measurements done and left, and an estimate of the time left)."""
    return [found for part in progress(parts, desc, "measurement") for found in part()]


def progress(items: Iterable, desc: str, unit: str) -> tqdm:
    """`items` under a progress bar on stderr, as every long command shows one."""
    return tqdm(items, desc=desc, unit=unit, file=sys.stderr)


def interleaved_rates(
    steps: dict[int, Callable[[int], object]],
    scale: Scale,
    rounds: int = UPDATE_ROUNDS,
    device: torch.device = CPU,
) -> dict[int, float]:
    """Median rate of each step over `rounds` rounds that time every step in turn.

    Interleaving exposes all settings to the same slow drifts of a shared machine, so their
    ratio is steadier than that of back-to-back measurements.
    """
    for step in steps.values():
        for i in range(scale.warmup):
            step(i)
    rates: dict[int, list[float]] = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            rates[key].append(timed_rate(step, scale.seconds / rounds, device))
    return {key: statistics.median(values) for key, values in rates.items()}


def quickstart(overrides: Sequence[str] = ()) -> Config:
    """The quickstart config with `key=value` overrides applied."""
    return load_config(QUICKSTART, list(overrides))


def env_sizes(device: torch.device) -> tuple[int, ...]:
    """The env-only batch sizes: larger ones on a CUDA device."""
    return ENV_SIZES + DEVICE_ENV_SIZES if device.type == "cuda" else ENV_SIZES


def bench_env(scale: Scale, device: torch.device = CPU, captured: bool = False) -> list[Row]:
    """Env-only steps/s of the batched engine on the quickstart world with random placement;
    `captured`: its step compiled, at the largest N only (each N compiles anew), for the
    observations whose step compiles (`capturable`)."""
    random_placement = quickstart(["env.object_positions=null"]).env
    sizes = env_sizes(device)[-1:] if captured else env_sizes(device)
    rows = []
    for observation in ("indices", "planes"):
        env = dataclasses.replace(random_placement, observation=observation)
        for n in sizes:
            world = make_world(env, n, device)
            step = CapturedStep(world) if captured else world.step
            if captured and not step.compiled:  # a world that keeps its step as written
                continue
            actions = torch.randint(world.action_spec.n, (ACTION_POOL, n), device=device)
            rate = calls_per_second(
                lambda i, a=actions, f=step: f(a[i % ACTION_POOL]), scale, device
            )
            setting = f"N={n}, obs={observation}, four_rooms, random placement"
            setting += f", {CAPTURED}" if captured else ""
            rows.append(row("env-only", setting, n * rate, "steps/s"))
    return rows


def acting_rate(
    world: World, agent: MultiHeadSoftQ, scale: Scale, device: torch.device = CPU
) -> float:
    """Env steps per second of the act-then-step loop, every slot on the uniform mixture task."""
    k = len(world.head_names)
    weights = torch.full((world.num_envs, k), 1.0 / k, device=device)
    obs = world.reset(0)

    def step(_: int) -> None:
        nonlocal obs
        obs = world.step(agent.act(obs, weights, epsilon=0.1))[0]

    return world.num_envs * calls_per_second(step, scale, device)


def bench_act(scale: Scale, device: torch.device = CPU) -> list[Row]:
    """Acting steps/s: agent.act on composed world-value heads plus world.step (quickstart)."""
    rows = []
    for n in ACT_SIZES:
        world, agent = build(quickstart([f"env.num_envs={n}", f"device={device}"]))
        k = len(world.head_names)
        setting = f"N={n}, quickstart agent (K={k} world-value heads), eps=0.1"
        rate = acting_rate(world, agent, scale, device)
        rows.append(row("acting", setting, rate, "steps/s"))
    return rows


def num_params(agent: MultiHeadSoftQ) -> int:
    """Trainable parameters of the agent's online network."""
    return sum(p.numel() for p in agent.online.parameters())


def synthetic_batch(
    obs_shape: Sequence[int], num_heads: int, num_actions: int, device: torch.device = CPU
) -> Batch:
    """A random minibatch of binary planes, actions, reward vectors and terminations."""
    b = UPDATE_BATCH
    batch = Batch(
        obs=torch.randint(2, (b, *obs_shape), dtype=torch.uint8),
        action=torch.randint(num_actions, (b,)),
        reward=torch.randn(b, num_heads),
        terminated=torch.rand(b) < 0.05,
        next_obs=torch.randint(2, (b, *obs_shape), dtype=torch.uint8),
        goal=torch.full((b,), -1),
    )
    return Batch(*(None if field is None else field.to(device) for field in batch))


def bench_update(scale: Scale, device: torch.device = CPU) -> list[Row]:
    """Updates/s and samples/s of plain heads on a dense ~100k-parameter MLP, for K heads."""
    world = make_world(quickstart(["env.observation=planes"]).env, 1, "cpu")
    shape = world.observation_spec.shape
    cfg = AgentConfig(hidden=UPDATE_HIDDEN, tau=1.0, target_period=250)
    agents = {
        k: MultiHeadSoftQ(shape, world.action_spec, [f"h{i}" for i in range(k)], cfg).to(device)
        for k in UPDATE_HEADS
    }
    batches = {k: synthetic_batch(shape, k, world.action_spec.n, device) for k in UPDATE_HEADS}
    steps = {k: lambda _, a=agents[k], b=batches[k]: a.update(b) for k in UPDATE_HEADS}
    rates = interleaved_rates(steps, scale, device=device)
    rows = []
    for k, agent in agents.items():
        params = num_params(agent)
        setting = (
            f"K={k}, batch {UPDATE_BATCH}, {params:,} params "
            f"(MLP {shape} -> {UPDATE_HIDDEN} -> K*{world.action_spec.n}), "
            f"median of {UPDATE_ROUNDS} interleaved rounds"
        )
        rows.append(row("update", setting, rates[k], "updates/s"))
        rows.append(row("update", setting, rates[k] * UPDATE_BATCH, "samples/s"))
    k_lo, k_hi = UPDATE_HEADS[0], UPDATE_HEADS[-1]
    ratio = rates[k_lo] / rates[k_hi]
    rows.append(row("update", f"time per update, K={k_hi} / K={k_lo}", ratio, "x"))
    return rows


def quickstart_updates(
    device: torch.device,
) -> tuple[str, dict[int, Callable[[int], object]]]:
    """The quickstart network (in words) and its update, as a step of the timing loops, on a
    batch drawn from a replay of random-action transitions, at batch 256 and at the
    configured batch (index observations, world-value heads)."""
    cfg = quickstart([f"device={device}"])
    world, agent = build(cfg)
    spec, k = world.observation_spec, len(world.head_names)
    replay = TensorReplay(QUICKSTART_FILL * world.num_envs, spec.shape, k, spec.dtype, device)
    obs = world.reset(0)
    for _ in range(QUICKSTART_FILL):
        actions = torch.randint(world.action_spec.n, (world.num_envs,), device=device)
        next_obs, reward, terminated, _, info = world.step(actions)
        replay.add(obs, actions, reward, terminated, info["final_obs"], info["goal"])
        obs = next_obs
    sizes = sorted({UPDATE_BATCH, cfg.replay.batch_size})
    batches = {b: replay.sample(b) for b in sizes}
    network = f"quickstart network ({num_params(agent):,} params, K={k} world-value heads)"
    return network, {b: lambda _, x=batches[b]: agent.update(x) for b in sizes}


def bench_quickstart_update(scale: Scale, device: torch.device = CPU) -> list[Row]:
    """Samples/s of the quickstart's own update (index observations, world-value heads) at
    batch 256 and at its configured batch: why it trains with large batches."""
    network, steps = quickstart_updates(device)
    rates = interleaved_rates(steps, scale, device=device)
    return [
        row(
            "update",
            f"{network}, batch {b}, median of {UPDATE_ROUNDS} interleaved rounds",
            rates[b] * b,
            "samples/s",
        )
        for b in steps
    ]


def train_seconds(overrides: Sequence[str]) -> float:
    """Wall time of one quickstart train() call (no progress bar, no evaluation). Its schedule
    warnings are left out (the short runs that only fill replay make too few updates to learn
    by design); anything else it prints to stderr is passed on."""
    cfg = quickstart(["eval_episodes=0", *overrides])
    expected = set(schedule_warnings(cfg))  # the bench's configs leave no schedule key null
    printed = io.StringIO()
    try:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(printed):
            start = time.perf_counter()
            train(cfg, Path(tmp) / "run", progress=False)
            return time.perf_counter() - start
    finally:
        lines = printed.getvalue().splitlines(True)
        sys.stderr.write("".join(line for line in lines if line.strip() not in expected))


def bench_end_to_end(scale: Scale, device: torch.device = CPU, captured: bool = False) -> list[Row]:
    """Env-steps/s of real training, excluding warm-up: (T - W) / (time(T) - time(W)) steps,
    where a run of W = L + N steps fills replay and makes one step of updates.

    The quickstart as shipped first, then with fewer envs per batch for reference. The pure
    update rate of the same network and batch is timed just before and just after the runs at
    replay ratio 1, so that their ratio holds where the machine's speed drifts (on a shared
    host it can move by a quarter within a minute); after / before shows the drift.
    `captured`: the quickstart at replay ratio 1 alone, with `device_graphs`, after an untimed
    run that compiles its step (the timed runs then find it compiled, as a long run would).
    """
    base = quickstart()
    starts = scale.learning_starts or base.replay.learning_starts
    capacity = min(base.replay.capacity, scale.train_steps)
    batch = base.replay.batch_size
    network, updates = quickstart_updates(device)
    for i in range(scale.warmup):
        updates[batch](i)

    def limit() -> float:
        return batch * timed_rate(updates[batch], scale.seconds, device)

    sizes = (base.env.num_envs, SMALL_BATCH_ENVS)
    runs = [(sizes[0], 1.0)] if captured else [(n, r) for n in sizes for r in REPLAY_RATIOS]
    mark = f", {CAPTURED}" if captured else ""
    rows = []
    for envs, ratio in runs:
        bracket = envs == base.env.num_envs and ratio == 1.0
        common = [
            f"replay.replay_ratio={ratio}",
            f"replay.learning_starts={starts}",
            f"replay.capacity={capacity}",
            f"env.num_envs={envs}",
            f"device={device}",
            f"device_graphs={captured}",
        ]
        warm_steps = -(-starts // envs) * envs + envs  # replay filled, one step of updates
        if captured:
            train_seconds([*common, f"total_steps={warm_steps}"])
        before = limit() if bracket else 0.0
        warm = train_seconds([*common, f"total_steps={warm_steps}"])
        full = train_seconds([*common, f"total_steps={scale.train_steps}"])
        which = "quickstart" if envs == base.env.num_envs else "quickstart with"
        setting = (
            f"replay ratio {ratio:g}, {which} N={envs}, batch {base.replay.batch_size}, "
            f"{scale.train_steps:,} steps, excl. first {warm_steps:,} (difference of two runs)"
        )
        rate = (scale.train_steps - warm_steps) / max(full - warm, 1e-9)
        rows.append(row("end-to-end", setting + mark, rate, "env-steps/s"))
        if bracket:
            after = limit()
            around = f"{network}, batch {batch}{mark}, {AROUND}"
            rows += bracketed("update", around, before, after, "samples/s")
    return rows


def bench_sb3(scale: Scale, device: torch.device = CPU) -> list[Row]:
    """SB3 DQN env-steps/s on the scalarised Gymnasium face at replay ratio 1 (or a skip row).

    Same world, MLP widths, learning rate, discount and batch size as the quickstart; one
    gradient step every `batch` env steps makes the replay ratio 1. A CPU baseline: skipped
    when the bench measures a CUDA device.
    """
    if device.type != "cpu":
        return [row("sb3-dqn", "skipped: the baseline runs on the CPU", "skipped", "env-steps/s")]
    try:
        from stable_baselines3 import DQN
    except ImportError:
        setting = 'skipped: stable-baselines3 not importable; pip install -e ".[bench]"'
        return [row("sb3-dqn", setting, "skipped", "env-steps/s")]
    from mo_gymnasium.wrappers import LinearReward

    from envs.gym_env import ObjectRoomsEnv

    cfg = quickstart(["env.observation=planes"])
    env = ObjectRoomsEnv(**gym_kwargs(cfg.env))
    weights = np.array([float(name == "blue") for name in env.world.head_names], np.float32)
    env = LinearReward(env, weights)
    batch = cfg.replay.batch_size
    model = DQN(
        "MlpPolicy",
        env,
        learning_rate=cfg.agent.lr,
        buffer_size=scale.sb3_steps,
        learning_starts=min(1_000, scale.sb3_steps // 4),
        batch_size=batch,
        train_freq=batch,  # gradient_steps * batch_size / train_freq = 1
        gradient_steps=1,
        gamma=cfg.agent.gamma,
        target_update_interval=cfg.agent.target_period * batch,  # in env steps: ours at ratio 1
        policy_kwargs={"net_arch": list(cfg.agent.hidden)},
        device="cpu",
        seed=0,
    )
    seconds = learn_seconds(model, scale.sb3_steps)
    setting = (
        f"1 env, planes obs, reward 'blue', MLP {list(cfg.agent.hidden)}, batch {batch}, "
        f"train_freq {batch}, 1 grad step (replay ratio 1), {scale.sb3_steps:,} steps "
        "incl. warm-up"
    )
    return [row("sb3-dqn", setting, scale.sb3_steps / seconds, "env-steps/s")]


def learn_seconds(model: object, steps: int) -> float:
    """Wall time of a Stable-Baselines3 model's learn() for `steps` env steps, logging nowhere
    (its default logger makes a folder in the temp directory at every learn())."""
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(None, []))  # type: ignore[attr-defined]
    start = time.perf_counter()
    model.learn(total_timesteps=steps)  # type: ignore[attr-defined]
    return time.perf_counter() - start


def gym_kwargs(section: WorldConfig) -> dict:
    """ObjectRoomsEnv arguments of an object_rooms section: its own keys (beyond name and
    num_envs), each named as the world's argument, with an empty `heads` meaning every head."""
    common = {field.name for field in dataclasses.fields(WorldConfig)}
    own = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}
    kwargs = {key: value for key, value in own.items() if key not in common}
    return {**kwargs, "heads": kwargs["heads"] or None}


def find(rows: list[Row], what: str, unit: str, prefix: str, contains: str = "") -> float | None:
    """Value of the first numeric row of `what` in `unit` whose setting starts with `prefix`
    (and holds `contains`)."""
    return next(
        (
            float(r["value"])
            for r in rows
            if r["what"] == what
            and r["unit"] == unit
            and str(r["setting"]).startswith(prefix)
            and contains in str(r["setting"])
            and not isinstance(r["value"], str)
        ),
        None,
    )


def plain(rows: list[Row]) -> list[Row]:
    """The rows measured with the world's step as written (not `--device-graphs` rows)."""
    return [r for r in rows if CAPTURED not in str(r["setting"])]


def update_limit_ratio(rows: list[Row]) -> list[Row]:
    """End-to-end env-steps/s at replay ratio 1 against the pure update limit of the same
    network and batch (its samples/s: at ratio 1 every env step is one sample trained), with
    the world's step as written and, where measured, captured."""
    batch = quickstart().replay.batch_size
    ratios = []
    kept = plain(rows)
    for captured in (False, True):
        mine = [r for r in rows if r not in kept] if captured else kept
        ours = find(mine, "end-to-end", "env-steps/s", "replay ratio 1, quickstart N=")
        limit = find(mine, "update", "samples/s", "quickstart network", AROUND)
        if ours is None or limit is None:
            continue
        setting = (
            f"end-to-end / update limit, quickstart network, batch {batch}, replay ratio 1 "
            "(limit timed around the run)"
        )
        ratios.append(
            row("end-to-end", setting + (f", {CAPTURED}" if captured else ""), ours / limit, "x")
        )
    return ratios


def sb3_ratio(rows: list[Row]) -> list[Row]:
    """The ours / SB3 DQN row at replay ratio 1, when both were measured."""
    ours = find(plain(rows), "end-to-end", "env-steps/s", "replay ratio 1,")
    sb3 = find(rows, "sb3-dqn", "env-steps/s", "")
    if ours is None or sb3 is None:
        return []
    return [row("sb3-dqn", "ours / SB3 DQN env-steps/s, replay ratio 1", ours / sb3, "x")]


def targets(rows: list[Row]) -> list[Target]:
    """The issue's speed targets against this run's rows (a missing row is left out)."""
    wanted = [
        (f"env-only N={n}, obs={obs}", ("env-only", "steps/s", f"N={n}, obs={obs}"), ">=", 1e6)
        for obs in ("indices", "planes")
        for n in ENV_SIZES
        if n >= 1024
    ]
    wanted += [
        ("updates/s at K=4, batch 256", ("update", "updates/s", "K=4,"), ">=", 400),
        ("update time K=16 / K=1", ("update", "x", "time per update, K=16 / K=1"), "<=", 1.3),
        (
            "end-to-end at replay ratio 1",
            ("end-to-end", "env-steps/s", "replay ratio 1,"),
            ">=",
            5e4,
        ),
        (
            "end-to-end at replay ratio 0.25",
            ("end-to-end", "env-steps/s", "replay ratio 0.25,"),
            ">=",
            1.5e5,
        ),
        ("ours / SB3 DQN at replay ratio 1", ("sb3-dqn", "x", "ours / SB3"), ">=", 20),
        (
            "end-to-end / update limit at replay ratio 1",
            ("end-to-end", "x", "end-to-end / update limit"),
            ">=",
            0.8,
        ),
        (
            "env-only N=65536, obs=indices (CUDA device)",
            ("env-only", "steps/s", "N=65536, obs=indices"),
            ">=",
            1e8,
        ),
        (
            "end-to-end / update limit at replay ratio 1, device_graphs",
            ("end-to-end", "x", "end-to-end / update limit", CAPTURED),
            ">=",
            0.8,
        ),
        (
            "env-only N=65536, obs=indices, device_graphs (CUDA device)",
            ("env-only", "steps/s", "N=65536, obs=indices", CAPTURED),
            ">=",
            1e8,
        ),
    ]
    found = []
    for label, key, op, threshold in wanted:
        value = find(rows if CAPTURED in key else plain(rows), *key)
        if value is not None:
            found.append(Target(label, value, op, threshold))
    return found


def show(value: float | str) -> str:
    """Human-readable number: thousands separators for big values, 3 digits for small ones."""
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def show_against(value: float, threshold: float) -> str:
    """`show(value)`, with more digits where it would read as the `threshold` it is checked
    against (0.6995 against 0.7 must not print as 0.7)."""
    text = show(value)
    if value != threshold and text == show(threshold):
        text = f"{value:,.2f}" if value >= 100 else f"{value:.6g}"
    return text


def table(rows: list[Row]) -> str:
    """Fixed-width text table of the rows."""
    cols = ("what", "setting", "value", "unit")
    cells = [[str(r["what"]), str(r["setting"]), show(r["value"]), str(r["unit"])] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    for line in cells:
        padded = [
            cell.rjust(w) if i == 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, or 'unknown'."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    return next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line),
        "unknown",
    )


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Runs every benchmark, prints the table and targets; returns the rows (also --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the rows as JSON")
    parser.add_argument("--quick", action="store_true", help="tiny measurements (smoke test)")
    parser.add_argument("--device", default="cpu", help="torch device to measure (cpu, cuda)")
    parser.add_argument(
        "--device-graphs",
        action="store_true",
        help="add env-only and end-to-end rows with the world's step compiled",
    )
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch build sees no CUDA device")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU: {cpu_name()}")
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    parts = (
        bench_env,
        bench_act,
        bench_update,
        bench_quickstart_update,
        bench_end_to_end,
        bench_sb3,
    )
    calls = [partial(part, scale, device) for part in parts]
    if args.device_graphs:
        calls += [
            partial(part, scale, device, captured=True) for part in (bench_env, bench_end_to_end)
        ]
    rows = measured(calls, "throughput")
    rows += update_limit_ratio(rows) + sb3_ratio(rows)
    return report(rows, targets(rows), args.json)


def report(rows: list[Row], found: list[Target], json_path: Path | None) -> list[Row]:
    """Print a bench's table and its targets, met or missed; write the rows as JSON to
    `json_path` if given. Returns the rows."""
    print(table(rows))
    print("targets:")
    for t in found:
        mark = "met" if t.met() else "MISSED"
        value = show_against(t.value, t.threshold)
        print(f"  {mark:<6}  {t.label}: {value} (target {t.op} {show(t.threshold)})")
    if json_path is not None:
        json_path.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    configure_cpu()  # process-wide, as in train.py's CLI
    main()
