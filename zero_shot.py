"""Zero-shot evaluation of composed tasks from a checkpoint, with no further training.

    python zero_shot.py --checkpoint DIR --task "0.5*blue + red" [--episodes N]
    python zero_shot.py --checkpoint DIR --task "blue & ~square" --task -blue
    python zero_shot.py --checkpoint DIR --weights 0.5,0,0,0,-1 [--episodes N]
    python zero_shot.py --checkpoint DIR --multi-objective 10 [--episodes N]
    python zero_shot.py --checkpoint DIR --all-boolean [--component-rule] [--plot PATH]
    python zero_shot.py --checkpoint DIR --ltl "F(f & F g) & G !n" [--json PATH]
    python zero_shot.py --checkpoint DIR --rm configs/tasks/abcd.yaml
    python zero_shot.py --checkpoint DIR --ltl "F(f & F g) & G !n" --model-shield
    python zero_shot.py --checkpoint DIR --task blue --quantile 1 --quantile 0.1 --quantile 0
    python zero_shot.py --checkpoint DIR --task goal --impact 4 [--aux HEAD] [--shield HEAD]
    python zero_shot.py --checkpoint DIR --task goal --plausible 1,-20 --plausible 1,20

A task is an expression over the checkpoint's heads. A linear one (`0.7*blue + 0.3*square`) is
the reward sum_k w_k r_k; a Boolean one (`blue & ~square`, worlds with goals) rewards reaching a
goal that satisfies it with r_max and any other with r_min. The agent acts greedily on the
composed values. Worlds with a tabular model score it against the exact optimum of each
episode; others report its return with a 95% confidence interval. The normalised return,
(R - R_random) / (R_oracle - R_random), is undefined (n/a; null in JSON) when the oracle does no
better than random, e.g. `0*blue`. An expression option may take a value that starts with '-'
as `--task -blue` as well as `--task=-blue`.

`--quantile q` (repeatable, q in [0, 1]) acts with the q-quantiliser of the composed values
instead of greedily: the base policy (uniform over the actions, or the soft policy of the head
named by `--quantile-base`; with continuous actions, the sampler's candidates) restricted to
its top q of probability mass by composed value, so that no action is taken more than 1/q
times as often as the base policy takes it. q = 1 is the base policy, q = 0 the greedy one.
Each task gets one row per q (per start for temporal tasks, whose skill machine then quantilises
over a uniform base); `--plot` draws the scores of composed tasks against q.

Levers on plain heads (docs/levers.md), all applied at every step: `--impact LAMBDA` subtracts
lambda times the attainable-utility penalty over the auxiliary heads (`--aux HEAD`, repeatable;
default the world's own, its continuing heads) from the composed values, against the world's
declared no-op action; `--shield HEAD` (repeatable) masks the actions after which that cost
head expects a violation its safest action avoids; `--plausible W` (repeatable, one weight per
head) acts on the worst case over those tasks instead of the task's own values (robust
acting), while the task still scores it; `--epistemic THRESHOLD` (checkpoints trained with
`agent.ensemble`) takes the no-op wherever the ensemble's members value the action about to be
taken more than THRESHOLD apart. `--env KEY=VALUE` changes the checkpoint's world for the
evaluation (e.g. `starts=random`, states the heads rarely saw in training); `--device cpu`
evaluates a run trained on a GPU where there is none. Where the world counts side effects, the
rows add them per episode.

A temporal task (worlds whose goals carry propositions, e.g. office) is an LTL formula or a
reward-machine YAML file run by a skill machine over the proposition heads, from the standard
start and from random starts, scored against breadth-first search over world x machine.
Formulas are read as LTLf on the labels of the cells the agent enters, one per step (the start
cell's label is not part of the trace), and the task succeeds, ending the episode, at the first
step after which the labels so far satisfy the formula. So `G p` holds when p held at every step
so far, and `G p` alone succeeds on a first step onto p; to keep p while reaching a goal, write
`F g & G p`. Formulas no trace satisfies (`F f & G !f`) and machines whose accepting states no
path of edges reaches are refused. `--model-shield` (worlds that know which goal a step enters,
e.g. point_office) drops every action that would enter a goal whose label fails the task, by
the world's own dynamics, whenever another action does not: a shield from a model, not from the
heads (rows say `shield: model`).

Usage errors (options, expressions, formulas, machines, configs, missing files, output paths
that cannot be written) print one line, with a caret under the culprit of a formula, and exit
with status 2; output paths are checked before any evaluation, and the JSON is strict (null
where a number is undefined) and written whole or not at all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import envs  # noqa: F401  (registers the built-in worlds where entry points are not installed)
from agents.composition import (
    all_boolean_tasks,
    evaluate_multi_objective,
    evaluate_task,
    evaluate_temporal_task,
    load,
    resolve,
    weights_task,
)
from composable_rl.config import ConfigError
from composable_rl.languages.expressions import ExpressionError
from composable_rl.maths.levers import Levers, Quantile
from composable_rl.run.cli import (
    Parser,
    fail,
    file_problem,
    folder_problem,
    positive_int,
    run_command,
    unit_fraction,
)
from composable_rl.run.logging import (
    Logger,
    format_table,
    plot_quantiles,
    plot_scores,
    score_summary,
    write_json,
)
from composable_rl.run.runtime import CoreShare

NUMBERS = ("return", "success", "normalized_return", "ci95", "side_effects", "side_effect_rate")
RULE_NUMBERS = ("normalized_return", "success")  # the component-action rule's columns
MULTI_OBJECTIVE_NUMBERS = ("expected_utility", "hypervolume", "igd")
TEMPORAL_NUMBERS = ("success", "steps", "oracle_steps", "oracle_plan")
RULE_TEMPORAL = ("success", "steps", "violations")  # the rule's columns on temporal tasks
EXPRESSION_OPTIONS = ("--task", "--ltl", "--weights")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = Parser(
        prog="python zero_shot.py",
        dash_values=EXPRESSION_OPTIONS,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint or run dir")
    tasks = parser.add_mutually_exclusive_group(required=True)
    tasks.add_argument(
        "--task", action="append", help="task expression (repeatable; '--task -blue' works)"
    )
    tasks.add_argument(
        "--weights",
        action="append",
        help="a linear task as one weight per head, comma-separated, e.g. 0.5,0,0,0,-1 "
        "(repeatable)",
    )
    tasks.add_argument(
        "--multi-objective",
        type=positive_int,
        metavar="DIVISIONS",
        help="expected utility (and hypervolume / IGD where the world configures them) over "
        "the simplex lattice of weights with this many divisions",
    )
    tasks.add_argument("--all-boolean", action="store_true", help="every Boolean task")
    tasks.add_argument("--ltl", action="append", help="temporal task as LTL (repeatable)")
    tasks.add_argument("--rm", action="append", help="reward-machine YAML file (repeatable)")
    parser.add_argument(
        "--episodes",
        type=positive_int,
        help="episodes per task, at least 1 (default 200; 100 per start if temporal)",
    )
    parser.add_argument(
        "--no-plan",
        action="store_true",
        help="skill machine picks edges on the machine alone, as published (no look-ahead)",
    )
    parser.add_argument(
        "--model-shield",
        action="store_true",
        help="temporal tasks: the skill machine never takes an action that the world's own "
        "dynamics say enters a goal whose label fails the task while another action does not "
        "(worlds that know which goal a step enters, e.g. point_office); the component-action "
        "rule stays unshielded",
    )
    parser.add_argument(
        "--component-rule",
        action="store_true",
        help="Boolean or temporal tasks on world-value soft actor-critic heads: also score the "
        "Skill Machines rule (each head acts for itself; OR / AND take the action of the child "
        "of highest / lowest value; in each machine state for temporal tasks) in columns rule_*",
    )
    parser.add_argument(
        "--quantile",
        action="append",
        type=unit_fraction,
        metavar="Q",
        help="act with the q-quantiliser of the composed values, q in [0, 1] (1: the base "
        "policy, 0: greedy); repeatable, one row per task and q",
    )
    parser.add_argument(
        "--quantile-base",
        metavar="HEAD",
        help="the head whose soft policy is the quantiliser's base (default: uniform actions)",
    )
    parser.add_argument(
        "--impact",
        type=float,
        default=0.0,
        metavar="LAMBDA",
        help="weight of the attainable-utility penalty over the auxiliary heads (>= 0)",
    )
    parser.add_argument("--aux", action="append", metavar="HEAD", help="an auxiliary head")
    parser.add_argument("--shield", action="append", metavar="HEAD", help="a cost head to obey")
    parser.add_argument(
        "--shield-threshold",
        type=float,
        default=0.5,
        help="how far below its safest action a cost head may value an action (default 0.5)",
    )
    parser.add_argument(
        "--plausible",
        action="append",
        metavar="W",
        help="a plausible task as one weight per head, comma-separated; robust acting over them",
    )
    parser.add_argument(
        "--epistemic",
        type=float,
        metavar="THRESHOLD",
        help="defer to the world's no-op wherever the ensemble's members value the action "
        "about to be taken more than this apart (checkpoints trained with agent.ensemble)",
    )
    parser.add_argument(
        "--env",
        action="append",
        metavar="KEY=VALUE",
        help="change the checkpoint's world section for the evaluation, e.g. starts=random "
        "(repeatable; the heads must stay the same)",
    )
    parser.add_argument(
        "--device", help="torch device to evaluate on (default: the one the run trained on)"
    )
    parser.add_argument("--seed", type=int, default=10_000, help="evaluation seed")
    parser.add_argument("--json", type=Path, help="write the rows as a JSON list")
    parser.add_argument("--plot", type=Path, help="bar-plot PNG (default with --all-boolean)")
    parser.add_argument("--logdir", type=Path, help="TensorBoard dir (default: the run dir)")
    return parser.parse_args(argv)


def parse_weights(text: str, option: str = "--weights") -> list[float]:
    """Comma-separated numbers, e.g. '0.5,0,-1'; a ValueError names the option and the text."""
    try:
        return [float(item) for item in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected comma-separated numbers") from None


def lever_label(args: argparse.Namespace) -> str:
    """The levers of a row as the options that set them, e.g. 'impact 0.5, shield box'."""
    parts = [f"impact {args.impact:g}"] if args.impact else []
    parts += [f"shield {head}" for head in args.shield or ()]
    parts += [f"plausible {w}" for w in args.plausible or ()]
    parts += [f"epistemic {args.epistemic:g}"] if args.epistemic is not None else []
    return ", ".join(parts)


def progress(tasks: list, share: CoreShare) -> Iterator:
    """The tasks with a progress bar on stderr (tasks done and left, an estimate of the time
    left), shown for lists of more than one task; before each, the evaluation takes its
    share of the cores (a training run beside it keeps its own)."""
    for task in tqdm(tasks, unit="task", desc="tasks", disable=len(tasks) < 2, file=sys.stderr):
        share.follow()
        yield task


def evaluate_rows(args: argparse.Namespace, share: CoreShare) -> list[dict]:
    """The result rows of every requested task (each evaluated within `share`)."""
    cfg, world, agent = load(args.checkpoint, args.env or (), args.device)
    levers = Levers(
        args.impact,
        tuple(args.aux or ()),
        tuple(args.shield or ()),
        args.shield_threshold,
        tuple(tuple(parse_weights(text, "--plausible")) for text in args.plausible or ()),
        args.epistemic,
    )
    with torch.no_grad():
        quantiles = [Quantile(q, args.quantile_base) for q in args.quantile or []]
        if args.ltl or args.rm:
            episodes = args.episodes or 100

            def temporal(task: str, **options: Any) -> list[dict]:
                """The rows of one temporal task with these skill-machine options."""
                return evaluate_temporal_task(
                    cfg, world, agent, task, episodes, args.seed, **options
                )

            skill = {"plan": not args.no_plan, "shield": args.model_shield}
            if quantiles:
                pairs = [(task, q) for task in args.ltl or args.rm for q in quantiles]
                return [
                    row
                    for task, q in progress(pairs, share)
                    for row in temporal(task, quantile=q, **skill)
                ]
            rows = []
            for task in progress(args.ltl or args.rm, share):
                found = temporal(task, **skill)
                if args.component_rule:
                    rule = temporal(task, rule=True)
                    for row, other in zip(found, rule, strict=True):
                        row.update({f"rule_{key}": other[key] for key in RULE_TEMPORAL})
                rows += found
            return rows
        episodes = args.episodes or 200
        if args.multi_objective:
            return [evaluate_multi_objective(cfg, agent, args.multi_objective, episodes, args.seed)]
        if args.weights:
            texts = [weights_task(parse_weights(text), world.head_names) for text in args.weights]
        else:
            texts = all_boolean_tasks(world) if args.all_boolean else args.task
        if levers.active:
            return [
                {
                    **evaluate_task(cfg, world, agent, text, episodes, args.seed, levers=levers),
                    "levers": lever_label(args),
                }
                for text in progress(texts, share)
            ]
        if quantiles:
            pairs = [(text, quantile) for text in texts for quantile in quantiles]
            return [
                evaluate_task(cfg, world, agent, text, episodes, args.seed, quantile=quantile)
                for text, quantile in progress(pairs, share)
            ]
        rows = []
        for text in progress(texts, share):
            row = evaluate_task(cfg, world, agent, text, episodes, args.seed)
            if args.component_rule:
                rule = evaluate_task(cfg, world, agent, text, episodes, args.seed, rule=True)
                row.update({f"rule_{key}": rule[key] for key in RULE_NUMBERS})
            rows.append(row)
        return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Evaluate the requested tasks, print a table, write JSON, a plot and TensorBoard scalars."""
    args = parse_args(argv)
    temporal = args.ltl or args.rm
    if args.component_rule and not (args.task or args.all_boolean or temporal):
        fail(
            "--component-rule scores Boolean or temporal tasks: use it with --task, "
            "--all-boolean, --ltl or --rm"
        )
    if args.quantile and args.multi_objective:
        fail(
            "--quantile acts on composed tasks: use it with --task, --weights, --all-boolean, "
            "--ltl or --rm"
        )
    if args.quantile and args.component_rule:
        fail("--quantile quantilises the composed values; the component-action rule has none")
    if args.model_shield and not temporal:
        fail("--model-shield guards a skill machine: use it with --ltl or --rm")
    if args.quantile_base and not args.quantile:
        fail("--quantile-base names the quantiliser's base policy: give --quantile too")
    steering = args.impact or args.shield or args.plausible or args.epistemic is not None
    if steering and (args.quantile or args.component_rule or args.multi_objective or temporal):
        fail(
            "--impact, --shield, --plausible and --epistemic steer the greedy policy of --task, "
            "--weights or --all-boolean tasks; leave out --quantile, --component-rule, "
            "--multi-objective, --ltl and --rm"
        )
    if args.aux and not args.impact:
        fail("--aux names the impact penalty's auxiliary heads: give --impact too")
    if args.shield_threshold != 0.5 and not args.shield:
        fail("--shield-threshold sets how strict --shield is: give --shield too")
    try:
        run_dir = resolve(args.checkpoint).parent.parent
    except FileNotFoundError as err:
        fail(str(err))
    bars = args.all_boolean and not args.quantile  # a bar per Boolean task, by default
    plot_path = args.plot or (run_dir / "compose_boolean.png" if bars else None)
    for option, path in (("--json", args.json), ("--plot", plot_path)):
        if path is not None and (problem := file_problem(path)):
            fail(f"{option} {path}: {problem}")
    logdir = args.logdir or run_dir
    if problem := folder_problem(logdir):
        fail(f"--logdir {logdir}: {problem}")
    try:
        with CoreShare() as share:
            rows = evaluate_rows(args, share)
    except (ExpressionError, ConfigError, FileNotFoundError, ValueError) as err:
        fail(str(err))
    print(format_table(rows))
    scored = not temporal and "normalized_return" in rows[0]
    if scored and args.quantile:
        for q in dict.fromkeys(args.quantile):
            print(f"q = {q:g}: {score_summary([r for r in rows if r['quantile'] == q])}")
    elif scored:
        print(score_summary(rows))
        if args.component_rule:
            rule = [{"task": r["task"], **{k: r[f"rule_{k}"] for k in RULE_NUMBERS}} for r in rows]
            print(f"component-action rule: {score_summary(rule)}")
    if args.json:
        write_json(rows, args.json)
    if plot_path and scored:
        (plot_quantiles if args.quantile else plot_scores)(rows, plot_path)
        print(f"plot: {plot_path}")
    with Logger(args.logdir or run_dir) as logger:
        for row in rows:
            tag = f"compose/{row['task']}" + (f"/{row['start']}" if temporal else "")
            tag += f"/q={row['quantile']:g}" if "quantile" in row else ""
            tag += f"/{row['shield']} shield" if "shield" in row else ""
            tag += f"/{row['levers']}" if "levers" in row else ""
            keys = (
                MULTI_OBJECTIVE_NUMBERS
                if args.multi_objective
                else (*NUMBERS, *(f"rule_{key}" for key in RULE_NUMBERS))
            )
            temporal_keys = (*TEMPORAL_NUMBERS, *(f"rule_{key}" for key in RULE_TEMPORAL))
            for key in temporal_keys if temporal else keys:
                if row.get(key) is not None:
                    logger.scalar(f"{tag}/{key}", row[key], 0)
    return rows


if __name__ == "__main__":
    run_command(main)
