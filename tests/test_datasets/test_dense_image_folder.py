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
    assert load.type == 'LoadImageFromFile'
    assert load.imdecode_backend == 'pillow'
    # Missing data: a clear error before training, naming the folder.
    ds_cfg['data_root'] = str(tmp_path / 'imagenet')
    with pytest.raises(FileNotFoundError, match='imagenet'):
        DATASETS.build(ds_cfg)
    write_folder(tmp_path / 'imagenet' / 'train', n=1)
    ds = DATASETS.build(ds_cfg)
    out = ds[0]
    assert [t.shape for t in out['inputs']] == [(3, 224, 224)] * 2
