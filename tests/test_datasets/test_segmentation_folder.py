import numpy as np
import pytest
from PIL import Image

from densevit.datasets import SegmentationFolder
from densevit.registry import DATASETS

H, W = 12, 16


def write_voc(root, bad_size=False, rgb_mask=False):
    """a: palette mask, b: 8-bit index mask; images are PNG (lossless)."""
    (root / 'JPEGImages').mkdir(parents=True)
    (root / 'SegmentationClass').mkdir()
    (root / 'ImageSets').mkdir()
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = 200  # pure red in RGB
    for name in 'ab':
        Image.fromarray(img).save(root / 'JPEGImages' / f'{name}.png')
    mask_a = np.zeros((H, W), np.uint8)
    mask_a[2:6, 3:9] = 2
    mask_a[8:, :2] = 255
    pal = Image.fromarray(mask_a, mode='P')
    # VOC-like palette: index 2 is drawn green; colour must not leak in.
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)
    palette[255 * 3:255 * 3 + 3] = [224, 224, 192]
    pal.putpalette(palette)
    pal.save(root / 'SegmentationClass' / 'a.png')
    mask_b = np.zeros((H + int(bad_size), W), np.uint8)
    mask_b[:, 8:] = 1
    mask_b[:2, :2] = 3
    if rgb_mask:
        Image.fromarray(np.stack([mask_b] * 3, -1)).save(
            root / 'SegmentationClass' / 'b.png')
    else:
        Image.fromarray(
            mask_b, mode='L').save(root / 'SegmentationClass' / 'b.png')
    (root / 'ImageSets' / 'val.txt').write_text('b\n\n')
    return mask_a, mask_b


def test_reads_palette_and_index_masks(tmp_path):
    mask_a, mask_b = write_voc(tmp_path)
    ds = SegmentationFolder(
        data_root=str(tmp_path),
        img_suffix='.png',
        with_label=True,
        seg_classes=('background', 'x', 'y', 'z'))
    assert len(ds) == 2
    a, b = ds[0], ds[1]
    assert a['img'].shape == (H, W, 3) and a['img'].dtype == np.uint8
    assert a['img'][0, 0].tolist() == [0, 0, 200]  # BGR
    assert a['gt_seg_map'].dtype == np.uint8
    assert np.array_equal(a['gt_seg_map'], mask_a)  # indices, not colours
    assert np.array_equal(b['gt_seg_map'], mask_b)
    assert a['gt_label'] == 1 and b['gt_label'] == 0  # majority fg - 1
    assert a['img_shape'] == (H, W) and a['ori_shape'] == (H, W)
    assert ds.metainfo['classes'] == ('x', 'y', 'z')
    assert ds.metainfo['seg_classes'][0] == 'background'


def test_split_file_and_pipeline(tmp_path):
    _, mask_b = write_voc(tmp_path)
    ds = DATASETS.build(
        dict(
            type='SegmentationFolder',
            data_root=str(tmp_path),
            split='ImageSets/val.txt',
            img_suffix='.png',
            pipeline=[
                dict(type='ResizeWithMask', size=8),
                dict(type='PackDenseInputs')
            ]))
    assert len(ds) == 1
    out = ds[0]
    assert out['inputs'].shape == (3, 8, 8)
    mask = out['data_samples'].gt_mask
    assert mask.shape == (8, 8) and set(mask.unique().tolist()) <= {0, 1, 3}
    assert 'gt_label' not in out['data_samples']


def test_mask_size_mismatch(tmp_path):
    write_voc(tmp_path, bad_size=True)
    ds = SegmentationFolder(data_root=str(tmp_path), img_suffix='.png')
    with pytest.raises(ValueError, match='same size'):
        ds[1]


def test_colour_mask_rejected(tmp_path):
    write_voc(tmp_path, rgb_mask=True)
    ds = SegmentationFolder(data_root=str(tmp_path), img_suffix='.png')
    with pytest.raises(ValueError, match='palette'):
        ds[1]


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match='JPEGImages'):
        SegmentationFolder(data_root=str(tmp_path / 'nowhere'))
    write_voc(tmp_path)
    # Default suffix .jpg: the listed images do not exist.
    with pytest.raises(FileNotFoundError, match='a.jpg'):
        SegmentationFolder(data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='split file'):
        SegmentationFolder(
            data_root=str(tmp_path), split='nope.txt', img_suffix='.png')
    with pytest.raises(ValueError, match='no samples'):
        SegmentationFolder(
            data_root=str(tmp_path), img_suffix='.png', mask_suffix='.bmp')
    with pytest.raises(ValueError, match='data_root'):
        SegmentationFolder(data_root='')
