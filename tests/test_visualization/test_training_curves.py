import json

import numpy as np
import pytest
from PIL import Image

from densevit.visualization import (load_scalars, plot_training_curves,
                                    split_series)


def train_records(epochs=2, iters_per_epoch=10, interval=5, loss_cls=False):
    records, it = [], 0
    for epoch in range(1, epochs + 1):
        for _ in range(iters_per_epoch):
            it += 1
            if it % interval:
                continue
            rec = dict(lr=0.1 / it, loss=4.0 - 0.1 * it,
                       loss_global=2.0 - 0.05 * it,
                       loss_dense=2.0 - 0.05 * it, time=0.2, data_time=0.1,
                       epoch=epoch, iter=it, step=it)
            if loss_cls:
                rec['loss_cls'] = 1.0
            records.append(rec)
    return records


def write_log(run_dir, records):
    path = run_dir / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    return path


def as_log(tmp_path, records):
    """The records as load_scalars reads them back from a scalars.json."""
    return load_scalars(str(write_log(tmp_path / 'run', records)))


def full_log():
    records = train_records()
    # ProbeHook, like by-epoch validation, logs at step = epoch.
    records.insert(2, {'linear_probe/top1': 0.4, 'knn/top1': 0.3,
                       'step': 1})
    records.insert(3, {'correspondence/acc_backbone': 0.5,
                       'correspondence/acc_dense': 0.6,
                       'time': 0.3, 'data_time': 0.1, 'step': 1})
    records.append({'correspondence/acc_backbone': 0.7,
                    'correspondence/acc_dense': 0.8,
                    'dense_probe/mIoU': 0.25, 'accuracy/top1': 55.0,
                    'step': 2})
    return records


def test_curves_png_from_a_work_dir(tmp_path):
    write_log(tmp_path / '20240101_000000', full_log())
    out = tmp_path / 'curves.png'
    image = plot_training_curves(str(tmp_path), out_file=str(out))
    assert image.dtype == np.uint8 and image.ndim == 3
    saved = np.asarray(Image.open(out).convert('RGB'))
    np.testing.assert_array_equal(saved, image)
    # Not blank: drawn lines in colour, not only white and grey.
    non_white = (image < 250).any(-1).mean()
    coloured = (image.max(-1).astype(int) - image.min(-1) > 80).mean()
    assert non_white > 0.02 and coloured > 0.001


def test_series_are_split_by_panel_and_put_on_iterations(tmp_path):
    log = as_log(tmp_path, full_log())
    # mmpretrain's load_json_log: records with an lr are training logs.
    assert len(log['train']) == 4 and len(log['val']) == 3
    series = split_series(log)
    assert list(series) == ['loss', 'lr', 'metrics', 'other']
    assert set(series['loss']) == {'loss', 'loss_global', 'loss_dense'}
    assert set(series['metrics']) == {
        'linear_probe/top1', 'knn/top1', 'correspondence/acc_backbone',
        'correspondence/acc_dense', 'dense_probe/mIoU'}
    # Percentages do not squash the [0, 1] metrics.
    assert set(series['other']) == {'accuracy/top1'}
    # Epoch 1 / 2 ends at iteration 10 / 20.
    np.testing.assert_array_equal(
        series['metrics']['correspondence/acc_dense'][0], [10, 20])
    np.testing.assert_array_equal(
        series['metrics']['linear_probe/top1'][0], [10])
    np.testing.assert_array_equal(series['loss']['loss'][0], [5, 10, 15, 20])
    # Bookkeeping keys are never plotted.
    for curves in series.values():
        assert not {'time', 'data_time', 'step', 'iter', 'epoch'} & set(
            curves)


def test_missing_keys_are_skipped(tmp_path):
    losses_only = train_records()
    for rec in losses_only:
        del rec['lr']
    losses_only = as_log(tmp_path / 'a', losses_only)
    series = split_series(losses_only)
    assert list(series) == ['loss']
    assert 'loss_cls' not in series['loss']
    small = plot_training_curves(losses_only)
    large = plot_training_curves(as_log(tmp_path / 'b', full_log()))
    # One panel instead of four (two rows of two).
    assert small.shape[0] < large.shape[0] and small.shape[1] < large.shape[1]
    with_cls = as_log(tmp_path / 'c', train_records(loss_cls=True))
    assert 'loss_cls' in split_series(with_cls)['loss']


def test_runs_and_errors(tmp_path):
    write_log(tmp_path / '20240101_000000', train_records())
    resumed = [dict(r, iter=r['iter'] + 20, step=r['step'] + 20)
               for r in train_records()]
    write_log(tmp_path / '20240102_000000', resumed)
    latest = load_scalars(str(tmp_path))
    assert [r['iter'] for r in latest['train']] == [25, 30, 35, 40]
    joined = load_scalars(str(tmp_path), runs='all')
    assert [r['iter'] for r in joined['train']] == list(range(5, 41, 5))
    # A run folder and the file itself work too.
    run = tmp_path / '20240101_000000'
    assert load_scalars(str(run)) == load_scalars(
        str(run / 'vis_data' / 'scalars.json'))
    assert len(load_scalars(str(run))['train']) == 4

    with pytest.raises(FileNotFoundError, match='scalars.json'):
        load_scalars(str(tmp_path / 'missing'))
    with pytest.raises(ValueError, match='Nothing to plot'):
        plot_training_curves(dict(train=[], val=[{'step': 1, 'time': 0.1}]))
    with pytest.raises(TypeError, match='load_scalars'):
        plot_training_curves([{'loss': 1.0, 'step': 1}])
    cut = write_log(tmp_path / 'cut', train_records())
    cut.write_text(cut.read_text()[:-20])
    with pytest.raises(ValueError, match='one JSON dict per line'):
        load_scalars(str(cut))
    with pytest.raises(ValueError, match='runs'):
        load_scalars(str(tmp_path), runs='first')
