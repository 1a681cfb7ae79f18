"""The training loop: one multi-head learner on any registered world.

Every env slot pursues its own behaviour task (a base head or a weight vector over the heads),
while all heads learn off-policy from the shared tensor replay. The run directory holds the
resolved config, TensorBoard logs, checkpoints and the final evaluation. Learners come from
`agents.factory`, the saved run state from `agents.run_state`, the logged scalars from
`agents.log_window`.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path

import torch
from tqdm import tqdm

from agents.factory import (
    build,
    build_world,
    check_device,
    goal_warnings,
    resolve,
    schedule_warnings,
    wandering_slots,
)
from agents.heads import HeadsAgent
from agents.log_window import LogWindow
from agents.memory import check_memory
from agents.run_dir import claim_run_dir, hold_run_dir
from agents.run_state import restore_run_state, resume_checkpoint, run_state
from composable_rl.config import Config, ConfigError, save_config, to_dict, validate
from composable_rl.evaluation import exact_head_rows, head_return_rows
from composable_rl.registry import world_entry
from composable_rl.replay import TensorReplay
from composable_rl.run.capture import CapturedStep
from composable_rl.run.checkpoint import (
    checkpoint_dir,
    nonfinite,
    prune_checkpoints,
    save_checkpoint,
)
from composable_rl.run.cli import OutputWriteError, folder_problem, full_disk
from composable_rl.run.interrupts import StopRequests
from composable_rl.run.logging import EPISODIC_RETURN, SPS, Logger, write_json
from composable_rl.run.runtime import CoreShare
from composable_rl.tasks import TaskStream
from composable_rl.world import TabularWorld

TASK_BLOCK = 64  # training steps of behaviour tasks drawn per call


def epsilon_at(cfg: Config, step: int) -> float:
    """Linearly decayed epsilon of the behaviour policy (`cfg` resolved)."""
    start, end = cfg.tasks.epsilon_start, cfg.tasks.epsilon_end
    horizon = max(1.0, cfg.tasks.epsilon_fraction * cfg.total_steps)
    frac = min(1.0, step / horizon)
    return start + frac * (end - start)


def lr_at(cfg: Config, step: int) -> float:
    """Learning rate of the updates at env step `step`: agent.lr, or with agent.lr_end set,
    linearly from agent.lr at step 0 to agent.lr_end at total_steps."""
    lr, end = cfg.agent.lr, cfg.agent.lr_end
    if end is None:
        return lr
    return lr + min(1.0, step / cfg.total_steps) * (end - lr)


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


def check_run_dir(run_dir: Path) -> None:
    """Refuse, before any work, a run directory that cannot be created or written."""
    if problem := folder_problem(run_dir):
        raise ConfigError(
            f"runs_dir: cannot create the run directory {run_dir}: {problem}", "runs_dir"
        )


def train(
    cfg: Config,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    share: CoreShare | None = None,
    overwrite: bool = False,
) -> dict:
    """Runs (or resumes) training in `run_dir`; returns the final evaluation and counters.

    The run holds `run_dir`'s lock throughout (`agents.run_dir`): a second process is refused
    with RunDirBusy. A new run refuses a directory that already holds files (a ConfigError)
    unless `overwrite` replaces them.

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
        validate(cfg)
        check_run_dir(run_dir)
        if resume and not run_dir.is_dir():
            raise FileNotFoundError(f"no run directory at {run_dir}")
        check_device(cfg.device)
        check_memory(cfg)
        with hold_run_dir(run_dir), ExitStack() as opened:
            replace = claim_run_dir(run_dir, resume, overwrite)
            return _train(cfg, run_dir, resume, progress, command, stop, share, replace, opened)


def open_run_dir(cfg: Config, run_dir: Path, command: str | None, replace: bool) -> Logger:
    """Create the run directory (first removing what it holds when `replace`), append `command`
    to its command.txt, write the resolved config and start its TensorBoard log (with the
    config as a table); a full disk is an OutputWriteError."""
    if replace:
        shutil.rmtree(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"runs_dir: cannot create the run directory {run_dir}: {err}") from err
    try:
        if command is not None:
            with (run_dir / "command.txt").open("a") as f:
                f.write(command + "\n")
        save_config(cfg, run_dir / "config.yaml")
    except OSError as err:
        if (reason := full_disk(err)) is None:
            raise
        raise OutputWriteError(f"cannot write to the run directory {run_dir}: {reason}") from err
    logger = Logger(run_dir)
    logger.hparams_table(to_dict(cfg))
    return logger


def _train(
    cfg: Config,
    run_dir: Path,
    resume: bool,
    progress: bool,
    command: str | None,
    stop: StopRequests,
    share: CoreShare | None,
    replace: bool,
    opened: ExitStack,
) -> dict:
    """The body of `train`, with SIGINT and SIGTERM already caught by `stop` and the run
    directory held. The TensorBoard log joins `opened`, which closes it however the run ends
    (an error too: its writer thread would otherwise go on appending to the run directory)."""
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    world, agent = build(cfg)
    cfg = resolve(cfg, world)  # the values the run uses, saved with it
    for warning in schedule_warnings(cfg) + goal_warnings(cfg, world):
        print(warning, file=sys.stderr)
    spec, actions_spec = world.observation_spec, world.action_spec
    world_step = CapturedStep(world) if cfg.device_graphs else world.step
    n, k, dev = world.num_envs, len(world.head_names), cfg.device
    step, saved, last_checkpoint = 0, None, None
    if resume:
        last_checkpoint, meta, saved = resume_checkpoint(
            run_dir, agent, getattr(world, "goal_names", [])
        )
        step, agent.updates = meta["step"], meta.get("updates", 0)
        exact = ", with its replay and random-number state" if saved is not None else ""
        print(f"resuming from {last_checkpoint} (step {step:,}){exact}", file=sys.stderr)
        agent.set_lr(lr_at(cfg, step))  # the config's rate, not the one saved with the optimizer
    logger = opened.enter_context(open_run_dir(cfg, run_dir, command, replace))

    # Replay, behaviour tasks and the open episodes: fresh, or as the checkpoint left them.
    gen = torch.Generator(dev).manual_seed(cfg.seed + 7919 * step)
    replay = TensorReplay(
        cfg.replay.capacity,
        spec.shape,
        k,
        spec.dtype,
        dev,
        actions_spec.shape,
        actions_spec.dtype,
        spec.stored_dtype,
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
    wanderers = wandering_slots(cfg, n)  # the first slots act uniformly at random
    wandering = torch.arange(n, device=dev) < wanderers
    wander_rows = wandering.view(n, *[1] * len(actions_spec.shape))
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

    window = LogWindow(world.head_names, dev, step)
    first_bad = torch.full((), -1, dtype=torch.long, device=dev)  # step of a non-finite loss
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

    def check_finite(weights: bool) -> None:
        # a log point reads the loss flag only (a non-finite weight makes the next loss so);
        # a checkpoint also scans every weight, so that none holds a NaN
        bad = int(first_bad)
        if bad >= 0 or (weights and nonfinite(agent.named_parameters())):
            bar.close()
            raise TrainingDiverged(
                divergence_message(cfg, bad if bad >= 0 else step, step, last_checkpoint)
            )

    def checkpoint() -> Path:
        nonlocal last_checkpoint, next_save
        check_finite(weights=True)
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
        path = save_checkpoint(checkpoint_dir(run_dir, step), agent, agent.optimizers, meta, state)
        prune_checkpoints(run_dir, cfg.checkpoint.keep_last)
        last_checkpoint = path
        if minutes > 0:
            next_save = time.monotonic() + minutes * 60
        return path

    # a fixed torch_threads without a share given to train keeps its threads
    sharing = share or (CoreShare() if cfg.torch_threads == 0 else None)
    # a run that starts or ends beside this one, or another program's load, changes its share
    # within a moment, so that no stretch of the run spins more threads than cores: it is
    # followed before each step and each update (a step of many updates can take seconds)
    follow = sharing.follow if sharing is not None else lambda: None
    with sharing or nullcontext():
        while step < cfg.total_steps and stop.signal is None:
            follow()
            # act, step every env slot, store the transitions
            epsilon = epsilon_at(cfg, step)
            actions = agent.act(obs, task_w, epsilon=epsilon, generator=gen, behaviour=True)
            if wanderers:
                uniform = actions_spec.sample(n, gen, dev).to(actions.dtype)
                actions = torch.where(wander_rows, uniform, actions)
            next_obs, reward, terminated, truncated, info = world_step(actions)
            replay.add(obs, actions, reward, terminated, info["final_obs"], info.get("goal"))
            # finished episodes: count their returns, draw the slots' next behaviour tasks
            ep_return += (reward * task_w).sum(1)
            done = terminated | truncated
            window.episodes(done & ~wandering, ep_return, task_id)
            ep_return.masked_fill_(done, 0.0)
            new_w, new_id = next(tasks)
            task_w = torch.where(done[:, None], new_w, task_w)
            task_id = torch.where(done, new_id, task_id)
            obs = next_obs
            step += n
            bar.update(n)

            # learn: replay_ratio samples per env step, in updates of batch_size
            if len(replay) >= learning_starts:
                credit += updates_per_step
                if cfg.agent.lr_end is not None and credit >= 1.0:
                    agent.set_lr(lr_at(cfg, step))
                while credit >= 1.0:
                    follow()
                    metrics = agent.update(replay.sample(cfg.replay.batch_size, gen))
                    window.update(metrics)
                    bad_now = (first_bad < 0) & ~torch.isfinite(metrics["td_loss"])
                    first_bad = torch.where(bad_now, step, first_bad)
                    credit -= 1.0

            if step - window.step >= cfg.log_every or step >= cfg.total_steps:
                scalars, sps = window.close(step)  # the log point's reads begin here
                check_finite(weights=False)
                scalars.update(
                    {
                        SPS: sps,
                        "charts/threads": torch.get_num_threads(),
                        "charts/epsilon": epsilon_at(cfg, step),
                        "charts/lr": lr_at(cfg, step),
                        "charts/updates": agent.updates,
                    }
                )
                logger.scalars(scalars, step)
                bar.set_postfix(
                    sps=f"{sps:,.0f}",
                    ret=f"{scalars.get(EPISODIC_RETURN, 0):.2f}",
                    upd=agent.updates,
                )

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
            raise TrainingInterrupted(stop.signal, step, final)
        follow()  # the evaluation keeps the run's share too
        rows = evaluate_run(agent, cfg, cfg.eval_episodes) if cfg.eval_episodes > 0 else []
    for row in rows:
        tag = f"eval/{row['task']}" + (f"/{row['start']}" if "start" in row else "")
        numbers = {key: value for key, value in row.items() if isinstance(value, float)}
        logger.scalars({f"{tag}/{key}": value for key, value in numbers.items()}, step)
    write_json(rows, run_dir / "eval.json")
    return {"step": step, "updates": agent.updates, "checkpoint": final, "eval": rows}
