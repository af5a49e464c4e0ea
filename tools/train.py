"""Train a DenseViT model: ``python tools/train.py CONFIG [options]``.

Under ``torchrun --max-restarts`` (``MAX_RESTARTS`` of tools/dist_train.sh),
a restarted process resumes from the newest checkpoint of the work dir by
itself (``elastic_restart`` of :func:`densevit.apis.apply_cli_options`).
"""
import argparse
import os

from mmengine.config import Config

from densevit.apis import add_runner_arguments, apply_cli_options, build_runner
from densevit.apis.runner_setup import exit_on_user_error


def parse_args():
    parser = argparse.ArgumentParser(description='Train a DenseViT model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or, without a value, from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='mixed precision (bf16) training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the real total batch size')
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
        resume=args.resume,
        amp=args.amp,
        auto_scale_lr=args.auto_scale_lr,
        cfg_options=args.cfg_options,
        launcher=args.launcher,
        # torchrun counts the restarts of the processes it started.
        elastic_restart=int(os.environ.get('TORCHELASTIC_RESTART_COUNT',
                                           '0')) > 0)
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
