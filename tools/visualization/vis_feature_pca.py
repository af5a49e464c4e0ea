"""Colour a DenseViT's dense features by PCA.

``python tools/visualization/vis_feature_pca.py CONFIG CHECKPOINT IMAGE``
writes ``[image | PCA map | overlay]``; ``--synthetic N`` draws N
SyntheticShapes images instead of an image file (one row each, one PCA
over all rows so colours are comparable). The picture is saved to ``--out``
and sent to the vis backends of the config's ``visualizer``.
"""
import argparse
import os
import os.path as osp

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from PIL import Image

from densevit.apis import extract_dense_features, init_model
from densevit.visualization import (as_rgb_array, build_dense_visualizer,
                                    resize_rgb)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='PCA colour map of DenseViT dense features')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('image', nargs='?', help='image file')
    parser.add_argument(
        '--synthetic',
        type=int,
        metavar='N',
        help='draw N SyntheticShapes images instead of IMAGE')
    parser.add_argument(
        '--seed', type=int, default=0, help='SyntheticShapes seed')
    parser.add_argument(
        '--size',
        type=int,
        default=224,
        help='the image is resized to SIZE x SIZE (a multiple of 16)')
    parser.add_argument(
        '--features',
        choices=['dense', 'backbone'],
        default='dense',
        help='projected dense features or backbone patch features')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='weight of the map in the overlay')
    parser.add_argument(
        '--display-size',
        type=int,
        default=256,
        help='height of each image in the picture, in pixels')
    parser.add_argument(
        '--interpolation',
        choices=['nearest', 'bilinear'],
        default='nearest',
        help='how the patch map is upsampled')
    parser.add_argument('--out', default='feature_pca.png',
                        help='output PNG')
    parser.add_argument('--work-dir',
                        help='where the vis backends save (default: '
                        'work_dirs/<config name>)')
    parser.add_argument('--device', default='cpu', help='e.g. cuda:0')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.backbone.img_size=224')
    args = parser.parse_args(argv)
    if (args.image is None) == (args.synthetic is None):
        parser.error('give either IMAGE or --synthetic N')
    if args.synthetic is not None and args.synthetic < 1:
        parser.error('--synthetic N needs N >= 1')
    return args


def load_images(args):
    """The RGB images to show, as (H, W, 3) uint8 arrays."""
    if args.image is not None:
        return [as_rgb_array(Image.open(args.image))]
    from densevit.datasets import SyntheticShapes
    dataset = SyntheticShapes(
        num_samples=args.synthetic, img_size=args.size, seed=args.seed)
    # The dataset yields BGR (like OpenCV loading); flip for display.
    return [
        np.ascontiguousarray(dataset[i]['img'][..., ::-1])
        for i in range(len(dataset))
    ]


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'densevit'))
    model = init_model(cfg, args.checkpoint, device=args.device)

    key, layout = (('dense', 'hwc') if args.features == 'dense' else
                   ('patches', 'chw'))
    images, feats = [], []
    for image in load_images(args):
        feats.append(extract_dense_features(model, image, args.size)[key])
        # Show what the model saw: the image resized to SIZE x SIZE.
        seen = resize_rgb(image, (args.size, args.size))
        images.append(
            resize_rgb(seen, (args.display_size, args.display_size)))

    visualizer = build_dense_visualizer(cfg, args.work_dir)
    picture = visualizer.add_feature_pca(
        f'feature_pca_{args.features}',
        images if len(images) > 1 else images[0],
        feats if len(feats) > 1 else feats[0],
        alpha=args.alpha,
        layout=layout,
        interpolation=args.interpolation)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    Image.fromarray(picture).save(args.out)
    print(f'Saved {args.out} ({picture.shape[1]}x{picture.shape[0]})')


if __name__ == '__main__':
    main()
