"""Linear zero-shot composition against the exact oracle, beside directly trained agents.

    python -m experiments.linear_zero_shot --checkpoint RUN_DIR [--vectors 20] [--direct 20]

For random weight vectors w over the base heads, the checkpoint's heads act greedily on
sum_k w_k Q_k with no training; the oracle solves the weighted reward exactly. Beside each, a
fresh agent with the same config is trained on that one weighted reward for as many environment
steps as the checkpoint saw, and evaluated the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm import tqdm

from agents.composition import load, resolve
from agents.training import build_world, train
from composable_rl.checkpoint import load_meta
from composable_rl.evaluation import evaluate
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


def table(rows: list[dict]) -> str:
    """One line per weight vector (oracle, composed and direct returns), then the mean and
    worst normalised return of the composed and the direct agents (over the vectors where it is
    defined)."""
    lines = [
        f"{'weights':>44}  {'oracle':>7}  {'composed':>9}  {'norm':>6}  {'direct':>7}  {'norm':>6}"
    ]
    for row in rows:
        direct = (
            f"{row['direct_return']:>7.3f}  {score(row['direct_normalized'])}"
            if "direct_return" in row
            else ""
        )
        lines.append(
            f"{str(row['weights']):>44}  {row['oracle_return']:>7.3f}  "
            f"{row['composed_return']:>9.3f}  {score(row['composed_normalized'])}  {direct}"
        )
    for key in ("composed_normalized", "direct_normalized"):
        values = [row[key] for row in rows if row.get(key) is not None]
        if values:
            lines.append(
                f"{key}: mean {sum(values) / len(values):.3f}, worst {min(values):.3f} "
                f"over {len(values)} vectors"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Score composed (and directly trained) agents on random weight vectors; print a table."""
    parser = experiment_parser(__doc__)
    parser.add_argument("--vectors", type=int, default=20, help="random weight vectors")
    parser.add_argument("--direct", type=int, default=20, help="vectors with a trained baseline")
    parser.add_argument("--direct-steps", type=int, help="baseline env steps (default: same)")
    parser.add_argument("--episodes", type=int, default=200, help="evaluation episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weight vectors")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/linear_zero_shot"),
        help="directory for the baselines' runs",
    )
    args = parser.parse_args(argv)

    cfg, world, agent = load(args.checkpoint)
    if not isinstance(world, TabularWorld):
        raise SystemExit(f"{args.checkpoint}: the exact oracle needs a world with a tabular model")
    steps = args.direct_steps or load_meta(resolve(args.checkpoint))["step"]
    rows = []
    for i, w in enumerate(tqdm(random_weights(world.head_names, args.vectors, args.seed))):
        with torch.no_grad():
            composed = evaluate(build_world(cfg, args.episodes), agent.greedy, w)
        row = {
            "weights": [round(x, 3) for x in w.tolist()],
            "oracle_return": composed["oracle_return"],
            "composed_return": composed["return"],
            "composed_normalized": composed["normalized_return"],
        }
        if i < args.direct:
            direct_cfg = dataclasses.replace(
                cfg,
                total_steps=steps,
                eval_episodes=0,
                tasks=dataclasses.replace(cfg.tasks, fixed_weights=w.tolist()),
            )
            run_dir = args.out / f"direct_{i}"
            train(direct_cfg, run_dir, progress=False)
            _, _, direct_agent = load(run_dir)
            with torch.no_grad():
                direct = evaluate(build_world(cfg, args.episodes), direct_agent.greedy, w)
            row.update(
                direct_return=direct["return"], direct_normalized=direct["normalized_return"]
            )
        rows.append(row)
    return report(rows, table(rows), args.json)


if __name__ == "__main__":
    run(main)
