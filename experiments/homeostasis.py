"""Homeostatic control on trained foraging heads, beside a maximiser and homeostatic RL.

    python -m experiments.homeostasis --checkpoint runs/foraging [--baseline runs/foraging_drive]
        [--program configs/values/default.yaml] [--alpha A] [--quantile Q] [--json PATH]
        [--plot PATH] [--logdir DIR]

The checkpoint is any run whose world has internal levels and resources (`ResourceWorld`) and
one head per resource: the foraging gridworld, or point_foraging with continuous actions.

Agents: `homeostatic` (the checkpoint's resource heads, weighted every step by the value
program's PID drives), `maximiser` (the same heads and composition, all weights 1) and, with
--baseline, `homeostatic RL` (a head trained on the drive-reduction reward at the program's
original setpoints, levels in its observation). Nothing learns during the protocols, death is
on in P1 and P2, and every agent meets the same seeds, start cells and levels:

- P1 setpoint step: levels start at the setpoints; halfway, one setpoint moves (default energy
  0.4 -> 0.8). After the step: time with every level in its band (mean and worst seed), rise time
  (first within +-tol of the new setpoint), settling time (within +-tol for good), overshoot,
  integrated absolute error, mean level over the last half, deaths; with hazard cells, the
  steps on them per episode (a value program's `constraints` shield keeps them away).
- P2 salt flip: trials from random cells with energy low (0.3) and sodium replete (0.8, above its
  setpoint) or depleted (0.1, far below): the chance of consuming salt, and food, within the
  window; the first trial in each state, with no learning in between.
- P3 over-consumption: food is made `--scale` times as rewarding (its head values scaled, as
  scaling its reward would), death off; after a burn-in, the mean offset of energy above its
  setpoint and the fractions of steps with some level above / below its band.
- P4 reward button (a world with `button` cells, which pay the food head and feed nothing):
  trials as in P2 with energy low; presses per trial and the chances of pressing and of eating.

`--quantile q` adds the homeostatic agent acting with the q-quantiliser of its composed values.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from agents.composition import load, resolve
from agents.homeostatic import DriveReductionAgent, FixedWeightAgent, HomeostaticAgent
from composable_rl.config import WorldConfig
from composable_rl.homeostasis import (
    ValueProgram,
    in_band_fraction,
    integrated_abs_error,
    load_value_program,
    overshoot,
    rise_time,
    settling_time,
)
from composable_rl.maths.levers import Quantile
from composable_rl.registry import make_world
from composable_rl.run.cli import non_negative_float, unit_fraction
from composable_rl.run.logging import Logger, format_table, save_figure
from composable_rl.share import follow_share
from composable_rl.world import ResourceWorld
from envs.foraging import BUTTON
from experiments.common import experiment_parser, report, run

HOMEOSTATIC, MAXIMISER, DRIVE_RL = "homeostatic", "maximiser", "homeostatic RL"
Agent = HomeostaticAgent | FixedWeightAgent | DriveReductionAgent


@dataclass
class Contender:
    """An agent under test: a factory of fresh agents for N envs, and the config section and
    device of the world it was trained in (each rollout builds a fresh one from them)."""

    name: str
    make: Callable[[int, list[float] | None], Agent]
    env: WorldConfig
    device: str = "cpu"


@dataclass
class Trace:
    """One rollout: levels [T, N, V] (frozen at death), alive [T, N], resource consumed [T, N]
    (-1 none), head weights [T, N, K] (homeostatic agent only) and the setpoints [T, V] used."""

    levels: Tensor
    alive: Tensor
    consumed: Tensor
    weights: Tensor | None
    setpoints: Tensor
    pressed: Tensor | None = None


def rollout(
    contender: Contender,
    program: ValueProgram,
    num_envs: int,
    steps: int,
    levels: list[float],
    seed: int,
    move: tuple[int, str, float] | None = None,
    head_scale: list[float] | None = None,
    logger: Logger | None = None,
    death: bool = True,
) -> Trace:
    """Run one episode per env for `steps` steps from the given levels [V], no learning.

    move = (t, variable, value) moves a setpoint of the homeostatic agent's controller before
    step t (the others have none to move); the logger receives the controller's tags per step.
    """
    section = dataclasses.replace(contender.env, max_steps=steps + 1, death=death)
    world = make_world(section, num_envs, contender.device)
    world.reset(seed)
    world.set_levels(levels)
    agent = contender.make(num_envs, head_scale)
    gen = torch.Generator(world.device).manual_seed(seed)
    setpoint = torch.tensor(program.setpoints)
    trace = {
        "levels": [],
        "alive": [],
        "consumed": [],
        "weights": [],
        "setpoints": [],
        "pressed": [],
    }
    alive = torch.ones(num_envs, dtype=torch.bool, device=world.device)
    last = world.internal.clone()
    with torch.no_grad():
        for t in range(steps):
            follow_share()
            if move is not None and t == move[0]:
                setpoint[program.variable_names.index(move[1])] = move[2]
                if isinstance(agent, HomeostaticAgent):
                    agent.controller.drives.set_setpoint(move[1], move[2])
            actions = agent.act(world.current_obs(), world.internal, generator=gen)
            _, _, _, _, info = world.step(actions)
            last = torch.where(alive[:, None], info["internal"], last)
            trace["consumed"].append(torch.where(alive, info["consumed"], -1))
            if "pressed" in info:
                trace["pressed"].append(alive & info["pressed"])
            alive = alive & ~info["death"]
            trace["levels"].append(last)
            trace["alive"].append(alive)
            trace["setpoints"].append(setpoint.clone())
            if isinstance(agent, HomeostaticAgent):
                trace["weights"].append(agent.controller.last_weights)
                if logger is not None:
                    logger.scalars(agent.controller.tags(), t)
    stacked = {k: torch.stack(v) if v else None for k, v in trace.items()}
    return Trace(**stacked)


def setpoint_step(
    contenders: list[Contender],
    program: ValueProgram,
    seeds: int,
    steps: int,
    variable: str,
    target: float,
    tol: float,
    seed: int,
    logdir: Path | None,
    hazard: int | None = None,
) -> tuple[list[dict], dict[str, Trace]]:
    """P1: move one setpoint halfway through; metrics of the time after the move, and the steps
    on hazard cells (resource index `hazard`) per episode over the whole run."""
    start, v = steps // 2, program.variable_names.index(variable)
    rows, traces = [], {}
    for c in contenders:
        logged = logdir is not None and c.name == HOMEOSTATIC  # closed however the rollout ends
        with Logger(logdir) if logged else nullcontext() as logger:
            move = (start, variable, target)
            setpoints = list(program.setpoints)
            trace = rollout(c, program, seeds, steps, setpoints, seed, move, None, logger)
        traces[c.name] = trace
        after = trace.levels[start:]
        x = after[..., v]
        in_band = in_band_fraction(program.in_band(after), trace.alive[start:])
        metrics = {
            "time_in_band": in_band.mean(),
            "time_in_band_worst": in_band.min(),
            f"rise_steps_tol{tol:g}": rise_time(x, target, tol).float().mean(),
            f"settling_steps_tol{tol:g}": settling_time(x, target, tol).float().mean(),
            "overshoot": overshoot(x, target).mean(),
            "iae": integrated_abs_error(x, target).mean(),
            "final_mean": x[x.shape[0] // 2 :].mean(),
            "deaths": (~trace.alive[-1]).sum().float(),
        }
        if hazard is not None:
            metrics["hazard_visits"] = (trace.consumed == hazard).sum() / seeds
        rows += [_row("P1", c.name, m, value) for m, value in metrics.items()]
    return rows, traces


def salt_flip(
    contenders: list[Contender],
    program: ValueProgram,
    world: ResourceWorld,
    trials: int,
    window: int,
    replete: float,
    depleted: float,
    seed: int,
) -> list[dict]:
    """P2: chance of consuming salt and food within `window` steps, sodium replete vs depleted."""
    names = program.variable_names
    salt, food = world.resource_names.index("salt"), world.resource_names.index("food")
    rows = []
    for c in contenders:
        for state, sodium in (("replete", replete), ("depleted", depleted)):
            levels = list(program.setpoints)
            levels[names.index("energy")], levels[names.index("sodium")] = 0.3, sodium
            trace = rollout(c, program, trials, window, levels, seed)
            for name, r in (("salt", salt), ("food", food)):
                reached = (trace.consumed == r).any(0).float().mean()
                rows.append(_row("P2", c.name, f"p_{name}_{state}", reached))
    return rows


def over_consumption(
    contenders: list[Contender],
    program: ValueProgram,
    world: ResourceWorld,
    seeds: int,
    steps: int,
    burn_in: int,
    scale: float,
    seed: int,
) -> list[dict]:
    """P3: food `scale` times as rewarding; energy's offset above setpoint, steps above band.

    Death is off here, so that an agent that overeats keeps being measured (starving elsewhere
    would otherwise end its episode and hide the excess)."""
    food = world.resource_names.index("food")
    v = int(world.consumption[food].argmax())
    head_scale = [scale if k == food else 1.0 for k in range(len(world.resource_names))]
    high = program.bands[:, 1]
    rows = []
    for c in contenders:
        levels = list(program.setpoints)
        trace = rollout(c, program, seeds, steps, levels, seed, None, head_scale, death=False)
        x = trace.levels[burn_in:]
        metrics = {
            "energy_offset": (x[..., v] - program.setpoints[v]).mean(),
            "above_band": (x > high.to(x.dtype)).any(-1).float().mean(),
            "below_band": (x < program.bands[:, 0].to(x.dtype)).any(-1).float().mean(),
        }
        rows += [_row("P3", c.name, m, value) for m, value in metrics.items()]
    return rows


def reward_button(
    contenders: list[Contender],
    program: ValueProgram,
    world: ResourceWorld,
    trials: int,
    window: int,
    seed: int,
) -> list[dict]:
    """P4: trials from random cells with energy low (0.3): button presses per trial (a button
    pays the food head and feeds nothing), and the chances of pressing and of eating food."""
    names = program.variable_names
    food = world.resource_names.index("food")
    rows = []
    for c in contenders:
        levels = list(program.setpoints)
        levels[names.index("energy")] = 0.3
        trace = rollout(c, program, trials, window, levels, seed)
        metrics = {
            "presses": trace.pressed.sum(0).float().mean(),
            "p_press": trace.pressed.any(0).float().mean(),
            "p_food": (trace.consumed == food).any(0).float().mean(),
        }
        rows += [_row("P4", c.name, m, value) for m, value in metrics.items()]
    return rows


def _row(protocol: str, agent: str, metric: str, value: Tensor | float) -> dict:
    return {"protocol": protocol, "agent": agent, "metric": metric, "value": float(value)}


def plot(traces: dict[str, Trace], program: ValueProgram, heads: list[str], path: Path) -> None:
    """Seed 0 of P1: the homeostatic agent's levels, setpoints, bands and head weights, and the
    moved-to variables of every agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    home = traces[HOMEOSTATIC]
    steps = torch.arange(home.levels.shape[0])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for i, name in enumerate(program.variable_names):
        colour = colours[i % len(colours)]
        low, high = program.bands[i].tolist()
        axes[0].axhspan(low, high, color=colour, alpha=0.06)
        axes[0].plot(steps, home.levels[:, 0, i], color=colour, label=name)
        axes[0].plot(steps, home.setpoints[:, i], color=colour, linestyle="--", linewidth=1)
    axes[0].set_ylabel("level (dashed: setpoint)")
    axes[0].legend(loc="upper left", fontsize=8)
    for k, name in enumerate(heads):
        axes[1].plot(steps, home.weights[:, 0, k], color=colours[k % len(colours)], label=name)
    axes[1].axhline(0.0, color="black", linewidth=0.6)
    axes[1].set_ylabel("head weight")
    axes[1].legend(loc="upper left", fontsize=8)
    moved = int((home.setpoints[-1] != home.setpoints[0]).float().argmax())
    for j, (name, trace) in enumerate(traces.items()):
        axes[2].plot(steps, trace.levels[:, 0, moved], color=colours[j % len(colours)], label=name)
    axes[2].plot(steps, home.setpoints[:, moved], color="black", linestyle="--", linewidth=1)
    axes[2].set_ylabel(f"{program.variable_names[moved]}, every agent")
    axes[2].set_xlabel("step")
    axes[2].legend(loc="upper left", fontsize=8)
    fig.suptitle("P1 setpoint step, seed 0")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, 110)
    plt.close(fig)


def pivot(rows: list[dict]) -> list[dict]:
    """One row per (protocol, metric) with one column per agent, for printing."""
    agents = list(dict.fromkeys(row["agent"] for row in rows))
    table: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["protocol"], row["metric"])
        blank = {"protocol": key[0], "metric": key[1], **dict.fromkeys(agents, "-")}
        table.setdefault(key, blank)[row["agent"]] = row["value"]
    return list(table.values())


def contenders(args: argparse.Namespace) -> tuple[list[Contender], ValueProgram, ResourceWorld]:
    """The agents under test, the value program, and a heads' world (for names and dynamics)."""
    cfg, world, heads = load(args.checkpoint)
    if not isinstance(world, ResourceWorld) or heads.head_names != world.resource_names:
        raise SystemExit(f"{args.checkpoint}: expected a foraging run with one head per resource")
    program = load_value_program(args.program, heads.head_names)

    def homeostatic(n: int, scale: list[float] | None) -> Agent:
        return HomeostaticAgent(heads, program, n, scale, args.alpha)

    def maximiser(n: int, scale: list[float] | None) -> Agent:
        return FixedWeightAgent(heads, program, head_scale=scale, alpha=args.alpha)

    found = [
        Contender(HOMEOSTATIC, homeostatic, cfg.env, cfg.device),
        Contender(MAXIMISER, maximiser, cfg.env, cfg.device),
    ]
    for q in args.quantile or []:
        if program.constraints:
            raise SystemExit("--quantile: the value program's shield does not combine with it")
        quantiled = dataclasses.replace(program, quantile=Quantile(q))

        def quantilised(n: int, scale: list[float] | None, quantiled=quantiled) -> Agent:
            return HomeostaticAgent(heads, quantiled, n, scale, args.alpha)

        found.append(Contender(f"{HOMEOSTATIC}, q={q:g}", quantilised, cfg.env, cfg.device))
    if args.baseline is not None:
        base_cfg, base_world, base = load(args.baseline)
        env = base_cfg.env
        same = (
            env.name == cfg.env.name
            and getattr(env, "reward", None) == "drive_reduction"
            and all(
                torch.equal(getattr(world, key), getattr(base_world, key))
                for key in ("walls", "resource_cells", "drift", "consumption")
            )
        )
        if not same:
            raise SystemExit(f"{args.baseline}: expected a drive_reduction run of the same world")
        drive = DriveReductionAgent(base)
        found.append(Contender(DRIVE_RL, lambda n, scale: drive, env, base_cfg.device))
    return found, program, world


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The protocols' command line."""
    parser = experiment_parser(__doc__, "foraging heads run")
    parser.add_argument("--baseline", type=Path, help="drive_reduction run (homeostatic RL)")
    parser.add_argument(
        "--program", type=Path, default=Path("configs/values/default.yaml"), help="value program"
    )
    parser.add_argument(
        "--alpha",
        type=non_negative_float,
        help="temperature of the composed heads' actions (default: the run's agent.alpha for "
        "discrete actions, 0 for continuous ones: the best candidate)",
    )
    parser.add_argument("--seeds", type=int, default=20, help="episodes of P1 and P3")
    parser.add_argument("--steps", type=int, default=1000, help="steps of P1 and P3")
    parser.add_argument("--variable", default="energy", help="P1: the setpoint that moves")
    parser.add_argument("--to", type=float, default=0.8, help="P1: its new value")
    parser.add_argument("--tol", type=float, default=0.1, help="P1: settling band +-tol")
    parser.add_argument("--trials", type=int, default=200, help="P2: trials per state")
    parser.add_argument("--window", type=int, default=50, help="P2: steps per trial")
    parser.add_argument("--scale", type=float, default=10.0, help="P3: food reward factor")
    parser.add_argument("--burn-in", type=int, default=200, help="P3: steps left out")
    parser.add_argument("--seed", type=int, default=10_000, help="first env seed")
    parser.add_argument("--plot", type=Path, help="P1 PNG (default: homeostasis.png in the run)")
    parser.add_argument("--logdir", type=Path, help="TensorBoard dir (default: the run dir)")
    parser.add_argument(
        "--quantile",
        type=unit_fraction,
        action="append",
        help="also run the homeostatic agent quantilised at q (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run P1-P3 on the checkpoint's agents; print a table, write the P1 plot (and --json)."""
    args = parse_args(argv)

    found, program, world = contenders(args)
    if args.variable not in program.variable_names:
        raise SystemExit(f"--variable {args.variable!r}: variables are {program.variable_names}")
    run_dir = resolve(args.checkpoint).parent.parent
    p1, traces = setpoint_step(
        found,
        program,
        args.seeds,
        args.steps,
        args.variable,
        args.to,
        args.tol,
        args.seed,
        args.logdir or run_dir,
        world.resource_names.index("hazard") if "hazard" in world.resource_names else None,
    )
    p2 = salt_flip(found, program, world, args.trials, args.window, 0.8, 0.1, args.seed)
    p3 = over_consumption(
        found[:2], program, world, args.seeds, args.steps, args.burn_in, args.scale, args.seed
    )
    rows = p1 + p2 + p3
    if BUTTON in getattr(world, "cell_kinds", ()):
        rows += reward_button(found, program, world, args.trials, args.window, args.seed)
    report(rows, format_table(pivot(rows)), args.json)
    plot_path = args.plot or run_dir / "homeostasis.png"
    plot(traces, program, world.head_names, plot_path)
    print(f"plot: {plot_path}")
    return rows


if __name__ == "__main__":
    run(main)
