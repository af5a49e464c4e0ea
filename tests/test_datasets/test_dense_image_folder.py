import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from densevit.datasets import DenseImageFolder, check_data_root
from densevit.registry import DATASETS

CFG = osp.join(
    osp.dirname(__file__), '../../configs/_base_/datasets/imagenet_224px.py')


def write_folder(root, classes=('cat', 'dog'), n=2):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            img = np.full((20, 30, 3), 40 * i, np.uint8)
            Image.fromarray(img).save(root / c / f'{i}.jpg')


def test_check_data_root_errors(tmp_path):
    missing = tmp_path / 'imagenet' / 'train'
    with pytest.raises(FileNotFoundError, match=str(missing)) as e:
        check_data_root(str(missing))
    assert 'Fix' in str(e.value)
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    (tmp_path / 'empty' / 'sub' / 'notes.txt').write_text('x')
    with pytest.raises(ValueError, match='contains no images'):
        check_data_root(str(tmp_path / 'empty'))
    (tmp_path / 'file.jpg').write_text('x')
    with pytest.raises(FileNotFoundError, match='is a file'):
        check_data_root(str(tmp_path / 'file.jpg'))
    flat = tmp_path / 'flat'
    flat.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(flat / 'x.png')
    check_data_root(str(flat))  # fine without labels
    with pytest.raises(ValueError, match='with_label=False'):
        check_data_root(str(flat), with_label=True)


def test_folder_dataset_builds_and_loads(tmp_path):
    write_folder(tmp_path / 'train')
    ds = DATASETS.build(
        dict(
            type='DenseImageFolder',
            data_root=str(tmp_path),
            data_prefix='train',
            pipeline=[
                dict(type='LoadImageFromFile', imdecode_backend='pillow'),
                dict(type='TwoViewCrop', size=16),
                dict(type='PackDenseInputs')
            ]))
    assert len(ds) == 4 and ds.metainfo['classes'] == ('cat', 'dog')
    out = ds[3]
    assert [t.shape for t in out['inputs']] == [(3, 16, 16)] * 2
    assert out['data_samples'].gt_label.tolist() == [1]


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DenseImageFolder(data_root=str(tmp_path / 'x'), data_prefix='train')
    write_folder(tmp_path / 'train')
    with pytest.raises(FileNotFoundError, match='meta/train.txt'):
        DenseImageFolder(
            data_root=str(tmp_path),
            data_prefix='train',
            ann_file='meta/train.txt')
    with pytest.raises(ValueError, match='data_root'):
        DenseImageFolder()


def test_imagenet_config(tmp_path):
    cfg = Config.fromfile(CFG)
    ds_cfg = cfg.train_dataloader.dataset.to_dict()
    assert ds_cfg['data_root'] == 'data/imagenet'
    load = cfg.train_pipeline[0]
    assert load.type == 'LoadImageOrSkip'
    assert load.imdecode_backend == 'pillow'
    # Missing data: a clear error before training, naming the folder.
    ds_cfg['data_root'] = str(tmp_path / 'imagenet')
    with pytest.raises(FileNotFoundError, match='imagenet'):
        DATASETS.build(ds_cfg)
    write_folder(tmp_path / 'imagenet' / 'train', n=1)
    ds = DATASETS.build(ds_cfg)
    out = ds[0]
    assert [t.shape for t in out['inputs']] == [(3, 224, 224)] * 2


def photo_folder(data_root, test_mode=False):
    """The shipped unlabelled-folder dataset config, pointed at data_root."""
    cfg = Config.fromfile(
        osp.join(osp.dirname(CFG), 'photo_folder_64px.py'))
    loader = cfg.test_dataloader.dataset.dataset if test_mode else \
        cfg.train_dataloader.dataset
    return dict(loader.to_dict(), data_root=str(data_root))


def test_folder_of_only_broken_files_fails_at_build(tmp_path,
                                                    write_broken_images):
    # Before: built fine, then "Cannot find valid image after 1000!".
    broken = write_broken_images(tmp_path / 'photos')
    with pytest.raises(ValueError, match='None of the 3 images checked in '
                       f'"{tmp_path / "photos"}" can be read:') as error:
        DATASETS.build(photo_folder(tmp_path / 'photos'))
    for path in broken:
        assert f'"{path}"' in str(error.value)


def test_broken_files_named_at_build_and_skipped_in_training(
        tmp_path, write_broken_images, write_good_images, logged_warnings):
    folder = tmp_path / 'photos'
    write_good_images(folder, n=2)
    broken = write_broken_images(folder)
    ds = DATASETS.build(photo_folder(folder))
    assert any('3 of the 5 images checked' in m and all(
        f'"{p}"' in m for p in broken) for m in logged_warnings)
    sample = ds[[ds.get_data_info(i)['img_path']
                 for i in range(len(ds))].index(broken[0])]
    assert [t.shape for t in sample['inputs']] == [(3, 64, 64)] * 2
    assert any(f'Skipped unreadable image "{broken[0]}"' in m
               for m in logged_warnings)


def test_unreadable_image_in_test_mode_named(tmp_path, write_broken_images,
                                             write_good_images):
    folder = tmp_path / 'photos'
    write_good_images(folder, n=2)
    broken = write_broken_images(folder)
    ds = DATASETS.build(photo_folder(folder, test_mode=True))
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    # Before: "Test time pipline should not get `None` data_sample".
    with pytest.raises(ValueError, match=f'"{broken[1]}" could not be '
                       'loaded'):
        ds[paths.index(broken[1])]


def test_worker_raises_naming_the_files(tmp_path, write_broken_images,
                                        write_good_images):
    # Mostly broken data passes the build-time sample (one image reads),
    # then a dataloader worker stops at the sixth unreadable file.
    from torch.utils.data import DataLoader
    folder = tmp_path / 'photos'
    write_good_images(folder, n=1)
    for i in range(4):
        write_broken_images(folder / f'batch{i}')
    ds = DATASETS.build(photo_folder(folder))
    loader = DataLoader(ds, batch_size=4, num_workers=1,
                        collate_fn=lambda batch: batch)
    with pytest.raises(ValueError, match=r'of the \d+ images dataloader '
                       r'worker 0 tried are unreadable.*batch\d/'):
        list(loader)
