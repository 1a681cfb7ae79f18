"""The training loop: one multi-head soft-Q agent on any registered world.

Every env slot pursues its own behaviour task (a base head or a weight vector over the heads),
while all heads learn off-policy from the shared tensor replay. The run directory holds the
resolved config, TensorBoard logs, checkpoints and the final evaluation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from agents.soft_q import MultiHeadSoftQ
from composable_rl.checkpoint import (
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from composable_rl.config import Config, ConfigError, save_config, to_dict
from composable_rl.evaluation import exact_head_rows, head_return_rows
from composable_rl.functional import wrong_goal_penalty
from composable_rl.logging import Logger, head_tags
from composable_rl.registry import make_world, world_entry
from composable_rl.replay import TensorReplay
from composable_rl.tasks import task_stream
from composable_rl.world import GoalWorld, TabularWorld, World

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


def build(cfg: Config) -> tuple[World, MultiHeadSoftQ]:
    """The batched training world and a fresh agent whose heads match the world's rewards."""
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
    agent = MultiHeadSoftQ(
        spec.shape,
        world.num_actions,
        world.head_names,
        cfg.agent,
        spec.num_features if spec.kind == "indices" else 0,
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


def evaluate_run(agent: MultiHeadSoftQ, cfg: Config, episodes: int) -> list[dict]:
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


def train(
    cfg: Config,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Runs (or resumes) training in `run_dir`; returns the final evaluation and counters.

    The run directory is created only once the world and agent are built, so a config that
    fails to build leaves nothing behind; `command` is appended to its command.txt.
    """
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    world, agent = build(cfg)
    spec = world.observation_spec
    step = 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise FileNotFoundError(f"no checkpoint to resume from under {run_dir}/checkpoints")
        goal_names = getattr(world, "goal_names", [])
        meta = load_checkpoint(
            ckpt, agent, agent.optimizer, head_names=agent.head_names, goal_names=goal_names
        )
        step, agent.updates = meta["step"], meta["updates"]
    run_dir.mkdir(parents=True, exist_ok=True)
    if command is not None:
        with (run_dir / "command.txt").open("a") as f:
            f.write(command + "\n")
    save_config(cfg, run_dir / "config.yaml")
    logger = Logger(run_dir)
    logger.hparams_table(to_dict(cfg))

    n, k, dev = world.num_envs, len(world.head_names), cfg.device
    gen = torch.Generator(dev).manual_seed(cfg.seed + 7919 * step)
    replay = TensorReplay(cfg.replay.capacity, spec.shape, k, spec.dtype, dev)
    updates_per_step = cfg.replay.replay_ratio * n / cfg.replay.batch_size
    learning_starts = min(cfg.replay.learning_starts, cfg.replay.capacity)

    obs = world.reset(seed=cfg.seed * 1_000_003 + step)
    tcfg = cfg.tasks
    tasks = task_stream(
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
    stats = EpisodeStats.zeros(k, dev)
    sums = {
        "td_loss": torch.zeros((), device=dev),
        "td_error": torch.zeros(k, device=dev),
        "q_mean": torch.zeros(k, device=dev),
        "entropy": torch.zeros((), device=dev),
    }
    n_updates, credit = 0, 0.0
    last_log, t_log, steps_at_log = step, time.perf_counter(), step
    bar = tqdm(
        total=cfg.total_steps,
        initial=step,
        unit="step",
        unit_scale=True,
        dynamic_ncols=True,
        mininterval=1.0,
        disable=not progress,
    )

    def checkpoint() -> None:
        meta = {
            "step": step,
            "updates": agent.updates,
            "head_names": world.head_names,
            "goal_names": getattr(world, "goal_names", []),
            "config": to_dict(cfg),
        }
        save_checkpoint(checkpoint_dir(run_dir, step), agent, agent.optimizer, meta)

    while step < cfg.total_steps:
        actions = agent.act(obs, task_w, epsilon_at(cfg, step), generator=gen)
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
                n_updates += 1
                credit -= 1.0

        if step - last_log >= cfg.log_every or step >= cfg.total_steps:
            now = time.perf_counter()
            sps = (step - steps_at_log) / max(now - t_log, 1e-9)
            counts = stats.counts.tolist()
            returns = stats.returns.tolist()
            scalars = {
                "charts/SPS": sps,
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
                        world.head_names, sums["td_error"] / n_updates, sums["q_mean"] / n_updates
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

        if (
            cfg.checkpoint_every
            and step // cfg.checkpoint_every > (step - n) // cfg.checkpoint_every
        ):
            checkpoint()
    bar.close()
    checkpoint()

    close = getattr(world, "close", None)
    if callable(close):
        close()
    rows = evaluate_run(agent, cfg, cfg.eval_episodes) if cfg.eval_episodes > 0 else []
    for row in rows:
        tag = f"eval/{row['task']}" + (f"/{row['start']}" if "start" in row else "")
        numbers = {key: value for key, value in row.items() if isinstance(value, float)}
        logger.scalars({f"{tag}/{key}": value for key, value in numbers.items()}, step)
    logger.close()
    (run_dir / "eval.json").write_text(json.dumps(rows, indent=2))
    return {"step": step, "updates": agent.updates, "eval": rows}
