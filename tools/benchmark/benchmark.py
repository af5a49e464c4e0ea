"""Benchmark DenseViT against mmpretrain's DenseCL, and the fused dense loss.

Examples::

    # the loss alone, CPU, at the sizes of the loss targets
    python tools/benchmark/benchmark.py --mode loss --batch 16 \\
        --img-size 224 --queue-len 65536 --feat-dim 128 \\
        --out work_dirs/bench_loss.json
    # full steps side by side, ViT-S/16, H200, bf16
    python tools/benchmark/benchmark.py --mode all --device cuda \\
        --precision bf16 --arch deit-small --batch 256 \\
        --out work_dirs/bench_h200.json

See docs/performance.md for what each case measures and how.
"""
import argparse
import dataclasses
import json
import os
import sys

from bench_report import format_report
from bench_run import MODES, failures, run_benchmark
from bench_spec import BenchmarkSpec
from densevit.models.losses.fused_info_nce import INFO_NCE_IMPLS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time a full training step of DenseViT and of '
        "mmpretrain's DenseCL (same ViT, batch, queue, precision) and the "
        'dense loss alone (fused vs materialised); print img/s, ms/step, '
        'peak memory, ratios and MFU.')
    parser.add_argument('--mode', choices=sorted(MODES), default='all',
                        help='step: full training steps; loss: dense '
                        'InfoNCE alone; all: both (default)')
    parser.add_argument('--arch', choices=['deit-tiny', 'deit-small', 'deit-base'],
                        default='deit-small', help='ViT arch (default deit-small)')
    parser.add_argument('--depth', type=int, default=None,
                        help='override the number of ViT layers (tests)')
    parser.add_argument('--batch', type=int, default=16,
                        help='images per step, two views each (default 16)')
    parser.add_argument('--img-size', type=int, default=224,
                        help='view size in px, multiple of 16 (default 224)')
    parser.add_argument('--queue-len', type=int, default=65536,
                        help='K, negatives per queue (default 65536)')
    parser.add_argument('--feat-dim', type=int, default=128,
                        help='D, projection dimension (default 128)')
    parser.add_argument('--hid-channels', type=int, default=2048,
                        help='projection MLP hidden width (default 2048)')
    parser.add_argument('--temperature', type=float, default=0.2,
                        help='InfoNCE temperature (default 0.2, DenseCL)')
    parser.add_argument('--precision', choices=['fp32', 'bf16'],
                        default='fp32',
                        help='fp32, or bf16 autocast (default fp32)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--iters', type=int, default=10,
                        help='timed iterations; the mean is reported '
                        '(default 10)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed iterations first, before the short '
                        "warm-up of torch.utils.benchmark's Timer "
                        '(default 3)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--peak-tflops', type=float, default=None,
                        help='device peak for MFU; default 989 on CUDA (H200 '
                        'bf16 dense), none on CPU. For fp32 on a GPU pass '
                        'its fp32/TF32 peak')
    parser.add_argument('--loss-impl', choices=INFO_NCE_IMPLS,
                        default='auto',
                        help="DenseViT's info_nce path in the loss cases: "
                        'auto (fused kernel where available), fused, or '
                        'chunked (the fall-back for inputs no fused kernel '
                        'accepts)')
    parser.add_argument('--isolate', choices=['auto', 'always', 'never'],
                        default='auto',
                        help='run each case in a fresh worker process: auto '
                        '= on CPU (peak RSS is process-wide), not on CUDA')
    parser.add_argument('--out', default=None,
                        help='write all measurements to this JSON file')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Run the benchmark, print the report, write --out; return results."""
    args = parse_args(argv)
    # Every BenchmarkSpec field is an option of the same name.
    spec = BenchmarkSpec(**{
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(BenchmarkSpec)
    })
    results = run_benchmark(spec, mode=args.mode, isolate=args.isolate)
    results['meta']['command'] = ' '.join(
        ['python tools/benchmark/benchmark.py'] +
        (sys.argv[1:] if argv is None else list(argv)))
    print(format_report(results))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'results written to {args.out}')
    return results


if __name__ == '__main__':
    # Non-zero when the fused loss disagrees with the materialised one or a
    # case failed, so scripts cannot mistake a broken run for a slow one.
    try:
        results = main()
    except ValueError as err:  # a bad option: the message names the fix
        print(f'benchmark: {err}', file=sys.stderr)
        sys.exit(2)
    problems = failures(results)
    for problem in problems:
        print(f'benchmark problem: {problem}', file=sys.stderr)
    sys.exit(1 if problems else 0)
