"""Linear zero-shot composition with continuous actions, against the exact optimum of the
linear-quadratic world, beside the composition of the exact heads and directly trained agents.

    python -m experiments.linear_continuous --checkpoint RUN_DIR [--vectors 20] [--direct 5]

RUN_DIR is a soft actor-critic run of the linear_quadratic world (configs/linear_quadratic.yaml).
For random positive weight vectors w over its heads (east, north, effort), the checkpoint's heads
act greedily on sum_k w_k Q_k with no training. Every score is a normalised discounted return
from the same start states, (R - R_random) / (R_optimal - R_random), with the optimal and the
uniform-random policies' returns exact (Riccati and Lyapunov fixed points). Beside it: the
greedy composition of the exact soft heads (what composition itself loses, also exact), the
ratio of the learned composition's score to that one, and, for the first --direct vectors, a
fresh agent of the same config trained on the one weighted reward for as many environment steps
as the checkpoint saw.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm import tqdm

from agents.composition import load, resolve
from agents.training import train
from composable_rl.run.checkpoint import load_meta
from envs.linear_quadratic import HEADS, LinearQuadraticConfig, score_row
from experiments.common import experiment_parser, report, run


def positive_weights(count: int, seed: int) -> torch.Tensor:
    """[count, K] weight vectors uniform on the simplex (normalised exponentials)."""
    gen = torch.Generator().manual_seed(seed)
    w = -torch.log(torch.rand(count, len(HEADS), generator=gen))
    return w / w.sum(1, keepdim=True)


def summary(rows: list[dict], key: str) -> str:
    """Mean and worst of a column over the rows that have it."""
    values = [row[key] for row in rows if row.get(key) is not None]
    if not values:
        return ""
    mean = sum(values) / len(values)
    return f"{key}: mean {mean:.4f}, worst {min(values):.4f} over {len(values)}"


def table(rows: list[dict]) -> str:
    """One line per weight vector, then the mean and worst of each column."""
    lines = [
        f"{'weights':>22}  {'optimum':>8}  {'exact heads':>11}  {'learned':>8}  {'ratio':>7}"
        f"  {'direct':>7}"
    ]
    for row in rows:
        direct = f"{row['direct_normalized']:>7.4f}" if "direct_normalized" in row else " " * 7
        lines.append(
            f"{str(row['weights']):>22}  {row['oracle_return']:>8.4f}  "
            f"{row['exact_heads_normalized']:>11.4f}  {row['composed_normalized']:>8.4f}  "
            f"{row['ratio']:>7.4f}  {direct}"
        )
    keys = ("exact_heads_normalized", "composed_normalized", "ratio", "direct_normalized")
    return "\n".join(lines + [line for key in keys if (line := summary(rows, key))])


def main(argv: list[str] | None = None) -> list[dict]:
    """Score the checkpoint's composition (and directly trained agents) on random weights."""
    parser = experiment_parser(__doc__)
    parser.add_argument("--vectors", type=int, default=20, help="random weight vectors")
    parser.add_argument("--direct", type=int, default=5, help="vectors with a trained baseline")
    parser.add_argument("--direct-steps", type=int, help="baseline env steps (default: same)")
    parser.add_argument("--episodes", type=int, default=64, help="evaluation episodes (starts)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weight vectors")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/linear_continuous"),
        help="baselines' runs (replaced on every run)",
    )
    args = parser.parse_args(argv)
    cfg, world, agent = load(args.checkpoint)
    if not isinstance(cfg.env, LinearQuadraticConfig) or cfg.env.weights:
        raise SystemExit(f"{args.checkpoint}: expected a run of the linear_quadratic world's heads")
    steps = args.direct_steps or load_meta(resolve(args.checkpoint))["step"]
    rows = []
    for i, w in enumerate(tqdm(positive_weights(args.vectors, args.seed), unit="vector")):
        task = " + ".join(f"{x:.3f}*{name}" for x, name in zip(w.tolist(), HEADS, strict=True))
        scored = score_row(cfg.env, agent.greedy, task, w, args.episodes, cfg.device)
        row = {
            "weights": [round(x, 3) for x in w.tolist()],
            "oracle_return": scored["oracle_return"],
            "random_return": scored["random_return"],
            "exact_heads_normalized": scored["exact_heads_normalized"],
            "composed_return": scored["return"],
            "composed_normalized": scored["normalized_return"],
            "ratio": scored["normalized_return"] / scored["exact_heads_normalized"],
        }
        if i < args.direct:
            direct_cfg = dataclasses.replace(
                cfg,
                total_steps=steps,
                eval_episodes=args.episodes,
                env=dataclasses.replace(cfg.env, weights=w.tolist()),
            )
            result = train(direct_cfg, args.out / f"direct_{i}", progress=False, overwrite=True)
            row["direct_return"] = result["eval"][0]["return"]
            row["direct_normalized"] = result["eval"][0]["normalized_return"]
        rows.append(row)
    return report(rows, table(rows), args.json)


if __name__ == "__main__":
    run(main)
