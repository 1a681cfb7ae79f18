#!/usr/bin/env bash
# A two-node Ray cluster simulated on this machine, on loopback addresses only: a head node and
# a second node, one CPU each, then a 4-trial quickstart sweep through `--address`. Each trial
# records the node that trained it; the sweep prints them, and this script fails unless both
# nodes trained trials. Both nodes are stopped at the end, whatever happens.
#
#     bash scripts/ray_two_nodes.sh [extra sweep.py options, e.g. --set total_steps=20000]
#
# `ray stop` stops every Ray process of this user on the machine, so run it where no other Ray
# cluster is in use. On a real cluster the same commands run on separate machines (see the
# README, "Sweeps over seeds and configs").
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=token  # every process here reads the token Ray keeps in ~/.ray
PORT="${RAY_PORT:-6390}"
NAME="two_nodes_$(date +%Y%m%d-%H%M%S)"
LOG="$(mktemp)"

trap 'ray stop --force >/dev/null 2>&1 || true; rm -f "$LOG"' EXIT
ray start --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus=1 \
    --include-dashboard=false --disable-usage-stats >/dev/null
ray start --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus=1 \
    --disable-usage-stats >/dev/null
ray status --address="127.0.0.1:$PORT" | sed -n '/Node status/,/Resources/p'

python sweep.py --config configs/quickstart.yaml --seeds 4 --cpus-per-trial 1 \
    --address "127.0.0.1:$PORT" --name "$NAME" "$@" | tee "$LOG"
grep -q "trials ran on 2 Ray node(s)" "$LOG" || { echo "the trials did not use both nodes" >&2; exit 1; }
echo "both nodes trained trials"
