"""Draw the patch matches DenseViT mines between two views of an image.

``python tools/visualization/vis_correspondence.py CONFIG CHECKPOINT``
takes sample ``--index`` of the config's two-view dataset (the
``test_dataloader``'s if there is one, else the ``train_dataloader``'s),
runs ``model(..., mode='predict')`` and draws its matches on backbone
features (top row) and dense features (bottom row): green within one patch
of the truth given by the crop boxes, red otherwise, grey where the patch
is not in the other view. Saved to ``--out`` and sent to the vis backends
of the config's ``visualizer``.
"""
import argparse
import os
import os.path as osp
import random

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from PIL import Image

from densevit.apis import init_model
from densevit.registry import DATASETS
from densevit.visualization import build_dense_visualizer, predict_two_views


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw DenseViT patch correspondences between two views')
    parser.add_argument('config', help='config file with a two-view dataset')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--index', type=int, default=0,
                        help='sample index in the dataset')
    parser.add_argument(
        '--split',
        choices=['auto', 'test', 'val', 'train'],
        default='auto',
        help="dataloader whose dataset to use; 'auto': test, else train")
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the random crops (the same seed gives the same views)')
    parser.add_argument('--max-lines', type=int, default=64,
                        help='draw at most this many matches per row')
    parser.add_argument('--tolerance', type=int, default=1,
                        help='Chebyshev distance in patches counted correct')
    parser.add_argument('--display-size', type=int, default=256,
                        help='height of each view in the picture')
    parser.add_argument('--out', default='correspondence.png',
                        help='output PNG')
    parser.add_argument('--work-dir',
                        help='where the vis backends save (default: '
                        'work_dirs/<config name>)')
    parser.add_argument('--device', default='cpu', help='e.g. cuda:0')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'train_dataloader.dataset.pipeline.0.min_overlap=0.5')
    args = parser.parse_args(argv)
    if args.tolerance < 0:
        parser.error(f'--tolerance must be >= 0 patches, got {args.tolerance}.')
    return args


def dataset_config(cfg: Config, split: str):
    """The dataset config of the chosen dataloader."""
    names = (['test', 'train'] if split == 'auto' else [split])
    for name in names:
        loader = cfg.get(f'{name}_dataloader')
        if loader and loader.get('dataset'):
            return loader['dataset']
    raise ValueError(
        f'The config has no {" or ".join(n + "_dataloader" for n in names)} '
        'with a dataset. Fix: use a training config (two-view '
        'train_dataloader) or pass --split.')


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'densevit'))
    model = init_model(cfg, args.checkpoint, device=args.device)

    # TwoViewCrop and the photometric augmentations draw from the global
    # generators: seed them so a picture can be reproduced.
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dataset = DATASETS.build(dataset_config(cfg, args.split))
    if not 0 <= args.index < len(dataset):
        raise ValueError(f'--index {args.index} is out of range: the dataset '
                         f'has {len(dataset)} samples.')
    sample = dataset[args.index]
    pred = predict_two_views(model, sample)

    visualizer = build_dense_visualizer(cfg, args.work_dir)
    picture = visualizer.add_correspondences(
        'correspondence',
        pred['view1'],
        pred['view2'],
        pred['matches'],
        pred['grid_hw'],
        pred['view_boxes'],
        pred['view_flips'],
        step=args.index,
        tolerance=args.tolerance,
        max_lines=args.max_lines,
        display_size=args.display_size,
        line_width=2 if args.display_size >= 256 else 1,
        seed=args.seed)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    Image.fromarray(picture).save(args.out)
    print(f'Saved {args.out} ({picture.shape[1]}x{picture.shape[0]})')


if __name__ == '__main__':
    main()
