"""End to end: tools/train.py → checkpoint → --resume → tools/test.py."""
import json
import subprocess
import sys

import pytest
import torch
from launch_helpers import (QUEUE_RECORDER, REPO_ROOT, TINY_OVERRIDES,
                            free_port, run_tool, tool_env)
from test_checkpoint_tools import load_tool

def test_train_resume_test(tmp_path):
    config = tmp_path / 'tiny_demo.py'
    config.write_text(TINY_OVERRIDES)
    work_dir = tmp_path / 'work'
    train = str(REPO_ROOT / 'tools/train.py')

    log = run_tool(train, str(config), '--work-dir', str(work_dir),
                   '--cfg-options', 'train_cfg.max_epochs=1', cwd=tmp_path)
    assert 'loss_dense' in log
    # The hook logs tools/test.py's metric names.
    assert 'ProbeHook (epoch 1): correspondence/acc_backbone' in log
    assert 'linear_probe/top1' in log and 'linear_probe/chance' in log
    first = work_dir / 'epoch_1.pth'
    assert first.exists()
    # Stock weights-only loading reads what the project writes.
    ckpt = torch.load(first, weights_only=True)
    assert ckpt['meta']['epoch'] == 1

    log = run_tool(train, str(config), '--work-dir', str(work_dir),
                   '--resume', '--cfg-options', 'train_cfg.max_epochs=2',
                   cwd=tmp_path)
    assert 'resumed epoch: 1' in log
    second = torch.load(work_dir / 'epoch_2.pth', weights_only=True)
    assert second['meta']['iter'] == 10
    # The queues survived the restart: 10 iterations x 8 keys, mod 64.
    assert int(second['state_dict']['dense_loss.queue.ptr']) == 80 % 64
    assert int(second['state_dict']['global_loss.queue.ptr']) == 80 % 64
    assert not torch.equal(ckpt['state_dict']['dense_loss.queue.keys'],
                           second['state_dict']['dense_loss.queue.keys'])

    out = tmp_path / 'metrics.json'
    log = run_tool(str(REPO_ROOT / 'tools/test.py'), str(config),
                   str(work_dir / 'epoch_2.pth'), '--work-dir',
                   str(work_dir), '--out', str(out), cwd=tmp_path)
    metrics = json.loads(out.read_text())
    for key in ('correspondence/acc_backbone', 'correspondence/acc_dense',
                'correspondence/acc_position_baseline',
                'correspondence/acc_random_baseline', 'dense_probe/mIoU',
                'dense_probe/mIoU_chance', 'knn/top1', 'knn/chance',
                'linear_probe/top1', 'linear_probe/chance'):
        assert 0.0 <= metrics[key] <= 1.0, key
    # The table puts each quantity beside its references.
    position = metrics['correspondence/acc_position_baseline']
    assert any('correspondence/acc_backbone' in line
               and f'position {position:.4f}' in line
               for line in log.splitlines())
    chance = metrics['linear_probe/chance']
    assert any('linear_probe/top1' in line and f'chance {chance:.4f}' in line
               for line in log.splitlines())


def test_train_rejects_bad_config(tmp_path):
    config = tmp_path / 'bad.py'
    config.write_text(TINY_OVERRIDES + "\nmodel['neck']['typo_arg'] = 1\n")
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools/train.py'), str(config),
         '--work-dir', str(tmp_path / 'w')],
        cwd=tmp_path, env=tool_env(), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode != 0
    assert 'model.neck.typo_arg' in proc.stderr


def test_two_process_cpu_training_with_dist_train_sh(tmp_path):
    """tools/dist_train.sh on a CPU machine: gloo, DDP, queues all-gathered."""
    config = tmp_path / 'tiny_demo.py'
    config.write_text(TINY_OVERRIDES + """
custom_imports = dict(imports=['queue_recorder'])
custom_hooks = [*_base_.custom_hooks, dict(type='QueueRecorder')]
""")
    (tmp_path / 'queue_recorder.py').write_text(QUEUE_RECORDER)
    work_dir = tmp_path / 'dist'
    proc = subprocess.run(
        ['bash', str(REPO_ROOT / 'tools/dist_train.sh'), str(config), '2',
         '--work-dir', str(work_dir), '--cfg-options',
         'train_cfg.max_epochs=1'],
        cwd=tmp_path, env=tool_env(tmp_path, PORT=free_port()),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = torch.load(work_dir / 'epoch_1.pth', weights_only=True)
    # 40 images over 2 ranks x 8 per batch: 2 full steps (drop_last); each
    # step enqueues both ranks' keys, 16 per queue.
    assert ckpt['meta']['iter'] == 2
    assert int(ckpt['state_dict']['dense_loss.queue.ptr']) == 32
    assert int(ckpt['state_dict']['global_loss.queue.ptr']) == 32
    assert len(ckpt['rng_states']) == 2
    # Every rank holds the same queues, and they hold the all-gathered keys
    # of each step in rank order (what the pointer alone cannot show).
    ranks = [torch.load(work_dir / f'queues_rank{rank}.pth',
                        weights_only=True) for rank in range(2)]
    for name in ('global_loss', 'dense_loss'):
        queues = [r['queues'][name] for r in ranks]
        assert torch.equal(queues[0], queues[1]), name
        assert torch.equal(queues[0], ckpt['state_dict'][f'{name}.queue.keys'])
        for step in range(2):
            gathered = torch.cat([r['steps'][step][name] for r in ranks])
            assert gathered.shape[0] == 16
            assert not torch.equal(gathered[:8], gathered[8:])
            torch.testing.assert_close(
                queues[0][16 * step:16 * (step + 1)],
                torch.nn.functional.normalize(gathered.float(), dim=1))


def test_amp_step_runs_under_bf16_autocast_and_trains(tmp_path, monkeypatch):
    """``--amp`` as tools/train.py applies it, on the path a GPU machine
    takes: ``AmpOptimWrapper`` in bf16, the forward under autocast, the
    weights updated.

    Without a GPU the tools deliberately fall back to fp32 (mmengine's
    ``AmpOptimWrapper`` refuses to start, and bf16 does not pay on the CPUs
    measured; docs/configs.md, "Speed options"; ``adapt_to_device`` and its
    test). So this test lifts exactly those two device checks and lets CPU
    bf16 autocast stand in for the GPU's; everything else is the tool's.
    """
    from mmengine.config import Config
    from mmengine.optim import AmpOptimWrapper

    import densevit.apis.runner_setup as runner_setup
    monkeypatch.setattr(
        'mmengine.optim.optimizer.amp_optimizer_wrapper.is_cuda_available',
        lambda: True)
    # adapt_to_device on a GPU machine: nothing to adapt.
    monkeypatch.setattr(runner_setup, 'adapt_to_device', lambda cfg: [])
    config = tmp_path / 'tiny_demo.py'
    config.write_text(TINY_OVERRIDES)
    # tools/train.py's main, with --amp: one step of 8 images; no weight
    # decay, so every change of a weight comes from the loss's gradient.
    cfg = runner_setup.apply_cli_options(
        Config.fromfile(str(config)), str(config),
        work_dir=str(tmp_path / 'work'), amp=True,
        cfg_options={
            'train_cfg.max_epochs': 1,
            'train_dataloader.dataset.num_samples': 8,
            'optim_wrapper.optimizer.weight_decay': 0.0,
            'optim_wrapper.optimizer.lr': 1e-3,
            'param_scheduler': [],
        })
    # The probes at the end of the epoch are not what this test is about.
    cfg.custom_hooks = [hook for hook in cfg.custom_hooks
                        if hook['type'] != 'ProbeHook']
    runner = runner_setup.build_runner(cfg)
    model = runner.model
    seen = []

    def record(module, args, output):
        if module.training:
            seen.append((output.dtype, torch.is_autocast_enabled('cpu')))

    model.backbone.layers[0].attn.qkv.register_forward_hook(record)
    before = {name: p.detach().clone()
              for name, p in model.backbone.named_parameters()}
    runner.train()

    wrapper = runner.optim_wrapper
    assert isinstance(wrapper, AmpOptimWrapper)
    assert wrapper.cast_dtype == torch.bfloat16
    assert seen == [(torch.bfloat16, True)]
    after = dict(model.backbone.named_parameters())
    assert all(p.dtype == torch.float32 for p in after.values())
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(changed) == len(before), set(before) - set(changed)


def test_test_tool_refuses_weights_of_another_architecture(
        tmp_path, monkeypatch):
    """tools/test.py stops before evaluating a checkpoint that does not fit;
    --partial-load evaluates with what fits and logs the rest (in-process:
    the subprocess start-up would dominate)."""
    config = tmp_path / 'tiny_demo.py'
    config.write_text(TINY_OVERRIDES + """
test_dataloader = dict(batch_size=8, dataset=dict(num_samples=8))
test_evaluator = [dict(type='CorrespondenceAccuracy')]
""")
    deeper = tmp_path / 'deeper.py'
    deeper.write_text(f"_base_ = '{config}'\n"
                      "model = dict(backbone=dict(arch=dict(num_layers=2)))\n")
    ckpt = tmp_path / 'deeper.pth'
    load_tool('tools/analysis_tools/init_checkpoint.py').main(
        [str(deeper), str(ckpt)])
    test_tool = load_tool('tools/test.py')
    argv = ['test.py', str(config), str(ckpt), '--work-dir',
            str(tmp_path / 'work')]
    monkeypatch.setattr(sys, 'argv', argv)
    with pytest.raises(SystemExit, match=r'(?s)CheckpointMismatchError: '
                       rf'Checkpoint {ckpt} does not fit.*'
                       r'backbone\.layers\.1\.attn.*--partial-load'):
        test_tool.main()
    out = tmp_path / 'metrics.json'
    monkeypatch.setattr(sys, 'argv', argv + ['--partial-load', '--out',
                                             str(out)])
    test_tool.main()
    assert 'correspondence/acc_backbone' in json.loads(out.read_text())


def test_train_tool_prints_a_config_mistake_without_a_traceback(tmp_path):
    """A mistake in what the user asked for ends tools/train.py with the
    message and its fix, exit status 1, and no traceback to bury it."""
    config = tmp_path / 'tiny_demo.py'
    config.write_text(TINY_OVERRIDES)
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools/train.py'), str(config),
         '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         'train_dataloader.batchsize=4'],
        cwd=tmp_path, env=tool_env(),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert 'ConfigError' in proc.stderr
    assert 'train_dataloader.batchsize' in proc.stderr
    assert 'batch_size' in proc.stderr  # the suggestion
    assert 'Traceback' not in proc.stderr


def test_test_tool_names_a_missing_checkpoint(tmp_path, monkeypatch):
    config = tmp_path / 'tiny_demo.py'
    config.write_text(TINY_OVERRIDES + """
test_dataloader = dict(batch_size=8, dataset=dict(num_samples=8))
test_evaluator = [dict(type='CorrespondenceAccuracy')]
""")
    missing = tmp_path / 'work' / 'epoch_4.pth'
    monkeypatch.setattr(sys, 'argv', [
        'test.py', str(config), str(missing), '--work-dir',
        str(tmp_path / 'work')])
    with pytest.raises(SystemExit, match=rf'^CheckpointNotFoundError: '
                       rf'Checkpoint {missing} does not exist\. Fix: '):
        load_tool('tools/test.py').main()
