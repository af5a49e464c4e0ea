#!/usr/bin/env bash
# Usage: [NNODES=1] [NODE_RANK=0] [MASTER_ADDR=127.0.0.1] [PORT=29500] \
#     [MAX_RESTARTS=0] tools/dist_train.sh CONFIG GPUS [train.py options]
# GPUS processes on this node; on NNODES nodes, start it once per node with
# NODE_RANK 0..NNODES-1 and MASTER_ADDR/PORT of node 0.
# MAX_RESTARTS=N: torchrun replaces the processes up to N times when one
# fails, and the restarted ones resume from the newest checkpoint of the
# work dir by themselves (tools/train.py; docs/distributed.md).
# On a CPU-only machine the processes talk over gloo (set automatically).
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
MAX_RESTARTS=${MAX_RESTARTS:-0}

if [[ $MAX_RESTARTS -gt 0 ]]; then
    # A restart must not meet the failed attempt's addresses in the store
    # the processes connect through (pytorch/pytorch#135712): torchrun's
    # static rendezvous keeps one store for all attempts, and so does the
    # c10d one unless its store is not shared; unshared, each attempt's
    # processes start a store of their own. The rendezvous then numbers
    # the nodes itself (NODE_RANK is not used).
    export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
    RENDEZVOUS=(--rdzv_backend=c10d --rdzv_endpoint="$MASTER_ADDR:$PORT"
                --max_restarts="$MAX_RESTARTS")
else
    RENDEZVOUS=(--node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR"
                --master_port="$PORT")
fi

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
python -m torch.distributed.run \
    --nnodes=$NNODES \
    "${RENDEZVOUS[@]}" \
    --nproc_per_node=$GPUS \
    "$(dirname "$0")/train.py" \
    $CONFIG \
    --launcher pytorch ${@:3}
