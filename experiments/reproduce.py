"""Regenerate the results tables of docs/results.md from sweeps over seeds, as mean +- 95% CI (n).

    python -m experiments.reproduce [--quick] [--only SECTION ...] [--out runs/reproduce]

Every config behind a table trains as one Ray Tune sweep (`agents.sweep`: one-CPU trials side
by side, 5 seeds for runs under ten minutes, 3 for longer ones); then each trial's checkpoint
is evaluated as docs/results.md describes (all 63 Boolean tasks, linear zero-shot against
its seed's quickstart run, the Office skill machines, homeostasis P1-P3 against its seed's
homeostatic-RL run, linear zero-shot with continuous actions against the exact optimum of the
linear-quadratic world; Gymnasium runs by their own final evaluation). Numbers are means over
seeds with the half-width of the 95% Student-t interval and n. The tables go to
OUT/results.md; each trial keeps its normal run directory (TensorBoard, checkpoints,
eval.json) and its evaluation's JSON, so rerunning the command finishes an interrupted
reproduction without redoing what is done. `--quick` runs every section with tiny budgets and
two seeds: minutes, a check of the machinery, not of results.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from agents.composition import all_boolean_tasks, evaluate_task, load
from agents.sweep import (
    TIMING_FILE,
    Trial,
    is_done,
    over_seeds,
    run_sweep,
    save_spec,
    trial_dir,
    trial_table,
    write_summary,
)
from composable_rl.config import ConfigError
from composable_rl.run.cli import Parser, fail, file_problem, positive_float
from composable_rl.run.logging import format_table, write_json, write_text
from experiments import homeostasis, linear_continuous, linear_zero_shot, skill_machines
from experiments.common import run

QUICK_TRAIN = (
    "total_steps=6000",
    "replay.learning_starts=1000",
    "eval_episodes=10",
    "log_every=2000",
)


@dataclass(frozen=True)
class Section:
    """A config trained over seeds for the tables (`key` names its trials' group)."""

    key: str
    config: str
    seeds: int
    quick: tuple[str, ...] = ()


SECTIONS = (  # longest first, so that the short trials fill the cores at the end
    Section("boolean_rooms", "configs/boolean_rooms.yaml", 3, ("env.num_envs=32",)),
    Section("random_rooms", "configs/random_rooms.yaml", 5, ("env.num_envs=32",)),
    Section("lunar_lander", "configs/lunar_lander.yaml", 5),
    Section("quickstart_sf", "configs/quickstart_sf.yaml", 5),
    Section("office", "configs/office.yaml", 5),
    Section("pendulum", "configs/pendulum.yaml", 5),
    Section("foraging_sf", "configs/foraging_sf.yaml", 5),
    Section("point_foraging", "configs/point_foraging.yaml", 5),
    Section("acrobot", "configs/acrobot.yaml", 5),
    Section("linear_quadratic", "configs/linear_quadratic.yaml", 5, ("replay.replay_ratio=2",)),
    Section("foraging_drive", "configs/foraging_drive.yaml", 5),
    Section("quickstart", "configs/quickstart.yaml", 5),
    Section("foraging", "configs/foraging.yaml", 5),
)
# foraging runs scored by the homeostasis protocols, each beside its homeostatic-RL baseline
FORAGING_GROUPS = (("foraging", "foraging_drive"), ("foraging_sf", None), ("point_foraging", None))
GYMNASIUM = ("pendulum", "acrobot", "lunar_lander")  # scored by their own final evaluation
CONTINUOUS_COLUMNS = ("exact_heads_normalized", "composed_normalized", "ratio")
QUICK_SEEDS = 2


def section_trials(sections: Sequence[Section], quick: bool) -> list[Trial]:
    """Every section's trials: one per seed, its group the section's key."""
    return [
        Trial(
            f"{section.key}/seed={seed}",
            section.key,
            section.config,
            (*QUICK_TRAIN, *section.quick) if quick else (),
            seed,
        )
        for section in sections
        for seed in range(QUICK_SEEDS if quick else section.seeds)
    ]


def cached(path: Path, argv: list[str], compute: Callable[[list[str]], list[dict]]) -> list[dict]:
    """The rows kept at `path` for these arguments, else `compute(argv)`'s, kept there first."""
    if path.is_file() and (kept := json.loads(path.read_text()))["argv"] == argv:
        return kept["rows"]
    rows = compute(argv)
    write_json({"argv": argv, "rows": rows}, path)
    return rows


def boolean_rows(argv: list[str]) -> list[dict]:
    """Every Boolean task composed zero-shot from a run's heads (argv: the run directory and
    the episodes per task), one row each."""
    cfg, world, agent = load(argv[0])
    with torch.no_grad():
        return [
            evaluate_task(cfg, world, agent, text, int(argv[1]), 10_000)
            for text in all_boolean_tasks(world)
        ]


def boolean_summary(rows: list[dict]) -> dict:
    """One seed's figures over the 63 tasks: mean normalised return and success, the worst."""
    scored = [row["normalized_return"] for row in rows if row["normalized_return"] is not None]
    return {
        "normalized_return": sum(scored) / len(scored),
        "success": sum(row["success"] for row in rows) / len(rows),
        "worst": min(scored),
    }


def linear_summary(rows: list[dict]) -> list[dict]:
    """One seed's mean and worst normalised return per agent over all weight vectors and over
    those whose sum is positive (every step costs) or negative (every step pays)."""
    subsets = {
        "all": rows,
        "sum(w) > 0": [row for row in rows if sum(row["weights"]) > 0],
        "sum(w) < 0": [row for row in rows if sum(row["weights"]) < 0],
    }
    summary = []
    for name, subset in subsets.items():
        found: dict = {"vectors": name}
        for agent in ("stationary", "composed", "plain"):
            values = [r[f"{agent}_normalized"] for r in subset if f"{agent}_normalized" in r]
            values = [v for v in values if v is not None]
            if values:
                found[f"{agent} mean"] = sum(values) / len(values)
                found[f"{agent} worst"] = min(values)
        summary.append(found)
    return summary


def continuous_summary(rows: list[dict]) -> dict:
    """One seed's mean and worst over the weight vectors of the exact heads' composition, the
    learned composition and their ratio."""
    summary = {}
    for key in CONTINUOUS_COLUMNS:
        values = [row[key] for row in rows]
        summary[f"{key} mean"], summary[f"{key} worst"] = sum(values) / len(values), min(values)
    return summary


class Evaluator:
    """The per-trial evaluations behind the tables, each kept as JSON in the trial's run
    directory (computed once)."""

    def __init__(self, out: Path, trials: Sequence[Trial], quick: bool) -> None:
        self.out, self.quick = out, quick
        self.done = {
            (trial.group, trial.seed): trial_dir(out, trial)
            for trial in trials
            if is_done(out, trial)
        }

    def runs(self, group: str) -> dict[int, Path]:
        """The finished runs of a group, by seed."""
        return {seed: path for (g, seed), path in sorted(self.done.items()) if g == group}

    def boolean(self, group: str) -> list[dict]:
        """Per seed, the Boolean tasks' summary."""
        episodes = 10 if self.quick else 200
        return [
            {
                "seed": seed,
                **boolean_summary(
                    cached(path / "boolean.json", [str(path), str(episodes)], boolean_rows)
                ),
            }
            for seed, path in self.runs(group).items()
        ]

    def linear(self) -> list[dict]:
        """Per seed and subset of weight vectors, linear zero-shot against that seed's
        quickstart run."""
        plain = self.runs("quickstart")
        rows = []
        for seed, path in self.runs("quickstart_sf").items():
            argv = ["--checkpoint", str(path), "--direct", "0"]
            argv += ["--plain", str(plain[seed])] if seed in plain else []
            argv += ["--vectors", "4", "--episodes", "10"] if self.quick else []
            found = cached(path / "linear.json", argv, linear_zero_shot.main)
            rows += [{"seed": seed, **row} for row in linear_summary(found)]
        return rows

    def linear_continuous(self) -> list[dict]:
        """Per seed, linear zero-shot with continuous actions against the exact optimum."""
        rows = []
        for seed, path in self.runs("linear_quadratic").items():
            argv = ["--checkpoint", str(path), "--direct", "0"]
            argv += ["--vectors", "4", "--episodes", "8"] if self.quick else []
            found = cached(path / "linear_continuous.json", argv, linear_continuous.main)
            rows.append({"seed": seed, **continuous_summary(found)})
        return rows

    def office(self) -> list[dict]:
        """Per seed, the skill machines on the Office tasks (no trained baselines)."""
        rows = []
        for seed, path in self.runs("office").items():
            argv = ["--checkpoint", str(path), "--no-baseline"]
            argv += ["--task", skill_machines.TASKS[0], "--episodes", "5"] if self.quick else []
            found = cached(path / "skill_machines.json", argv, skill_machines.main)
            rows += [{"seed": seed, **row} for row in found]
        return rows

    def homeostasis(self, group: str, baseline: str | None) -> list[dict]:
        """Per seed, P1-P3 of the homeostatic agent on a foraging run (beside that seed's
        homeostatic-RL run where there is one)."""
        baselines = self.runs(baseline) if baseline else {}
        rows = []
        for seed, path in self.runs(group).items():
            argv = ["--checkpoint", str(path), "--plot", str(path / "homeostasis.png")]
            argv += ["--baseline", str(baselines[seed])] if seed in baselines else []
            if self.quick:
                argv += ["--seeds", "2", "--steps", "300", "--trials", "10", "--burn-in", "50"]
            found = cached(path / "homeostasis.json", argv, homeostasis.main)
            rows += [
                {
                    "seed": seed,
                    **{k: v for k, v in row.items() if k != "metric"},
                    "measure": row["metric"],
                }
                for row in found
            ]
        return rows

    def seconds(self, group: str) -> list[float]:
        """The training wall-clock of each finished trial of a group that recorded it."""
        paths = [path / TIMING_FILE for path in self.runs(group).values()]
        return [json.loads(p.read_text())["seconds"] for p in paths if p.is_file()]


def cell(row: dict | None) -> str:
    """'mean +- half-width' of a summary row ('-' where absent)."""
    if row is None:
        return "-"
    half = "" if row["ci95"] is None else f" ± {row['ci95']:.3f}"
    return f"{row['mean']:.3f}{half}"


def markdown_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def lookup(rows: list[dict], **fields: object) -> dict | None:
    """The summary row whose fields match, or None."""
    return next((r for r in rows if all(r.get(k) == v for k, v in fields.items())), None)


def minutes(seconds: list[float]) -> str:
    """Mean training wall-clock in minutes over the trials that recorded it."""
    if not seconds:
        return "-"
    return f"{sum(seconds) / len(seconds) / 60:.1f} min"


def heads_section(summary: list[dict], evaluator: Evaluator, groups: Sequence[str]) -> str:
    """Per config and head: normalised return and success over seeds."""
    lines = []
    for group in groups:
        for row in [
            r for r in summary if r["config"] == group and r["metric"] == "normalized_return"
        ]:
            success = lookup(summary, config=group, task=row["task"], metric="success")
            lines.append(
                [
                    f"`{group}`",
                    row["task"],
                    cell(row),
                    cell(success),
                    str(row["n"]),
                    minutes(evaluator.seconds(group)),
                ]
            )
    header = ["config", "head", "normalised return", "success", "n", "train time (side by side)"]
    return "### Single-head tasks\n\n" + markdown_table(header, lines)


def boolean_section(evaluator: Evaluator, groups: Sequence[str]) -> str:
    """Per config: the 63 Boolean tasks' mean normalised return, success and worst task."""
    lines = []
    for group in groups:
        summary = over_seeds(evaluator.boolean(group), ())
        if summary:
            cells = [
                cell(lookup(summary, metric=m)) for m in ("normalized_return", "success", "worst")
            ]
            lines.append([f"`{group}`", *cells, str(summary[0]["n"])])
    header = ["config", "mean normalised return", "mean success", "worst task", "n"]
    return "### Boolean composition, zero-shot (63 tasks)\n\n" + markdown_table(header, lines)


def linear_section(evaluator: Evaluator) -> str:
    """Linear zero-shot: mean and worst normalised return per agent and subset of vectors."""
    summary = over_seeds(evaluator.linear(), ("vectors",))
    lines = []
    for vectors in ("all", "sum(w) > 0", "sum(w) < 0"):
        cells = []
        for agent in ("stationary", "composed", "plain"):
            mean = lookup(summary, vectors=vectors, metric=f"{agent} mean")
            worst = lookup(summary, vectors=vectors, metric=f"{agent} worst")
            cells.append(f"{cell(mean)} / {cell(worst)}")
        n = lookup(summary, vectors=vectors, metric="composed mean")
        lines.append([vectors, *cells, str(n["n"]) if n else "0"])
    header = [
        "weight vectors",
        "ceiling: mean / worst",
        "successor features + GPI",
        "soft-Q heads",
        "n",
    ]
    return "### Linear composition, zero-shot\n\n" + markdown_table(header, lines)


def gymnasium_section(summary: list[dict], evaluator: Evaluator, groups: Sequence[str]) -> str:
    """Per config and head: the greedy return of the final evaluation over seeds."""
    lines = [
        [
            f"`{group}`",
            row["task"],
            cell(row),
            str(row["n"]),
            minutes(evaluator.seconds(group)),
        ]
        for group in groups
        for row in summary
        if row["config"] == group and row["metric"] == "return"
    ]
    header = ["config", "head", "greedy return", "n", "train time (side by side)"]
    return "### Gymnasium environments\n\n" + markdown_table(header, lines)


def continuous_section(summary: list[dict], evaluator: Evaluator) -> str:
    """The linear-quadratic heads against their exact optima, and their linear composition
    against the exact optimum and the exact heads' composition."""
    heads = [
        [row["task"], cell(row), str(row["n"])]
        for row in summary
        if row["config"] == "linear_quadratic" and row["metric"] == "normalized_return"
    ]
    composed = over_seeds(evaluator.linear_continuous(), ())
    lines = [
        [
            column,
            cell(lookup(composed, metric=f"{column} mean")),
            cell(lookup(composed, metric=f"{column} worst")),
            str(composed[0]["n"]) if composed else "0",
        ]
        for column in CONTINUOUS_COLUMNS
    ]
    return "\n\n".join(
        [
            "### Continuous actions against the exact optimum (linear_quadratic)",
            markdown_table(["head", "normalised return", "n"], heads),
            markdown_table(["over 20 weight vectors", "mean", "worst", "n"], lines),
        ]
    )


def office_section(evaluator: Evaluator) -> str:
    """Skill machines on the Office tasks: success and steps beside the oracle's."""
    summary = over_seeds(evaluator.office(), ("agent", "task", "start"))
    lines = []
    for row in [r for r in summary if r["metric"] == "steps"]:
        fields = {k: row[k] for k in ("agent", "task", "start")}
        success = lookup(summary, **fields, metric="success")
        oracle = lookup(summary, **fields, metric="oracle_steps")
        lines.append(
            [
                f"`{row['task']}`",
                row["start"],
                row["agent"],
                cell(success),
                cell(row),
                cell(oracle),
                str(row["n"]),
            ]
        )
    header = ["task", "start", "agent", "success", "steps", "oracle steps", "n"]
    return "### Temporal tasks, zero-shot (Office)\n\n" + markdown_table(header, lines)


def homeostasis_section(evaluator: Evaluator) -> str:
    """P1-P3 per agent: soft-Q heads, successor features and soft actor-critic heads."""
    lines = []
    for group, baseline in FORAGING_GROUPS:
        if not evaluator.runs(group):
            continue
        summary = over_seeds(
            evaluator.homeostasis(group, baseline), ("protocol", "agent", "measure")
        )
        for row in summary:
            lines.append(
                [
                    f"`{group}`",
                    row["protocol"],
                    row["measure"],
                    row["agent"],
                    cell(row),
                    str(row["n"]),
                ]
            )
    header = ["heads", "protocol", "metric", "agent", "value", "n"]
    return "### Homeostatic control\n\n" + markdown_table(header, lines)


def results_markdown(out: Path, trials: Sequence[Trial], summary: list[dict], quick: bool) -> str:
    """Every table whose sections have finished trials, as markdown."""
    evaluator = Evaluator(out, trials, quick)
    sections: list[Callable[[], str]] = []
    groups = [g for g in ("quickstart", "boolean_rooms", "random_rooms") if evaluator.runs(g)]
    if groups:
        sections.append(partial(heads_section, summary, evaluator, groups))
    if groups := [g for g in ("quickstart", "boolean_rooms") if evaluator.runs(g)]:
        sections.append(partial(boolean_section, evaluator, groups))
    if evaluator.runs("quickstart_sf"):
        sections.append(partial(linear_section, evaluator))
    if evaluator.runs("office"):
        sections.append(partial(office_section, evaluator))
    if any(evaluator.runs(group) for group, _ in FORAGING_GROUPS):
        sections.append(partial(homeostasis_section, evaluator))
    if groups := [g for g in GYMNASIUM if evaluator.runs(g)]:
        sections.append(partial(gymnasium_section, summary, evaluator, groups))
    if evaluator.runs("linear_quadratic"):
        sections.append(partial(continuous_section, summary, evaluator))
    bar = tqdm(sections, desc="tables", unit="table", file=sys.stderr, disable=len(sections) < 2)
    parts = [section() for section in bar]  # each evaluates its trials' checkpoints
    note = "Mean ± half-width of the 95% Student-t interval over seeds (n seeds); " + (
        "`--quick`: tiny budgets, a check of the machinery only." if quick else "full budgets."
    )
    return "\n\n".join(["## Results (`python -m experiments.reproduce`)", note, *parts]) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = Parser(
        prog="python -m experiments.reproduce",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets, two seeds")
    keys = [section.key for section in SECTIONS]
    parser.add_argument(
        "--only", nargs="+", choices=keys, metavar="SECTION", help=f"of {', '.join(keys)}"
    )
    parser.add_argument("--out", type=Path, help="sweep directory (default runs/reproduce[_quick])")
    parser.add_argument("--markdown", type=Path, help="tables file (default OUT/results.md)")
    parser.add_argument("--cpus-per-trial", type=positive_float, default=1.0, help="default 1")
    parser.add_argument("--address", help="a running Ray cluster, e.g. auto or ip:port")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    """Train what is missing, evaluate what is not yet evaluated, write the tables."""
    args = parse_args(argv)
    out = args.out or Path("runs/reproduce_quick" if args.quick else "runs/reproduce")
    sections = [s for s in SECTIONS if args.only is None or s.key in args.only]
    trials = section_trials(sections, args.quick)
    path = args.markdown or out / "results.md"
    if args.markdown is not None and (problem := file_problem(args.markdown)):
        fail(f"--markdown {args.markdown}: {problem}")
    try:
        save_spec(out, trials, args.cpus_per_trial, 0.0)
        failed = run_sweep(trials, out, args.cpus_per_trial, 0, args.address)
    except (ConfigError, ValueError, RuntimeError, OSError) as err:
        fail(str(err))
    text = results_markdown(out, trials, write_summary(out, trials), args.quick)
    write_text(text, path)
    print(text)
    print(format_table(trial_table(out, trials, failed)))
    print(f"tables: {path}")
    if failed:
        fail(f"{len(failed)} of {len(trials)} trial(s) failed (see the table)", status=1)
    return text


if __name__ == "__main__":
    run(main, share=False)  # a sweep driver: its trials take the cores
