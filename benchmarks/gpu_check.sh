#!/usr/bin/env bash
# The benchmarks on a GPU machine, in one go, within 8 minutes (sized for one H200).
#
#   bash benchmarks/gpu_check.sh        # from the repository's root
#
# Installs nothing: it runs the benchmarks with the Python environment that
# tfvae is installed in, each under a time limit, and ends by printing their
# JSON lines together (one per benchmark, as `python benchmarks/X.py` prints
# them). Exit status 1 if any of them failed or ran out of time.
#
#   1. train_speed.py --epochs 8 --rounds 2      on GPU 0 (reduced: 2 rounds
#      instead of the default 3; each round starts two fresh processes, which
#      pay TensorFlow's start-up and the GPU's initialisation)
#   2. quality.py --epochs 50 --nll-samples 1000 on GPU 0 (the defaults)
#   3. distributed_speed.py --epochs 6           on all GPUs (one GPU, then
#      MirroredStrategy over every GPU when there are several)
#   4. reproduce.py --dataset mnist5k --epochs 2 --nll-samples 100
#                                                on GPU 0 (the quick version:
#      the paper's networks and schedule, cut after 2 of 3,280 epochs, on
#      mnist5k; its numbers are not comparable with the paper's, and say so)
#
# Each step runs under a time limit; the limits add up to 480 s, so the whole
# script ends within about 8 minutes even if a step hangs. The steps' GPU run
# times are estimates: not measured on a GPU yet (docs/benchmarks.md reports
# CPU numbers only).

set -u -o pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfvae-gpu-check.XXXXXX")
export TF_CPP_MIN_LOG_LEVEL=2
start=$SECONDS
failed=()

if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
else
    echo "gpu_check: nvidia-smi not found; TensorFlow may see no GPU" >&2
fi
"$PYTHON" -c 'import tensorflow as tf; print("TensorFlow", tf.__version__, "GPUs:", len(tf.config.list_physical_devices("GPU")))'

# run NAME LIMIT_S GPUS COMMAND...: runs COMMAND with CUDA_VISIBLE_DEVICES=GPUS
# ("all": unchanged), its output shown and kept in $LOG_DIR/NAME.log.
run() {
    local name=$1 limit=$2 gpus=$3
    shift 3
    local step_start=$SECONDS
    echo
    echo "=== $name (limit ${limit} s): $*"
    if [ "$gpus" = all ]; then
        timeout "$limit" "$@" 2>&1 | tee "$LOG_DIR/$name.log"
    else
        CUDA_VISIBLE_DEVICES=$gpus timeout "$limit" "$@" 2>&1 | tee "$LOG_DIR/$name.log"
    fi
    local status=$?
    echo "=== $name: exit status $status after $((SECONDS - step_start)) s"
    if [ "$status" -ne 0 ]; then
        failed+=("$name (exit status $status)")
    fi
}

run train_speed 150 0 "$PYTHON" benchmarks/train_speed.py --epochs 8 --rounds 2
run quality 150 0 "$PYTHON" benchmarks/quality.py --epochs 50 --nll-samples 1000
run distributed_speed 90 all "$PYTHON" benchmarks/distributed_speed.py --epochs 6
run reproduce 90 0 "$PYTHON" benchmarks/reproduce.py --dataset mnist5k --epochs 2 --nll-samples 100

echo
echo "=== JSON lines ($((SECONDS - start)) s in all; logs in $LOG_DIR)"
for name in train_speed quality distributed_speed reproduce; do
    grep -h '^{' "$LOG_DIR/$name.log" | tail -n 1
done
if [ "${#failed[@]}" -ne 0 ]; then
    echo "gpu_check: failed: ${failed[*]}" >&2
    exit 1
fi
