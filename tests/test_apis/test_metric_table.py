import json
import runpy
from pathlib import Path

from mmengine.config import Config

from densevit.apis import report_metrics
from densevit.apis.metric_table import metric_rows


def test_each_quantity_beside_its_references():
    rows = metric_rows({
        'correspondence/acc_backbone': 0.6,
        'correspondence/acc_dense': 0.7,
        'correspondence/acc_position_baseline': 0.3,
        'correspondence/acc_random_baseline': 0.05,
        'dense_probe/mIoU': 0.2,
        'dense_probe/pixel_acc': 0.7,
        'dense_probe/mIoU_chance': 0.1,
        'dense_probe/pixel_acc_chance': 0.6,
        'linear_probe/top1': 0.3,
        'linear_probe/chance': 0.25,
        'accuracy/top1': 33.0,
        'orphan/acc_position_baseline': 0.5,
    })
    assert rows == [
        ('correspondence/acc_backbone', 0.6,
         'position 0.3000, random 0.0500'),
        ('correspondence/acc_dense', 0.7, 'position 0.3000, random 0.0500'),
        ('dense_probe/mIoU', 0.2, 'chance 0.1000'),
        ('dense_probe/pixel_acc', 0.7, 'chance 0.6000'),
        ('linear_probe/top1', 0.3, 'chance 0.2500'),
        ('accuracy/top1', 33.0, ''),
        ('orphan/acc_position_baseline', 0.5, ''),
    ]


def test_report_metrics_prints_the_table_and_writes_flat_json(
        tmp_path, capsys):
    out = tmp_path / 'm.json'
    plain = report_metrics({'knn/top1': 0.5, 'knn/chance': 0.25}, str(out))
    assert plain == {'knn/top1': 0.5, 'knn/chance': 0.25}
    assert '"knn/chance": 0.25' in out.read_text()
    line = next(ln for ln in capsys.readouterr().out.splitlines()
                if 'knn/top1' in ln)
    assert '0.5000' in line and 'chance 0.2500' in line


def test_test_tool_prints_in_context_miou_beside_its_chance(
        tmp_path, monkeypatch, capsys, tiny_model_cfg):
    """tools/test.py on the demo config: the in-context row is in the table
    (the demo's test_evaluator holds the metric; tiny model, 8 images)."""
    repo = Path(__file__).resolve().parents[2]
    cfg = Config.fromfile(
        repo / 'configs/densevit/'
        'densevit_vit-tiny-d4-p8_1xb32-demo-coslr-4e_synthetic-64px.py')
    tiny_model_cfg['backbone'].update(img_size=64, patch_size=8)
    cfg.model = tiny_model_cfg
    cfg.test_dataloader.update(batch_size=8, num_workers=0,
                               persistent_workers=False)
    cfg.test_dataloader.dataset.num_samples = 8
    config = tmp_path / 'tiny_demo.py'
    cfg.dump(str(config))
    ckpt, out = tmp_path / 'init.pth', tmp_path / 'metrics.json'
    for tool, args in (('tools/analysis_tools/init_checkpoint.py', []),
                       ('tools/test.py', ['--work-dir', str(tmp_path / 'w'),
                                          '--out', str(out)])):
        monkeypatch.setattr('sys.argv', [tool, str(config), str(ckpt), *args])
        runpy.run_path(str(repo / tool), run_name='__main__')
    metrics = json.loads(out.read_text())
    chance = metrics['in_context/mIoU_chance']
    line = next(ln for ln in capsys.readouterr().out.splitlines()
                if 'in_context/mIoU ' in ln)
    assert f'{metrics["in_context/mIoU"]:.4f}' in line
    assert f'chance {chance:.4f}' in line
