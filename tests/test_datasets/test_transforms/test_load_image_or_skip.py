import os.path as osp

import pytest
from mmengine.config import Config

from densevit.datasets import LoadImageOrSkip
from densevit.registry import TRANSFORMS

PIPELINE_CFG = osp.join(
    osp.dirname(__file__),
    '../../../configs/_base_/datasets/two_view_pipeline.py')


@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
def test_shipped_loader_logs_and_counts_each_skipped_file(
        backend, tmp_path, write_broken_images, write_good_images,
        logged_warnings):
    # The shipped `load_image` step, with either decoding backend: before,
    # Pillow skipped these files silently and OpenCV raised cv2.error
    # (empty file) or an assertion (the others).
    load_cfg = Config.fromfile(PIPELINE_CFG).load_image
    load = TRANSFORMS.build(dict(load_cfg, imdecode_backend=backend))
    good = write_good_images(tmp_path)[0]
    broken = write_broken_images(tmp_path)
    missing = str(tmp_path / 'missing.jpg')
    assert load(dict(img_path=good))['img'].shape == (24, 32, 3)
    for path in broken + [missing]:
        assert load(dict(img_path=path)) is None
    logged = logged_warnings
    assert len(logged) == 4
    for i, (path, message) in enumerate(zip(broken + [missing], logged)):
        assert f'Skipped unreadable image "{path}"' in message
        assert f'{i + 1} of the {i + 2} images this process tried' in message
    assert 'empty file (0 bytes)' in logged[0]
    assert f'{backend} cannot decode it' in logged[1]
    assert 'FileNotFoundError' in logged[3]


def test_more_than_the_allowed_share_raises_naming_the_files(
        tmp_path, write_broken_images, write_good_images):
    good = write_good_images(tmp_path)[0]
    broken = write_broken_images(tmp_path)
    load = LoadImageOrSkip(max_unreadable_fraction=0.05)
    # Counted over at least 100 tries: 5 unreadable files are tolerated...
    for i in range(5):
        assert load(dict(img_path=broken[i % 3])) is None
    # ...and over 200 tries, 10.
    for i in range(190):
        assert load(dict(img_path=good)) is not None
    for i in range(5):
        assert load(dict(img_path=broken[i % 3])) is None
    assert (load.num_tried, load.num_unreadable) == (200, 10)
    with pytest.raises(ValueError, match=r'11 of the 201 images this '
                       r'process tried are unreadable, more than '
                       r'max_unreadable_fraction=0.05 allows') as error:
        load(dict(img_path=broken[0]))
    for path in broken:
        assert f'"{path}"' in str(error.value)


def test_zero_share_raises_at_the_first_unreadable_file(
        tmp_path, write_broken_images):
    path = write_broken_images(tmp_path)[1]
    load = LoadImageOrSkip(max_unreadable_fraction=0)
    with pytest.raises(ValueError, match=f'1 of the 1 images.*"{path}"'):
        load(dict(img_path=path))


@pytest.mark.parametrize('kwargs,match', [
    (dict(max_unreadable_fraction=1.0), r'in \[0, 1\)'),
    (dict(max_unreadable_fraction=-0.1), r'in \[0, 1\)'),
    (dict(max_unreadable_fraction='0.1'), 'must be a number'),
    (dict(imdecode_backend='pil'), 'imdecode_backend'),
])
def test_bad_arguments_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoadImageOrSkip(**kwargs)
