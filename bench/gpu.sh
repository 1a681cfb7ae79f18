#!/usr/bin/env bash
# The device figures of docs/speed.md ("On a GPU") on one CUDA GPU, in about 8 minutes:
#
#   bash bench/gpu.sh [OUT_DIR]            # default runs/gpu_bench
#
# 1. python -m bench.sync_free --device cuda (no synchronisation between log points, under
#    torch's sync debug mode) and python -m bench.throughput --device cuda --device-graphs:
#    env-only (up to N = 65,536), acting, the pure update limit, end-to-end and their ratio,
#    and the env-only and end-to-end rows again with the world's step compiled;
# 2. configs/gpu/{quickstart,random_rooms,boolean_rooms}.yaml trained, each timed, with the
#    heads' own evaluation, and the 63 Boolean tasks zero-shot on boolean_rooms;
# 3. the GPU / CPU wall-clock ratio of the same config (configs/quickstart.yaml, this
#    machine's CPU).
#
# A smoke run elsewhere: DEVICE=cpu STEPS=20000 bash bench/gpu.sh /tmp/gpu_smoke (tiny
# budgets on the CPU; checks the script, measures nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_bench}"
DEVICE="${DEVICE:-cuda}"
STEPS="${STEPS:-}"
device_line=$(python bench/device_info.py "$DEVICE")  # stops here where the device is missing
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
echo "$device_line" | tee "$SUMMARY"

budget=()
quick=()
if [ -n "$STEPS" ]; then
    budget=(--set "total_steps=$STEPS" --set eval_episodes=10 --set replay.learning_starts=4096)
    quick=(--quick)
fi

# seconds of wall clock of a command, its output kept in a log
timed() {
    local log="$1"
    shift
    local start end
    start=$(date +%s.%N)
    "$@" > "$log" 2>&1 || { tail -20 "$log" >&2; return 1; }
    end=$(date +%s.%N)
    python -c "print(f'{$end - $start:.1f}')"
}

sync_steps=163840
[ -n "$STEPS" ] && sync_steps="$STEPS"
for config in quickstart boolean_rooms; do  # no host synchronisation between log points
    python -m bench.sync_free --device "$DEVICE" --config "configs/gpu/$config.yaml" \
        --steps "$sync_steps" --set replay.learning_starts=4096 | tee -a "$SUMMARY"
done

python -m bench.throughput --device "$DEVICE" --device-graphs "${quick[@]}" \
    --json "$OUT/throughput.json" > "$OUT/throughput.txt" 2>&1
sed -n '/^targets:/,$p' "$OUT/throughput.txt" | tee -a "$SUMMARY"

for config in quickstart random_rooms boolean_rooms; do
    seconds=$(timed "$OUT/$config.log" python train.py --config "configs/gpu/$config.yaml" \
        --no-progress --overwrite --set device="$DEVICE" --set runs_dir="$OUT" \
        --set run_name="$config" "${budget[@]}")
    echo "configs/gpu/$config.yaml: trained in $seconds s (with its evaluation)" | tee -a "$SUMMARY"
    sed -n '/^    task/,$p' "$OUT/$config.log" >> "$SUMMARY"
done
episodes=200
[ -n "$STEPS" ] && episodes=5
python zero_shot.py --checkpoint "$OUT/boolean_rooms" --all-boolean --episodes "$episodes" \
    --json "$OUT/boolean.json" --plot "$OUT/boolean.png" 2>/dev/null \
    | grep "tasks: mean normalised return" | sed 's/^/63 Boolean tasks zero-shot: /' \
    | tee -a "$SUMMARY"

declare -A wall
for device in "$DEVICE" cpu; do
    wall[$device]=$(timed "$OUT/quickstart_$device.log" python train.py \
        --config configs/quickstart.yaml --no-progress --overwrite --set device="$device" \
        --set runs_dir="$OUT" --set run_name="quickstart_$device" --set eval_episodes=0 \
        "${budget[@]}")
    echo "configs/quickstart.yaml on $device: ${wall[$device]} s" | tee -a "$SUMMARY"
done
python -c "print(f'GPU / CPU wall clock, configs/quickstart.yaml: {${wall[$DEVICE]} / ${wall[cpu]}:.3f}')" \
    | tee -a "$SUMMARY"
echo "summary: $SUMMARY"
