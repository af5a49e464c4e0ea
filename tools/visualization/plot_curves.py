"""Plot losses, learning rate and probe / validation metrics of a run.

``python tools/visualization/plot_curves.py WORK_DIR_OR_SCALARS_JSON``
reads MMEngine's ``<work_dir>/<timestamp>/vis_data/scalars.json`` (the
newest run; ``--runs all`` joins resumed runs) with mmpretrain's
``load_json_log`` and saves ``--out``. Unlike mmpretrain's
``analyze_logs.py plot_curve``, no ``--keys`` are needed: every loss, the
learning rate and every metric get a panel. With ``--config`` the picture
also goes to that config's vis backends.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config
from PIL import Image

from densevit.visualization import build_dense_visualizer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Plot DenseViT training curves')
    parser.add_argument(
        'log', help='work dir, run dir or vis_data/scalars.json')
    parser.add_argument('--out', default='curves.png', help='output PNG')
    parser.add_argument(
        '--runs',
        choices=['latest', 'all'],
        default='latest',
        help='for a work dir: the newest run, or all runs joined in order')
    parser.add_argument('--title', help='figure title')
    parser.add_argument(
        '--config', help='also send the picture to this config\'s '
        'vis backends')
    parser.add_argument('--work-dir',
                        help='where the vis backends save (with --config)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config) if args.config else None
    visualizer = build_dense_visualizer(cfg, args.work_dir)
    picture = visualizer.add_training_curves(
        'training_curves', args.log, runs=args.runs, title=args.title)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    Image.fromarray(picture).save(args.out)
    print(f'Saved {args.out} ({picture.shape[1]}x{picture.shape[0]})')


if __name__ == '__main__':
    main()
