#!/usr/bin/env bash
# Every GPU check DenseViT has, as one command for a short device lease:
# the CUDA tests (tests/test_cuda; with the FSDP config in bf16 and its
# resume), the H200 benchmark whose numbers go in docs/performance.md, and
# the memory of a ViT-S/B/L training step at batch 64 in bf16 for
# docs/distributed.md.
#
#   bash tools/device_check.sh [OUT_DIR]      (default: $OUT, else
#                                              work_dirs/device_check)
#
# On an image without mmengine / mmcv-lite / mmpretrain the wheels in .whl/
# (requirements/mminstall.txt and device.txt; docs/performance.md) are
# installed to /tmp/site first. Exit status: non-zero if a test, the
# benchmark or a memory measurement failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-work_dirs/device_check}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# densevit from this checkout, installed or not.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if ! python3 -c 'import mmpretrain' 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo 'mmpretrain is not installed and .whl/ holds no wheels.' \
            'Fix: download requirements/mminstall.txt and device.txt' \
            'into .whl/ (docs/performance.md, "H200") and carry it.' >&2
        exit 2
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

{
    date -u '+%Y-%m-%d %H:%M UTC'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c 'import torch; print("torch", torch.__version__,
        "cuda", torch.version.cuda)'
} 2>&1 | tee "$out/environment.txt"

python3 -m pytest tests/test_cuda -q -rs -p no:cacheprovider 2>&1 |
    tee "$out/cuda_tests.log"
tests_rc=${PIPESTATUS[0]}

python3 tools/benchmark/benchmark.py --mode all --device cuda --precision bf16 \
    --arch deit-small --batch 256 --img-size 224 --queue-len 65536 \
    --feat-dim 128 --iters 20 --warmup 5 --peak-tflops 989 \
    --out "$out/h200_vit-small-p16_b256_bf16.json" 2>&1 |
    tee "$out/benchmark.log"
bench_rc=${PIPESTATUS[0]}

# One process holds the whole model (as under DDP); the shards of FSDP over
# N GPUs follow from it (docs/distributed.md, "Memory per GPU").
memory_rc=0
for arch in deit-small deit-base large; do
    python3 tools/benchmark/memory_per_gpu.py \
        configs/densevit/densevit_vit-large-p16_8xb64-fsdp-amp-coslr-100e_in1k.py \
        --arch "$arch" --batch 64 --device cuda --precision bf16 \
        --out "$out/memory_${arch}_b64_bf16.json" 2>&1 |
        tee -a "$out/memory.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || memory_rc=1
done

echo "cuda tests exit $tests_rc, benchmark exit $bench_rc," \
    "memory exit $memory_rc"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$memory_rc" -eq 0 ]
