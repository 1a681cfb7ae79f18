"""Linear zero-shot composition against the exact oracle, beside directly trained agents.

    python -m experiments.linear_zero_shot --checkpoint RUN_DIR [--vectors 20] [--direct 20]

For random weight vectors w over the base heads, the checkpoint's heads act greedily on
sum_k w_k Q_k with no training; the oracle solves the weighted reward exactly. Beside each, a
fresh agent with the same config is trained on that one weighted reward for as many environment
steps as the checkpoint saw, and evaluated the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from tqdm import tqdm

import train
import zero_shot
from composable_rl.checkpoint import load_meta
from composable_rl.runtime import configure_cpu
from envs.evaluation import evaluate
from envs.object_rooms import BOUND_HEADS


def random_weights(head_names: list[str], count: int, seed: int) -> torch.Tensor:
    """[count, K] weights uniform in [-1, 1] on the base heads, 0 on the bound heads."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.tensor([name not in BOUND_HEADS for name in head_names])
    return (2 * torch.rand(count, len(head_names), generator=gen) - 1) * base


def greedy(agent):
    """The greedy policy on the linearly composed values."""
    return lambda obs, weights: agent.act(obs, weights, alpha=0.0)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="run dir or checkpoint")
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
    parser.add_argument("--json", type=Path, help="write the rows as a JSON list")
    args = parser.parse_args(argv)

    cfg, world, agent = zero_shot.load(args.checkpoint)
    steps = args.direct_steps or load_meta(zero_shot.resolve(args.checkpoint))["step"]
    kwargs = train.world_kwargs(cfg.env, cfg.device)
    rows = []
    for i, w in enumerate(tqdm(random_weights(world.head_names, args.vectors, args.seed))):
        with torch.no_grad():
            composed = evaluate(kwargs, greedy(agent), w, args.episodes)
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
            train.train(direct_cfg, run_dir, progress=False)
            _, _, direct_agent = zero_shot.load(run_dir)
            with torch.no_grad():
                direct = evaluate(kwargs, greedy(direct_agent), w, args.episodes)
            row.update(
                direct_return=direct["return"], direct_normalized=direct["normalized_return"]
            )
        rows.append(row)
    print(
        f"{'weights':>44}  {'oracle':>7}  {'composed':>9}  {'norm':>6}  {'direct':>7}  {'norm':>6}"
    )
    for row in rows:
        direct = (
            f"{row['direct_return']:>7.3f}  {row['direct_normalized']:>6.3f}"
            if "direct_return" in row
            else ""
        )
        print(
            f"{str(row['weights']):>44}  {row['oracle_return']:>7.3f}  "
            f"{row['composed_return']:>9.3f}  {row['composed_normalized']:>6.3f}  {direct}"
        )
    for key in ("composed_normalized", "direct_normalized"):
        values = [row[key] for row in rows if key in row]
        if values:
            print(
                f"{key}: mean {sum(values) / len(values):.3f}, worst {min(values):.3f} "
                f"over {len(values)} vectors"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    configure_cpu()  # process-wide, as in train.py's CLI
    main()
