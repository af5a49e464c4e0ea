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
