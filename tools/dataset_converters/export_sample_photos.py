"""Write the real photographs bundled with scikit-image (and scikit-learn)
into an image folder, for offline real-photo evaluation and pretraining.

    python tools/dataset_converters/export_sample_photos.py data/sample_photos

Only photographs are exported (charts, text pages, logos and binary test
patterns are skipped); greyscale photos are written as 3-channel PNGs so the
folder works with every colour pipeline. With ``--crops N --size S`` it
instead writes N random square crops per photo, resized to S px, as
``<photo>/<index>.png`` sub-folders: a labelled folder (class = source photo)
for probes, split by image region with ``--rows`` (and told apart by
``--name-prefix``) so fit and scored crops come from different parts of each
photo.
"""
import argparse
import os
import os.path as osp
import sys

import numpy as np
from PIL import Image

# scikit-image's bundled real photographs (file names in skimage/data).
SKIMAGE_PHOTOS = ('astronaut.png', 'brick.png', 'camera.png', 'chelsea.png',
                  'coffee.png', 'coins.png', 'grass.png', 'gravel.png',
                  'hubble_deep_field.jpg', 'ihc.png', 'moon.png',
                  'motorcycle_left.png', 'retina.jpg', 'rocket.jpg')


def load_sample_photos() -> dict:
    """``{name: (H, W, 3) uint8 RGB}`` of the bundled photographs.

    Raises:
        ImportError: scikit-image is not installed (``pip install
            scikit-image``).
    """
    try:
        import skimage
    except ImportError as error:
        raise ImportError(
            'The sample photos ship with scikit-image. Fix: pip install '
            'scikit-image (and scikit-learn for two more photos).') from error
    folder = osp.join(osp.dirname(skimage.__file__), 'data')
    photos = {}
    for filename in SKIMAGE_PHOTOS:
        path = osp.join(folder, filename)
        if osp.isfile(path):  # some builds fetch a few files lazily
            photos[osp.splitext(filename)[0]] = np.asarray(
                Image.open(path).convert('RGB'))
    try:
        from sklearn.datasets import load_sample_images
        china, flower = load_sample_images().images
        photos.update(china=china, flower=flower)
    except ImportError:
        pass
    return photos


def export_crops(photos: dict,
                 out_dir: str,
                 crops: int,
                 size: int,
                 rows: tuple,
                 seed: int,
                 name_prefix: str = '') -> int:
    """Write ``crops`` random square crops of each photo; return the count.

    Crops lie within the band ``rows`` (fractions of the photo height) and
    span 15-40% of the photo's shorter side.
    """
    rng = np.random.default_rng(seed)
    count = 0
    for name, photo in sorted(photos.items()):
        height, width = photo.shape[:2]
        top, bottom = int(rows[0] * height), int(rows[1] * height)
        os.makedirs(osp.join(out_dir, name), exist_ok=True)
        for index in range(crops):
            side = int(rng.uniform(0.15, 0.4) * min(height, width))
            side = max(1, min(side, bottom - top))
            y = int(rng.integers(top, bottom - side + 1))
            x = int(rng.integers(0, width - side + 1))
            crop = Image.fromarray(photo[y:y + side, x:x + side])
            crop.resize((size, size), Image.BICUBIC).save(
                osp.join(out_dir, name, f'{name_prefix}{index:04d}.png'))
            count += 1
    return count


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out_dir', help='folder to write the images into')
    parser.add_argument(
        '--crops', type=int, default=0,
        help='random crops per photo (0: write the whole photos)')
    parser.add_argument('--size', type=int, default=96,
                        help='side of the crops in pixels')
    parser.add_argument(
        '--rows', type=float, nargs=2, default=(0.0, 1.0),
        metavar=('TOP', 'BOTTOM'),
        help='band of each photo the crops come from, as fractions of its '
        'height (e.g. 0 0.6 for train, 0.6 1 for val)')
    parser.add_argument(
        '--name-prefix', default='',
        help='prefix of the crop file names (e.g. fit_ / score_, which '
        "the probe metrics' fit_pattern splits on)")
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    top, bottom = args.rows
    if not 0.0 <= top < bottom <= 1.0:
        parser.error(f'--rows must satisfy 0 <= TOP < BOTTOM <= 1, got '
                     f'{top} {bottom}.')
    if args.crops < 0 or args.size < 8:
        parser.error('--crops must be >= 0 and --size >= 8.')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    photos = load_sample_photos()
    if args.crops:
        count = export_crops(photos, args.out_dir, args.crops, args.size,
                             tuple(args.rows), args.seed, args.name_prefix)
    else:
        os.makedirs(args.out_dir, exist_ok=True)
        for name, photo in photos.items():
            Image.fromarray(photo).save(osp.join(args.out_dir, f'{name}.png'))
        count = len(photos)
    print(f'Wrote {count} images of {len(photos)} photos to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
