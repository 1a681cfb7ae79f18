"""Linear zero-shot composition against the exact oracle, beside directly trained agents.

    python -m experiments.linear_zero_shot --checkpoint RUN_DIR [--vectors 20] [--direct 20]

For random weight vectors w over the base heads, the checkpoint's heads act greedily on their
linear composition with no training (sum_k w_k Q_k for soft-Q heads, GPI over w . psi for
successor features); the oracle solves the weighted reward exactly over the episode's steps.
The ceiling column scores the optimal stationary policy of the gamma-discounted reward: what an
agent that learns those discounted values exactly, without seeing the time left, would score.
Beside each, a
`--plain` soft-Q checkpoint composes the same vector, and a fresh soft-Q agent with the same
config is trained on that one weighted reward for as many environment steps as the checkpoint
saw, and evaluated the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm import tqdm

from agents.composition import load, resolve
from agents.factory import build_world
from agents.training import train
from composable_rl.evaluation import evaluate
from composable_rl.run.checkpoint import load_meta
from composable_rl.world import BOUND_HEADS, TabularWorld
from experiments.common import experiment_parser, report, run


def random_weights(head_names: list[str], count: int, seed: int) -> torch.Tensor:
    """[count, K] weights uniform in [-1, 1] on the base heads, 0 on the bound heads."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.tensor([name not in BOUND_HEADS for name in head_names])
    return (2 * torch.rand(count, len(head_names), generator=gen) - 1) * base


def score(value: float | None) -> str:
    """A normalised return in a 6-wide column; n/a where undefined (oracle = random)."""
    return "n/a".rjust(6) if value is None else f"{value:>6.3f}"


COLUMNS = (  # (row key prefix, column title) of the agents a table may hold
    ("composed", "composed"),
    ("plain", "plain"),
    ("direct", "direct"),
)


def table(rows: list[dict]) -> str:
    """One line per weight vector: the oracle's return, the normalised return of the optimal
    stationary discounted policy (what a discounted learner aims at) and of each agent; then
    the mean and worst of each column (over the vectors where it is defined)."""
    present = [(key, title) for key, title in COLUMNS if any(f"{key}_return" in r for r in rows)]
    lines = [
        f"{'weights':>44}  {'oracle':>7}  {'ceiling':>7}"
        + "".join(f"  {title:>9}" for _, title in present)
    ]
    for row in rows:
        cells = "".join(
            f"  {score(row.get(f'{key}_normalized')):>9}" if f"{key}_return" in row else " " * 11
            for key, _ in present
        )
        lines.append(
            f"{str(row['weights']):>44}  {row['oracle_return']:>7.3f}  "
            f"{score(row['stationary_normalized']):>7}{cells}"
        )
    for key in ("stationary", *(key for key, _ in present)):
        values = [
            row[f"{key}_normalized"] for row in rows if row.get(f"{key}_normalized") is not None
        ]
        if values:
            lines.append(
                f"{key}_normalized: mean {sum(values) / len(values):.3f}, worst {min(values):.3f} "
                f"over {len(values)} vectors"
            )
    return "\n".join(lines)


def scored(prefix: str, result: dict) -> dict:
    """An evaluation's return and normalised return under `prefix`."""
    return {
        f"{prefix}_return": result["return"],
        f"{prefix}_normalized": result["normalized_return"],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    """Score composed (and directly trained) agents on random weight vectors; print a table."""
    parser = experiment_parser(__doc__)
    parser.add_argument("--vectors", type=int, default=20, help="random weight vectors")
    parser.add_argument("--direct", type=int, default=20, help="vectors with a trained baseline")
    parser.add_argument("--direct-steps", type=int, help="baseline env steps (default: same)")
    parser.add_argument(
        "--plain",
        help="a soft-Q checkpoint of the same world, composed beside the checkpoint "
        "(e.g. a quickstart run beside a quickstart_sf run)",
    )
    parser.add_argument("--episodes", type=int, default=200, help="evaluation episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weight vectors")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/linear_zero_shot"),
        help="directory for the baselines' runs (replaced on every run)",
    )
    args = parser.parse_args(argv)

    cfg, world, agent = load(args.checkpoint)
    if not isinstance(world, TabularWorld):
        raise SystemExit(f"{args.checkpoint}: the exact oracle needs a world with a tabular model")
    plain = None
    if args.plain:
        plain_cfg, plain_world, plain = load(args.plain)
        if plain_world.head_names[: len(world.head_names)] != world.head_names:
            raise SystemExit(
                f"--plain {args.plain}: heads {plain_world.head_names} do not start with "
                f"{world.head_names}"
            )
    steps = args.direct_steps or load_meta(resolve(args.checkpoint))["step"]
    rows = []
    for i, w in enumerate(tqdm(random_weights(world.head_names, args.vectors, args.seed))):
        with torch.no_grad():
            composed = evaluate(
                build_world(cfg, args.episodes), agent.greedy, w, gamma=cfg.agent.gamma
            )
        row = {
            "weights": [round(x, 3) for x in w.tolist()],
            "oracle_return": composed["oracle_return"],
            "stationary_normalized": composed["stationary_normalized"],
            **scored("composed", composed),
        }
        if plain is not None:
            padded = torch.cat([w, w.new_zeros(len(plain_world.head_names) - len(w))])
            with torch.no_grad():
                result = evaluate(build_world(plain_cfg, args.episodes), plain.greedy, padded)
            row.update(scored("plain", result))
        if i < args.direct:
            direct_cfg = dataclasses.replace(
                cfg,
                total_steps=steps,
                eval_episodes=0,
                agent=dataclasses.replace(cfg.agent, heads="soft_q"),
                tasks=dataclasses.replace(cfg.tasks, fixed_weights=w.tolist()),
            )
            run_dir = args.out / f"direct_{i}"
            train(direct_cfg, run_dir, progress=False, overwrite=True)
            _, _, direct_agent = load(run_dir)
            with torch.no_grad():
                direct = evaluate(build_world(cfg, args.episodes), direct_agent.greedy, w)
            row.update(scored("direct", direct))
        rows.append(row)
    return report(rows, table(rows), args.json)


if __name__ == "__main__":
    run(main)
