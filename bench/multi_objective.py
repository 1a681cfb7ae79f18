"""Our multi-head agents against morl-baselines on MO-Gymnasium, in one run: successor features
against GPI-LS and Envelope on four-room and minecart, soft actor-critic heads against CAPQL on
mo-hopper and mo-halfcheetah.

    python -m bench.multi_objective [--steps 5000] [--envs four-room-v0 minecart-v0]
                                    [--divisions 10] [--episodes 5] [--seed 0] [--json PATH]

Every agent trains for the same number of env steps on each environment, then acts for each
weight w of the simplex lattice with `--divisions` divisions (Das-Dennis: all w >= 0 in steps of
1/divisions summing to 1; 66 weights for 3 objectives and 10 divisions). Expected utility is
the mean over those weights of w . V_w, V_w being the mean discounted vector return of
`--episodes` greedy episodes (discount 1 on the first reward; the env's config gamma); the
hypervolume of the V_w above our config's reference point where it has one. Ours is
configs/mo_<env>_sf.yaml (successor-feature heads with GPI) or configs/mo_<env>.yaml (soft
actor-critic heads composed by sampling); the peers use their own examples' settings
(bench/peers.py) and are skipped with a message when morl-baselines is absent
(`pip install -e ".[peers]"`). Wall-clock is training only, without the final evaluation.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from agents.composition import evaluate_multi_objective, load
from agents.training import train
from bench.peers import peer_available, peer_values, peers_of, train_peer
from bench.throughput import progress
from composable_rl.config import load_config
from composable_rl.maths.mo_metrics import expected_utility, hypervolume, simplex_lattice

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "four-room-v0": ROOT / "configs" / "mo_four_room_sf.yaml",
    "minecart-v0": ROOT / "configs" / "mo_minecart_sf.yaml",
    "mo-hopper-v5": ROOT / "configs" / "mo_hopper.yaml",
    "mo-halfcheetah-v5": ROOT / "configs" / "mo_halfcheetah.yaml",
}
AGENTS = {"successor_features": "successor features", "soft_actor_critic": "soft actor-critic"}
WALL_TARGET = 0.1  # our wall-clock as a fraction of each peer's


def ours(
    env_id: str, steps: int, divisions: int, episodes: int, seed: int, extra: list[str]
) -> dict:
    """Train our agent for `steps` env steps (config overrides `extra`); its expected utility,
    hypervolume (where the config has a reference point) and speed."""
    overrides = [f"total_steps={steps}", "eval_episodes=0", f"seed={seed}"]
    overrides += [f"replay.learning_starts={min(1_000, steps // 5)}", *extra]
    cfg = load_config(CONFIGS[env_id], overrides)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(cfg, Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - start
        _, _, agent = load(Path(tmp) / "run")
        row = evaluate_multi_objective(cfg, agent, divisions, episodes, seed)
    return {
        "agent": AGENTS[cfg.agent.heads],
        "eu": row["expected_utility"],
        "hv": row.get("hypervolume"),
        "wall_s": wall,
        "gamma": cfg.env.mo_gamma,
        "objectives": len(cfg.env.heads),
        "reference_point": cfg.env.reference_point,
    }


def peer(name: str, env_id: str, steps: int, mine: dict, args: argparse.Namespace) -> dict:
    """Train peer `name` for `steps` env steps; its expected utility (and hypervolume) on the
    weights ours met (the simplex lattice over `mine`'s objectives, discounted by `mine`'s
    gamma, above `mine`'s reference point)."""
    gamma, episodes, seed = mine["gamma"], args.episodes, args.seed
    agent, wall = train_peer(name, env_id, steps, gamma, seed)
    weights = simplex_lattice(mine["objectives"], args.divisions)
    values = peer_values(agent, name, env_id, weights.double().numpy(), episodes, gamma, seed)
    values = torch.as_tensor(values).float()
    reference = mine["reference_point"]
    hv = hypervolume(values, torch.tensor(reference)) if reference else None
    return {"eu": expected_utility(values, weights), "hv": hv, "wall_s": wall}


def table(rows: list[dict]) -> str:
    """One line per (env, agent): expected utility, wall-clock, env-steps/s, our wall / theirs."""
    header = ("steps", "EU", "HV", "wall s", "steps/s", "ours/theirs")
    lines = [f"{'env':<17} {'agent':<24} " + " ".join(f"{h:>11}" for h in header)]
    for row in rows:
        ratio = f"{row['wall_ratio']:.3f}" if "wall_ratio" in row else ""
        hv = "" if row.get("hv") is None else f"{row['hv']:.4g}"
        lines.append(
            f"{row['env']:<17} {row['agent']:<24} {row['steps']:>11,} {row['eu']:>11.3f} "
            f"{hv:>11} {row['wall_s']:>11.1f} {row['steps'] / row['wall_s']:>11,.0f} {ratio:>11}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run ours and each available peer on each env; print the table (and write JSON)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5_000, help="env steps of every agent")
    parser.add_argument("--envs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--divisions", type=int, default=10, help="simplex-lattice divisions")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per weight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of our configs, e.g. replay.replay_ratio=64 (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    args = parser.parse_args(argv)
    missing = peer_available()
    if missing:
        print(f"peers skipped: {missing}")
    rows = []
    for env_id in progress(args.envs, "multi-objective", "env"):
        mine = ours(env_id, args.steps, args.divisions, args.episodes, args.seed, args.set)
        rows.append({"env": env_id, "steps": args.steps, **mine})
        for name in () if missing else peers_of(env_id):
            theirs = peer(name, env_id, args.steps, mine, args)
            rows.append(
                {
                    "env": env_id,
                    "agent": f"morl-baselines {name}",
                    "steps": args.steps,
                    **theirs,
                    "wall_ratio": mine["wall_s"] / theirs["wall_s"],
                }
            )
            print(table(rows[-2:]), flush=True)
    print(table(rows))
    print(
        f"target against GPI-LS and Envelope: our EU >= theirs, our wall-clock <= "
        f"{WALL_TARGET:g} x theirs; CAPQL is set beside ours without a target"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
