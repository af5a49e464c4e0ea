"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--out F]``.

Prints each metric beside its chance level or geometry-only baseline.
"""
import argparse

from mmengine.config import Config

from densevit.apis import (add_runner_arguments, apply_cli_options,
                           build_runner, report_metrics)


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a DenseViT model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    add_runner_arguments(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg = apply_cli_options(
        cfg,
        args.config,
        work_dir=args.work_dir,
        cfg_options=args.cfg_options,
        launcher=args.launcher)
    cfg.load_from = args.checkpoint
    for key in ('test_dataloader', 'test_evaluator', 'test_cfg'):
        if cfg.get(key) is None:
            raise SystemExit(
                f'{args.config} has no `{key}`. Fix: evaluate with a config '
                'that defines test_dataloader/test_evaluator/test_cfg (the '
                'demo config and the configs under configs/densevit/'
                'benchmarks/ do).')
    runner = build_runner(cfg, training=False)
    metrics = runner.test()
    report_metrics(metrics, args.out)


if __name__ == '__main__':
    main()
