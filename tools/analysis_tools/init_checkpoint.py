"""Save a model as initialised, untrained: the random-init baseline.

    python tools/analysis_tools/init_checkpoint.py CONFIG OUT.pth [--seed 0]

``tools/test.py CONFIG OUT.pth`` then scores a randomly initialised backbone
with exactly the evaluation a trained checkpoint gets. A ``Pretrained``
``init_cfg`` is loaded as training loads it (the baseline of a
post-pretraining config is its converted weights); a config mistake, such as
a missing ``Pretrained`` checkpoint, stops the tool with the field and the
fix.
"""
import argparse

import torch
from mmengine.config import Config
from mmengine.runner import set_random_seed

from densevit.apis import check_config, init_model
from densevit.apis.runner_setup import exit_on_user_error


@exit_on_user_error()
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('out')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    # The model is initialised as for training (Pretrained files loaded),
    # so the config gets training's checks, as tools/train.py gives it.
    check_config(cfg)
    set_random_seed(args.seed)
    model = init_model(cfg)
    torch.save({'state_dict': model.state_dict(),
                'meta': {'seed': args.seed}}, args.out)
    print(f'saved the initialised model of {args.config} to {args.out}')


if __name__ == '__main__':
    main()
