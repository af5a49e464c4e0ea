#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#     tools/slurm_run.sh PARTITION JOB_NAME TOOL [TOOL arguments]
# Runs tools/TOOL (train.py, test.py) under srun with --launcher=slurm: one
# task per GPU, GPUS tasks in all, GPUS_PER_NODE on each node; each reads
# its rank from srun's variables. tools/slurm_train.sh and
# tools/slurm_test.sh call it. MASTER_PORT (default 29500) picks the
# rendezvous port of rank 0's node. Without GPUs the tasks talk over gloo
# (set automatically).
set -x

PARTITION=$1
JOB_NAME=$2
TOOL=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    python -u "$(dirname "$0")/$TOOL" "${@:4}" --launcher=slurm
