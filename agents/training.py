"""The training loop: one multi-head soft-Q agent on any registered world.

Every env slot pursues its own behaviour task (a base head or a weight vector over the heads),
while all heads learn off-policy from the shared tensor replay. The run directory holds the
resolved config, TensorBoard logs, checkpoints and the final evaluation.
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from agents.soft_q import HeadsAgent, MultiHeadSoftQ
from agents.successor import SuccessorFeatures
from composable_rl.checkpoint import (
    CheckpointFormatError,
    checkpoint_dir,
    checkpoints,
    load_checkpoint,
    load_run_state,
    nonfinite,
    prune_checkpoints,
    save_checkpoint,
)
from composable_rl.cli import folder_problem
from composable_rl.config import Config, ConfigError, save_config, to_dict, validate
from composable_rl.evaluation import exact_head_rows, head_return_rows
from composable_rl.functional import wrong_goal_penalty
from composable_rl.interrupts import StopRequests
from composable_rl.logging import Logger, head_tags, write_json
from composable_rl.registry import make_world, world_entry
from composable_rl.replay import TensorReplay
from composable_rl.runtime import CoreShare
from composable_rl.tasks import TaskStream
from composable_rl.world import GoalWorld, ResumableWorld, TabularWorld, World

TASK_BLOCK = 64  # training steps of behaviour tasks drawn per call


def build_world(cfg: Config, num_envs: int | None = None) -> World:
    """The world of `cfg.env` (num_envs defaults to the section's); a constructor's refusal of
    a value becomes a ConfigError naming the env section."""
    try:
        return make_world(cfg.env, num_envs, cfg.device)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"env ({cfg.env.name}): {err}", "env") from err


def goal_penalty(cfg: Config, world: GoalWorld) -> float:
    """The configured wrong-goal penalty, or the default of `fn.wrong_goal_penalty`.

    The horizon is the shorter of the world's state count and the effective 1 / (1 - gamma).
    """
    if cfg.agent.penalty is not None:
        return cfg.agent.penalty
    horizon = min(world.num_states, 1.0 / (1.0 - cfg.agent.gamma))
    return wrong_goal_penalty(world.r_min, world.r_max, world.step_reward, horizon)


def build(cfg: Config) -> tuple[World, HeadsAgent]:
    """The batched training world and a fresh agent whose heads match the world's rewards:
    soft-Q heads or successor-feature heads, as `agent.heads` says."""
    world = build_world(cfg)
    spec = world.observation_spec
    fixed = cfg.tasks.fixed_weights
    if fixed is not None and len(fixed) != len(world.head_names):
        raise ConfigError(
            f"tasks.fixed_weights: need one weight per head {world.head_names}, got {fixed}"
        )
    goals = isinstance(world, GoalWorld) and bool(world.goal_names)
    if cfg.agent.world_values and not goals:
        raise ConfigError(f"agent.world_values: the {cfg.env.name} world declares no goals")
    slots = world.goal_slots if goals and cfg.agent.goal_conditioned else None
    if cfg.agent.goal_conditioned and slots is None:
        raise ConfigError(
            "agent.goal_conditioned: needs a world whose index observations describe each goal "
            "(goal_slots), e.g. object_rooms with observation: indices"
        )
    encoder = cfg.agent.encoder
    if encoder == "auto":
        encoder = "cnn" if spec.kind == "image" else "mlp"
    if encoder == "cnn" and spec.kind != "image":
        raise ConfigError(
            f"agent.encoder: cnn needs image observations, the world gives {spec.kind} {spec.shape}"
        )
    sparse = spec.num_features if spec.kind == "indices" else 0
    if cfg.agent.heads == "successor_features":
        k = len(world.head_names)
        if any(len(w) != k for w in cfg.agent.successor.support):
            raise ConfigError(
                f"agent.successor.support: need one weight per head {world.head_names}, "
                f"got {cfg.agent.successor.support}"
            )
        agent = SuccessorFeatures(
            spec.shape, world.action_spec.n, world.head_names, cfg.agent, sparse, encoder
        )
        return world, agent.to(cfg.device)
    agent = MultiHeadSoftQ(
        spec.shape,
        world.action_spec.n,
        world.head_names,
        cfg.agent,
        sparse,
        len(world.goal_names) if cfg.agent.world_values else 0,
        goal_penalty(cfg, world) if cfg.agent.world_values else 0.0,
        slots,
        encoder=encoder,
    )
    return world, agent.to(cfg.device)


def epsilon_at(cfg: Config, step: int) -> float:
    """Linearly decayed epsilon of the behaviour policy."""
    horizon = max(1.0, cfg.tasks.epsilon_fraction * cfg.total_steps)
    frac = min(1.0, step / horizon)
    return cfg.tasks.epsilon_start + frac * (cfg.tasks.epsilon_end - cfg.tasks.epsilon_start)


def evaluate_run(agent: HeadsAgent, cfg: Config, episodes: int) -> list[dict]:
    """Final evaluation of the greedy policy: the world's own evaluation where it registered
    one; else every head against the exact oracle where the world has a tabular model; else
    every head's return with a 95% confidence interval."""
    entry = world_entry(cfg.env.name)
    with torch.no_grad():
        if entry.evaluate is not None:
            return entry.evaluate(cfg.env, agent.greedy, episodes, cfg.device)
        world = build_world(cfg, episodes)
        if isinstance(world, TabularWorld):
            return exact_head_rows(world, agent.greedy)
        return head_return_rows(world, agent.greedy)


@dataclass
class EpisodeStats:
    """Device-side sums of finished episodes per behaviour task (K heads + 'mixed')."""

    returns: torch.Tensor
    counts: torch.Tensor

    @classmethod
    def zeros(cls, num_heads: int, device: str) -> EpisodeStats:
        return cls(
            torch.zeros(num_heads + 1, device=device), torch.zeros(num_heads + 1, device=device)
        )

    def add(self, done: torch.Tensor, ep_return: torch.Tensor, task: torch.Tensor) -> None:
        slot = torch.where(task < 0, self.returns.shape[0] - 1, task)
        self.returns.index_add_(0, slot, ep_return * done)
        self.counts.index_add_(0, slot, done.to(ep_return.dtype))


class TrainingDiverged(RuntimeError):
    """A non-finite loss or weight stopped the run; the message says when and what to change."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after it wrote a checkpoint at `step`."""

    def __init__(self, received: signal.Signals, step: int, checkpoint: Path) -> None:
        super().__init__(f"{received.name} at step {step:,}: checkpoint {checkpoint}")
        self.signal, self.step, self.checkpoint = received, step, checkpoint


def divergence_message(cfg: Config, first: int, stopped: int, last_checkpoint: Path | None) -> str:
    """Where the run diverged (first non-finite step) and stopped, what is safe on disk, and
    the knobs that usually cause it."""
    kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint"
    clip = cfg.agent.max_grad_norm
    return (
        f"training diverged: non-finite TD loss or weights at step {first:,} (stopped at step "
        f"{stopped:,}); nothing was written after it, {kept}. "
        f"Likely fixes: lower agent.lr (now {cfg.agent.lr:g}), "
        f"clip gradients with agent.max_grad_norm (now {clip:g}"
        f"{', i.e. off' if clip == 0 else ''}), scale the rewards down or lower agent.gamma "
        f"(now {cfg.agent.gamma:g})."
    )


def follow_share(share: CoreShare | nullcontext) -> None:
    """Set torch's threads to this run's share of the cores, when it shares them (a fixed
    `torch_threads` without a `share` given to `train` stays)."""
    if isinstance(share, CoreShare) and (threads := share.threads()) != torch.get_num_threads():
        torch.set_num_threads(threads)


def check_run_dir(run_dir: Path) -> None:
    """Refuse, before any work, a run directory that cannot be created or written."""
    if problem := folder_problem(run_dir):
        raise ConfigError(
            f"runs_dir: cannot create the run directory {run_dir}: {problem}", "runs_dir"
        )


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` with names `prefix.name` (one flat safetensors namespace per run state)."""
    return {f"{prefix}.{name}": value for name, value in tensors.items()}


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of `state` named `prefix.name`, by `name`."""
    return {
        name.removeprefix(f"{prefix}."): v
        for name, v in state.items()
        if name.startswith(f"{prefix}.")
    }


def run_state(
    world: World,
    replay: TensorReplay,
    tasks: TaskStream,
    gen: torch.Generator,
    loop: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Everything besides weights and optimizer that a resumed run needs to continue exactly:
    replay, behaviour tasks, random-number states, the loop's tensors and the open episodes
    (where the world can save them)."""
    state = {
        **_prefixed("loop", loop),
        **_prefixed("replay", replay.state_dict()),
        **_prefixed("tasks", tasks.state_dict()),
        "rng.generator": gen.get_state(),
        "rng.torch": torch.get_rng_state(),
    }
    if isinstance(world, ResumableWorld):
        state.update(_prefixed("world", world.state_dict()))
    return state


def restore_run_state(
    state: dict[str, torch.Tensor],
    world: World,
    replay: TensorReplay,
    tasks: TaskStream,
    gen: torch.Generator,
) -> dict[str, torch.Tensor] | None:
    """Put a `run_state` back; returns the loop's tensors, or None when the world could not save
    its episodes (the run then continues from fresh ones, with replay and generators restored)."""
    try:
        replay.load_state_dict(_part(state, "replay"))
        tasks.load_state_dict(_part(state, "tasks"))
        gen.set_state(state["rng.generator"])
        torch.set_rng_state(state["rng.torch"])
        episodes = _part(state, "world")
        if not (episodes and isinstance(world, ResumableWorld)):
            return None
        world.load_state_dict(episodes)
    except (KeyError, ValueError, RuntimeError) as err:
        raise ConfigError(f"the saved run state does not fit this config: {err}") from err
    device = replay.device
    return {name: value.to(device) for name, value in _part(state, "loop").items()}


def resume_checkpoint(
    run_dir: Path, agent: HeadsAgent, goal_names: list[str]
) -> tuple[Path, dict, dict[str, torch.Tensor] | None]:
    """Load the newest usable checkpoint of `run_dir`, skipping damaged ones with a warning;
    returns its path, meta and saved run state (None if saved without one)."""
    found = checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(f"no checkpoint to resume from under {run_dir}/checkpoints")
    for path in found:
        try:
            meta = load_checkpoint(
                path,
                agent,
                {"online": agent.optimizer},
                head_names=agent.head_names,
                goal_names=goal_names,
            )
            return path, meta, load_run_state(path)
        except CheckpointFormatError as err:
            print(f"warning: skipping damaged checkpoint {path}: {err}", file=sys.stderr)
    raise FileNotFoundError(f"no usable checkpoint under {run_dir}/checkpoints (all damaged)")


def train(
    cfg: Config,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    share: CoreShare | None = None,
) -> dict:
    """Runs (or resumes) training in `run_dir`; returns the final evaluation and counters.

    The run directory is created only once the world and agent are built, so a config that
    fails to build leaves nothing behind; `command` is appended to its command.txt. Checkpoints
    land every `checkpoint.every` steps and `checkpoint.minutes`, at the end, and when SIGINT or
    SIGTERM arrives: the run then raises TrainingInterrupted (a KeyboardInterrupt, so a caller
    that does not handle it stops as on Ctrl-C). A non-finite loss or weight raises
    TrainingDiverged before any checkpoint holds it. The signals are caught from the start, so
    one that arrives while the run is still being set up stops it at its first step. `share`
    replaces the default way its threads follow the runs live on the machine (`CoreShare`
    when `torch_threads` is 0), e.g. for a sweep trial that must keep the CPUs it was given.
    """
    with StopRequests() as stop:
        return _train(cfg, run_dir, resume, progress, command, stop, share)


def _train(
    cfg: Config,
    run_dir: Path,
    resume: bool,
    progress: bool,
    command: str | None,
    stop: StopRequests,
    share: CoreShare | None,
) -> dict:
    """The body of `train`, with SIGINT and SIGTERM already caught by `stop`."""
    validate(cfg)
    check_run_dir(run_dir)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    world, agent = build(cfg)
    spec = world.observation_spec
    n, k, dev = world.num_envs, len(world.head_names), cfg.device
    step, saved, last_checkpoint = 0, None, None
    if resume:
        last_checkpoint, meta, saved = resume_checkpoint(
            run_dir, agent, getattr(world, "goal_names", [])
        )
        step, agent.updates = meta["step"], meta.get("updates", 0)
        exact = ", with its replay and random-number state" if saved is not None else ""
        print(f"resuming from {last_checkpoint} (step {step:,}){exact}", file=sys.stderr)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"runs_dir: cannot create the run directory {run_dir}: {err}") from err
    if command is not None:
        with (run_dir / "command.txt").open("a") as f:
            f.write(command + "\n")
    save_config(cfg, run_dir / "config.yaml")
    logger = Logger(run_dir)
    logger.hparams_table(to_dict(cfg))

    gen = torch.Generator(dev).manual_seed(cfg.seed + 7919 * step)
    replay = TensorReplay(
        cfg.replay.capacity,
        spec.shape,
        k,
        spec.dtype,
        dev,
        world.action_spec.shape,
        world.action_spec.dtype,
    )
    updates_per_step = cfg.replay.replay_ratio * n / cfg.replay.batch_size
    learning_starts = min(cfg.replay.learning_starts, cfg.replay.capacity)

    obs = world.reset(seed=cfg.seed * 1_000_003 + step)
    tcfg = cfg.tasks
    tasks = TaskStream(
        n,
        TASK_BLOCK,
        num_heads=k,
        single_head_prob=tcfg.single_head_prob,
        weight_dist=tcfg.weight_dist,
        generator=gen,
        device=dev,
        fixed=tcfg.fixed_weights,
    )
    task_w, task_id = next(tasks)
    ep_return = torch.zeros(n, device=dev)
    credit = 0.0
    if saved is not None:
        loop = restore_run_state(saved, world, replay, tasks, gen)
        if loop is None:
            print(
                f"warning: the {cfg.env.name} world cannot save its episodes: the run resumes "
                "from fresh ones, so it is not bit-identical to an uninterrupted run",
                file=sys.stderr,
            )
            task_w, task_id = next(tasks)
        else:
            obs, task_w, task_id = loop["obs"], loop["task_w"], loop["task_id"]
            ep_return, credit = loop["ep_return"], float(loop["credit"])
    stats = EpisodeStats.zeros(k, dev)
    sums = {
        "td_loss": torch.zeros((), device=dev),
        "td_error": torch.zeros(k, device=dev),
        "q_mean": torch.zeros(k, device=dev),
        "entropy": torch.zeros((), device=dev),
    }
    first_bad = torch.full((), -1, dtype=torch.long, device=dev)  # step of a non-finite loss
    n_updates = 0
    last_log, t_log, steps_at_log = step, time.perf_counter(), step
    minutes = cfg.checkpoint.minutes
    next_save = time.monotonic() + minutes * 60 if minutes > 0 else float("inf")
    bar = tqdm(
        total=cfg.total_steps,
        initial=step,
        unit="step",
        unit_scale=True,
        dynamic_ncols=True,
        mininterval=1.0,
        disable=not progress,
    )

    def check_finite() -> None:
        bad = int(first_bad)
        if bad >= 0 or nonfinite(agent.named_parameters()):
            bar.close()
            raise TrainingDiverged(
                divergence_message(cfg, bad if bad >= 0 else step, step, last_checkpoint)
            )

    def checkpoint() -> Path:
        nonlocal last_checkpoint, next_save
        check_finite()
        meta = {
            "step": step,
            "updates": agent.updates,
            "head_names": world.head_names,
            "goal_names": getattr(world, "goal_names", []),
            "config": to_dict(cfg),
        }
        state = None
        if cfg.checkpoint.replay:
            loop = {
                "obs": obs,
                "task_w": task_w,
                "task_id": task_id,
                "ep_return": ep_return,
                "credit": torch.tensor(credit, dtype=torch.float64),
            }
            state = run_state(world, replay, tasks, gen, loop)
        path = save_checkpoint(
            checkpoint_dir(run_dir, step), agent, {"online": agent.optimizer}, meta, state
        )
        prune_checkpoints(run_dir, cfg.checkpoint.keep_last)
        last_checkpoint = path
        if minutes > 0:
            next_save = time.monotonic() + minutes * 60
        return path

    sharing = share or (CoreShare() if cfg.torch_threads == 0 else nullcontext())
    with sharing:
        follow_share(sharing)
        while step < cfg.total_steps and stop.signal is None:
            actions = agent.act(obs, task_w, epsilon_at(cfg, step), generator=gen, behaviour=True)
            next_obs, reward, terminated, truncated, info = world.step(actions)
            replay.add(obs, actions, reward, terminated, info["final_obs"], info.get("goal"))
            ep_return += (reward * task_w).sum(1)
            done = terminated | truncated
            stats.add(done, ep_return, task_id)
            ep_return.masked_fill_(done, 0.0)
            new_w, new_id = next(tasks)
            task_w = torch.where(done[:, None], new_w, task_w)
            task_id = torch.where(done, new_id, task_id)
            obs = next_obs
            step += n
            bar.update(n)

            if len(replay) >= learning_starts:
                credit += updates_per_step
                while credit >= 1.0:
                    metrics = agent.update(replay.sample(cfg.replay.batch_size, gen))
                    for key, value in metrics.items():
                        sums[key] += value
                    bad_now = (first_bad < 0) & ~torch.isfinite(metrics["td_loss"])
                    first_bad = torch.where(bad_now, step, first_bad)
                    n_updates += 1
                    credit -= 1.0

            if step - last_log >= cfg.log_every or step >= cfg.total_steps:
                check_finite()
                follow_share(sharing)
                now = time.perf_counter()
                sps = (step - steps_at_log) / max(now - t_log, 1e-9)
                counts = stats.counts.tolist()
                returns = stats.returns.tolist()
                scalars = {
                    "charts/SPS": sps,
                    "charts/threads": torch.get_num_threads(),
                    "charts/epsilon": epsilon_at(cfg, step),
                    "charts/updates": agent.updates,
                }
                if sum(counts) > 0:
                    scalars["charts/episodic_return"] = sum(returns) / sum(counts)
                for name, c, r in zip(world.head_names + ["mixed"], counts, returns, strict=True):
                    if c > 0:
                        scalars[f"tasks/{name}/episodic_return"] = r / c
                if n_updates:
                    scalars["losses/td_loss"] = sums["td_loss"] / n_updates
                    scalars["policy/entropy"] = sums["entropy"] / n_updates
                    scalars.update(
                        head_tags(
                            world.head_names,
                            sums["td_error"] / n_updates,
                            sums["q_mean"] / n_updates,
                        )
                    )
                logger.scalars(scalars, step)
                bar.set_postfix(
                    sps=f"{sps:,.0f}",
                    ret=f"{scalars.get('charts/episodic_return', 0):.2f}",
                    upd=agent.updates,
                )
                stats = EpisodeStats.zeros(k, dev)
                for value in sums.values():
                    value.zero_()
                n_updates, last_log, t_log, steps_at_log = 0, step, now, step

            every = cfg.checkpoint.every
            if (every and step // every > (step - n) // every) or time.monotonic() >= next_save:
                checkpoint()
        bar.close()
        final = checkpoint()
    stop.restore()  # from here on Ctrl-C interrupts the evaluation at once

    close = getattr(world, "close", None)
    if callable(close):
        close()
    if stop.signal is not None:
        logger.close()
        raise TrainingInterrupted(stop.signal, step, final)
    rows = evaluate_run(agent, cfg, cfg.eval_episodes) if cfg.eval_episodes > 0 else []
    for row in rows:
        tag = f"eval/{row['task']}" + (f"/{row['start']}" if "start" in row else "")
        numbers = {key: value for key, value in row.items() if isinstance(value, float)}
        logger.scalars({f"{tag}/{key}": value for key, value in numbers.items()}, step)
    logger.close()
    write_json(rows, run_dir / "eval.json")
    return {"step": step, "updates": agent.updates, "checkpoint": final, "eval": rows}
