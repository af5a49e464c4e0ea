"""Save a model as initialised, untrained: the random-init baseline.

    python tools/analysis_tools/init_checkpoint.py CONFIG OUT.pth [--seed 0]

``tools/test.py CONFIG OUT.pth`` then scores a randomly initialised backbone
with exactly the evaluation a trained checkpoint gets.
"""
import argparse

import torch
from mmengine.runner import set_random_seed

from densevit.apis import init_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('out')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    set_random_seed(args.seed)
    model = init_model(args.config)
    torch.save({'state_dict': model.state_dict(),
                'meta': {'seed': args.seed}}, args.out)
    print(f'saved the initialised model of {args.config} to {args.out}')


if __name__ == '__main__':
    main()
