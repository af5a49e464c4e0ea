"""The scripts in tools/visualization, run as a user would."""
import glob
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from densevit.apis import init_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools', 'visualization')


def load_tool(script):
    """Import a tool as a module, to call its main() without a process."""
    spec = importlib.util.spec_from_file_location(
        script[:-3], osp.join(TOOLS, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(script, *args):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env.setdefault('OMP_NUM_THREADS', '2')
    proc = subprocess.run(
        [sys.executable, osp.join(TOOLS, script), *map(str, args)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture
def tiny_run(tmp_path, tiny_model_cfg):
    """A tiny config file (two-view train split, single-view val split)
    and a checkpoint of its model."""
    config = tmp_path / 'tiny_config.py'
    config.write_text(f"""
default_scope = 'densevit'
model = {tiny_model_cfg!r}
train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        type='SyntheticShapes', num_samples=2, img_size=64, seed=0,
        pipeline=[dict(type='TwoViewCrop', size=64, min_overlap=0.5),
                  dict(type='PackDenseInputs')]))
val_dataloader = dict(
    batch_size=2,
    dataset=dict(
        type='SyntheticShapes', num_samples=2, img_size=64, seed=1,
        pipeline=[dict(type='ResizeWithMask', size=64),
                  dict(type='PackDenseInputs')]))
visualizer = dict(type='UniversalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
""")
    model = init_model(Config.fromfile(str(config)))
    checkpoint = tmp_path / 'tiny.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    return config, checkpoint


def backend_png(work_dir, name):
    found = glob.glob(
        osp.join(work_dir, '*', 'vis_data', 'vis_image', f'{name}_*.png'))
    assert len(found) == 1, found
    return np.asarray(Image.open(found[0]).convert('RGB'))


def test_vis_feature_pca_on_an_image(tmp_path, tiny_run):
    config, checkpoint = tiny_run
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'image.png')
    out = tmp_path / 'pictures' / 'pca.png'
    run_tool('vis_feature_pca.py', config, checkpoint, tmp_path / 'image.png',
             '--size', 64, '--display-size', 64, '--out', out,
             '--work-dir', tmp_path / 'work')
    picture = np.asarray(Image.open(out).convert('RGB'))
    assert picture.shape == (64, 3 * 64 + 2 * 4, 3)
    # The PCA panel shows the 4x4 patch grid as 16-pixel blocks with
    # different colours.
    pca = picture[:, 68:132]
    assert (pca[:16, :16] == pca[0, 0]).all()
    assert len({tuple(p) for p in pca[::16, ::16].reshape(-1, 3)}) > 1
    # The same picture went to the config's LocalVisBackend.
    np.testing.assert_array_equal(
        backend_png(tmp_path / 'work', 'feature_pca_dense'), picture)


def test_vis_feature_pca_on_synthetic_shapes(tmp_path, tiny_run):
    # In-process (the CLI itself is run as a process above).
    config, checkpoint = tiny_run
    out = tmp_path / 'pca.png'
    load_tool('vis_feature_pca.py').main([
        str(config), str(checkpoint), '--synthetic', '2', '--size', '64',
        '--display-size', '32', '--features', 'backbone', '--out', str(out),
        '--work-dir', str(tmp_path / 'work')
    ])
    picture = np.asarray(Image.open(out).convert('RGB'))
    # One row per image, one PCA over both.
    assert picture.shape == (2 * 32 + 4, 3 * 32 + 2 * 4, 3)
    np.testing.assert_array_equal(
        backend_png(tmp_path / 'work', 'feature_pca_backbone'), picture)


def test_vis_correspondence_on_the_train_dataset(tmp_path, tiny_run):
    config, checkpoint = tiny_run
    out = tmp_path / 'corr.png'
    load_tool('vis_correspondence.py').main([
        str(config), str(checkpoint), '--index', '1', '--display-size', '64',
        '--out', str(out), '--work-dir', str(tmp_path / 'work')
    ])
    picture = np.asarray(Image.open(out).convert('RGB'))
    # Two captioned rows (backbone, dense) of two 64 px views.
    assert picture.shape == (2 * (16 + 64) + 8, 64 + 8 + 64, 3)
    # min_overlap=0.5: some view-1 patches have a truth, so lines are
    # green or red.
    scored = ((picture == (0, 255, 0)) | (picture == (255, 0, 0))).all(-1)
    assert scored.sum() > 0
    np.testing.assert_array_equal(
        backend_png(tmp_path / 'work', 'correspondence'), picture)


def test_vis_correspondence_needs_two_views(tmp_path, tiny_run):
    config, checkpoint = tiny_run
    with pytest.raises(ValueError, match='two views'):
        load_tool('vis_correspondence.py').main([
            str(config), str(checkpoint), '--split', 'val', '--out',
            str(tmp_path / 'c.png')
        ])


def test_plot_curves(tmp_path):
    run_dir = tmp_path / 'work' / '20240101_000000' / 'vis_data'
    run_dir.mkdir(parents=True)
    records = [dict(loss=2.0 / i, loss_dense=1.0 / i, lr=0.01, iter=i,
                    step=i) for i in range(1, 6)]
    records.append({'probe/knn_top1': 0.5, 'step': 5})
    (run_dir / 'scalars.json').write_text(
        ''.join(json.dumps(r) + '\n' for r in records))
    out = tmp_path / 'curves.png'
    run_tool('plot_curves.py', tmp_path / 'work', '--out', out)
    picture = np.asarray(Image.open(out).convert('RGB'))
    assert picture.shape[0] > 100 and picture.shape[1] > 100
    assert (picture < 250).any(-1).mean() > 0.02


def test_vis_correspondence_rejects_a_negative_tolerance(capsys):
    with pytest.raises(SystemExit) as exit_:
        load_tool('vis_correspondence.py').parse_args(
            ['cfg.py', 'ckpt.pth', '--tolerance', '-1'])
    assert exit_.value.code == 2
    assert '--tolerance must be >= 0' in capsys.readouterr().err
