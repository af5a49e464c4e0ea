"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--out F]``.

Prints each metric beside its chance level or geometry-only baseline. A
checkpoint that does not load, or whose weights do not fit the config's
model, stops the run with the reason before anything is evaluated.
"""
import argparse

from mmengine.config import Config

from densevit.apis import (add_runner_arguments, apply_cli_options,
                           build_runner, report_metrics)
from densevit.apis.runner_setup import exit_on_user_error


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a DenseViT model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument(
        '--partial-load',
        action='store_true',
        help='load only the weights that fit the model (the others keep '
        'their initial values, and are logged) instead of stopping')
    add_runner_arguments(parser)
    return parser.parse_args()


@exit_on_user_error()
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
    if args.partial_load:
        checkpoint_hook = cfg.get('default_hooks', {}).get('checkpoint')
        if not checkpoint_hook or \
                checkpoint_hook.get('type') != 'AtomicCheckpointHook':
            raise SystemExit(
                '--partial-load needs default_hooks.checkpoint='
                "dict(type='AtomicCheckpointHook', ...) in the config (the "
                'hook that checks the weights).')
        checkpoint_hook.strict_load = False
    for key in ('test_dataloader', 'test_evaluator', 'test_cfg'):
        if cfg.get(key) is None:
            raise SystemExit(
                f'{args.config} has no `{key}`. Fix: evaluate with a config '
                'that defines test_dataloader/test_evaluator/test_cfg (the '
                'demo config and the configs under configs/densevit/'
                'benchmarks/ do).')
    runner = build_runner(cfg, training=False)
    report_metrics(runner.test(), args.out)


if __name__ == '__main__':
    main()
