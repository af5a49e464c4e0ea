"""The bundled-photo export and the real-photo correspondence split."""
import importlib.util
from pathlib import Path

import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from densevit.registry import DATASETS

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_tool():
    path = REPO_ROOT / 'tools' / 'dataset_converters' / \
        'export_sample_photos.py'
    spec = importlib.util.spec_from_file_location('export_sample_photos',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exports_the_bundled_photographs(tmp_path):
    tool = load_tool()
    assert tool.main([str(tmp_path)]) == 0
    written = sorted(tmp_path.glob('*.png'))
    assert len(written) >= 12  # scikit-image's photos (+2 from sklearn)
    for path in written:
        image = Image.open(path)
        assert image.mode == 'RGB' and min(image.size) >= 128


def test_crops_are_labelled_by_photo_and_split_by_rows(tmp_path):
    tool = load_tool()
    photo = np.zeros((100, 80, 3), np.uint8)
    photo[:50] = 255  # the top band is white, the bottom black
    count = tool.export_crops({'p': photo}, str(tmp_path), crops=5, size=16,
                              rows=(0.0, 0.5), seed=0)
    assert count == 5
    crops = sorted((tmp_path / 'p').glob('*.png'))
    assert len(crops) == 5
    assert all(np.asarray(Image.open(c)).min() == 255 for c in crops)


def test_bad_rows_are_refused(capsys):
    tool = load_tool()
    try:
        tool.parse_args(['out', '--rows', '0.6', '0.2'])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert '--rows' in capsys.readouterr().err


def test_photo_correspondence_split_changes_colour_not_geometry(tmp_path):
    # Flat-coloured photos: every crop of one looks the same, so views can
    # only differ by the photometric augmentations.
    for index, colour in enumerate([(200, 80, 40), (30, 160, 90)]):
        Image.new('RGB', (64, 48), colour).save(tmp_path / f'{index}.png')
    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs/_base_/datasets/photo_folder_64px.py'))
    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.dataset.data_root = str(tmp_path)
    with DefaultScope.overwrite_default_scope('densevit'):
        dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 2 * 32
    changed = 0
    for index in range(8):
        sample = dataset[index]
        boxes = sample['data_samples'].view_boxes
        assert boxes.shape == (2, 4)
        views = sample['inputs']
        assert [tuple(v.shape) for v in views] == [(3, 64, 64)] * 2
        changed += int(not (views[0] == views[1]).all())
    assert changed >= 4
