"""Train one multi-head soft-Q network on a batched gridworld.

    python train.py --config configs/quickstart.yaml [--set key=value ...]
    python train.py --resume runs/<run-name> [--set total_steps=400000]

Every env slot pursues its own behaviour task (a base head or a weight vector over the heads),
while all heads learn off-policy from the shared tensor replay. The run directory holds the
resolved config, the command line, TensorBoard logs, checkpoints and the final evaluation.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from agents.soft_q import MultiHeadSoftQ
from composable_rl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from composable_rl.config import (
    Config,
    ConfigError,
    EnvConfig,
    ForagingConfig,
    describe,
    load_config,
    save_config,
    to_dict,
)
from composable_rl.functional import wrong_goal_penalty
from composable_rl.homeostasis import load_value_program
from composable_rl.logging import Logger, head_tags
from composable_rl.replay import TensorReplay
from composable_rl.runtime import configure_cpu
from composable_rl.tasks import task_stream
from envs.evaluation import evaluate, evaluate_levels
from envs.foraging import DEFAULT_RESOURCES, DriveReductionWorld
from envs.temporal import OfficeTask, evaluate_temporal
from envs.worlds import World, make_world

TASK_BLOCK = 64  # training steps of behaviour tasks drawn per call


def world_kwargs(env: EnvConfig, device: str) -> dict:
    """`envs.worlds.make_world` arguments of the world the env section describes (no num_envs)."""
    common = {"max_steps": env.max_steps, "observation": env.observation, "device": device}
    if env.name == "foraging":
        return {**foraging_kwargs(env.foraging), **common}
    common.update(r_max=env.r_max, r_min=env.r_min, step_reward=env.step_reward)
    if env.name == "office" and env.task:
        return {"name": "office_task", "task": env.task, "starts": env.starts, **common}
    if env.name == "office":
        return {"name": "office", "bound_heads": env.bound_heads, "starts": env.starts, **common}
    return {
        "name": "object_rooms",
        "layout": env.layout,
        "colours": tuple(env.colours),
        "shapes": tuple(env.shapes),
        "heads": list(env.heads) or None,
        "object_positions": env.object_positions,
        "bound_heads": env.bound_heads,
        **common,
    }


def foraging_kwargs(cfg: ForagingConfig) -> dict:
    """`make_world` arguments of a foraging world: resource heads, or the drive-reduction head
    with the setpoints of the configured value program."""
    kwargs = {
        "name": "foraging",
        "initial_range": tuple(cfg.initial_range),
        "regrow": cfg.regrow,
        "death": cfg.death,
        "viable_low": cfg.viable_low,
        "viable_high": cfg.viable_high,
    }
    for key in ("resources", "drift", "consumption"):
        if getattr(cfg, key) is not None:
            kwargs[key] = getattr(cfg, key)
    if cfg.reward == "resources":
        return kwargs
    program = load_value_program(cfg.value_program, list(cfg.resources or DEFAULT_RESOURCES))
    setpoints = dict(zip(program.variable_names, program.setpoints, strict=True))
    return {
        **kwargs,
        "name": "foraging_drive",
        "setpoints": setpoints,
        "drive_n": cfg.drive_n,
        "drive_m": cfg.drive_m,
        "reward_scale": cfg.reward_scale,
        "levels_bins": cfg.levels_bins,
    }


def world_penalty(cfg: Config, free_cells: int) -> float:
    """The configured wrong-goal penalty, or the default of `fn.wrong_goal_penalty`.

    The horizon is the shorter of the free-cell count and the effective 1 / (1 - gamma).
    """
    if cfg.agent.penalty is not None:
        return cfg.agent.penalty
    horizon = min(free_cells, 1.0 / (1.0 - cfg.agent.gamma))
    env = cfg.env
    return wrong_goal_penalty(env.r_min, env.r_max, env.step_reward, horizon)


def build(cfg: Config) -> tuple[World, MultiHeadSoftQ]:
    """The batched training world and a fresh agent whose heads match the world's rewards."""
    world = make_world(world_kwargs(cfg.env, cfg.device), cfg.env.num_envs)
    if cfg.agent.encoder == "cnn" and cfg.env.observation != "planes":
        raise ConfigError("agent.encoder: cnn needs env.observation: planes")
    fixed = cfg.tasks.fixed_weights
    if fixed is not None and len(fixed) != world.num_heads:
        raise ConfigError(
            f"tasks.fixed_weights: need one weight per head {world.head_names}, got {fixed}"
        )
    if cfg.agent.world_values and not world.num_goals:
        raise ConfigError(f"agent.world_values: the {cfg.env.name} world has no goals")
    if cfg.env.name == "foraging" and cfg.env.foraging.regrow and cfg.eval_episodes:
        raise ConfigError("env.foraging.regrow: the final evaluation's exact oracle needs 0")
    if isinstance(world, DriveReductionWorld) and cfg.env.observation != "indices":
        raise ConfigError("env.observation: drive_reduction needs indices (it sees its levels)")
    slots = getattr(world, "goal_slots", None) if cfg.agent.goal_conditioned else None
    if cfg.agent.goal_conditioned and slots is None:
        raise ConfigError(
            "agent.goal_conditioned: needs env.name: object_rooms with env.observation: indices"
        )
    sparse = world.num_features if cfg.env.observation == "indices" else 0
    goals = world.num_goals if cfg.agent.world_values else 0
    agent = MultiHeadSoftQ(
        world.obs_shape,
        world.num_actions,
        world.head_names,
        cfg.agent,
        sparse,
        goals,
        world_penalty(cfg, world.free_cells.numel()),
        slots,
    )
    return world, agent.to(cfg.device)


def epsilon_at(cfg: Config, step: int) -> float:
    """Linearly decayed epsilon of the behaviour policy."""
    horizon = max(1.0, cfg.tasks.epsilon_fraction * cfg.total_steps)
    frac = min(1.0, step / horizon)
    return cfg.tasks.epsilon_start + frac * (cfg.tasks.epsilon_end - cfg.tasks.epsilon_start)


def evaluate_run(agent: MultiHeadSoftQ, world: World, cfg: Config, episodes: int) -> list[dict]:
    """Final evaluation: every head against the exact oracle; a temporal task's success and steps
    against the product-BFS oracle from the standard start and from random starts; or, for the
    drive-reduction head, its return and the time its levels spend in the value program's bands."""
    if isinstance(world, DriveReductionWorld):
        program = load_value_program(cfg.env.foraging.value_program, world.resource_names)
        kwargs = world_kwargs(cfg.env, cfg.device)
        greedy = partial(agent.act, alpha=0.0)
        row = evaluate_levels(kwargs, greedy, program.bands, episodes)
        return [{"task": "drive_reduction", **row}]
    if not isinstance(world, OfficeTask):
        return evaluate_heads(agent, cfg, episodes)
    weights = torch.ones(1, 1, device=cfg.device)

    def policy(cells: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        obs = world.encode(cells, states)
        return agent.act(obs, weights.expand(len(cells), 1), alpha=0.0)

    return [
        evaluate_temporal(world.task, policy, starts, episodes, device=cfg.device)
        for starts in ("standard", "random")
    ]


def evaluate_heads(agent: MultiHeadSoftQ, cfg: Config, episodes: int) -> list[dict]:
    """Greedy return of every single-head task, normalised against the exact oracle."""
    kwargs = world_kwargs(cfg.env, cfg.device)
    rows = []
    for k, name in enumerate(agent.head_names):
        weights = torch.nn.functional.one_hot(torch.tensor(k), len(agent.head_names)).float()
        result = evaluate(kwargs, lambda o, w: agent.act(o, w, alpha=0.0), weights, episodes)
        rows.append({"task": name, **result})
    return rows


def format_table(rows: list[dict]) -> str:
    """Fixed-width text table of result rows (columns: the keys of the first row)."""
    cols = list(rows[0])
    text = [
        [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols]
        for row in rows
    ]
    widths = [max(len(c), 8, *(len(line[i]) for line in text)) for i, c in enumerate(cols)]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True))
        for line in [cols, *text]
    )


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


def train(cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Runs (or resumes) training in `run_dir`; returns the final evaluation and counters."""
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    world, agent = build(cfg)
    step = 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise FileNotFoundError(f"no checkpoint to resume from under {run_dir}/checkpoints")
        meta = load_checkpoint(
            ckpt, agent, agent.optimizer, head_names=agent.head_names, goal_names=world.goal_names
        )
        step, agent.updates = meta["step"], meta["updates"]
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    logger = Logger(run_dir)
    logger.hparams_table(to_dict(cfg))

    n, k, dev = cfg.env.num_envs, world.num_heads, cfg.device
    gen = torch.Generator(dev).manual_seed(cfg.seed + 7919 * step)
    replay = TensorReplay(cfg.replay.capacity, world.obs_shape, k, world.obs_dtype, dev)
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
            "goal_names": world.goal_names,
            "config": to_dict(cfg),
        }
        save_checkpoint(run_dir / "checkpoints" / f"step_{step}", agent, agent.optimizer, meta)

    while step < cfg.total_steps:
        actions = agent.act(obs, task_w, epsilon_at(cfg, step), generator=gen)
        next_obs, reward, terminated, truncated, info = world.step(actions)
        replay.add(obs, actions, reward, terminated, info["final_obs"], info["goal"])
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

    rows = evaluate_run(agent, world, cfg, cfg.eval_episodes) if cfg.eval_episodes > 0 else []
    for row in rows:
        tag = f"eval/{row['task']}" + (f"/{row['start']}" if "start" in row else "")
        numbers = {key: value for key, value in row.items() if isinstance(value, float)}
        logger.scalars({f"{tag}/{key}": value for key, value in numbers.items()}, step)
    logger.close()
    (run_dir / "eval.json").write_text(json.dumps(rows, indent=2))
    return {"step": step, "updates": agent.updates, "eval": rows}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="YAML experiment file (see configs/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. agent.lr=1e-3",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--help-config", action="store_true", help="list every config key")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_cpu()
    if args.help_config:
        print(describe())
        return
    if args.resume is None and args.config is None:
        sys.exit("train.py: give --config FILE or --resume RUN_DIR (see --help)")
    try:
        cfg = load_config(
            args.resume / "config.yaml" if args.resume else args.config, args.overrides
        )
    except ConfigError as err:
        sys.exit(f"train.py: config error: {err}")
    if args.resume is not None:
        run_dir = args.resume
    else:
        name = cfg.run_name or f"{args.config.stem}_{cfg.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(cfg.runs_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "command.txt").open("a") as f:
        f.write(shlex.join([sys.executable, *sys.argv]) + "\n")
    result = train(cfg, run_dir, resume=args.resume is not None, progress=not args.no_progress)
    print(f"run directory: {run_dir}")
    if result["eval"]:
        print(format_table(result["eval"]))


if __name__ == "__main__":
    main()
