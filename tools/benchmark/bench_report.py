"""The human-readable report of a benchmark run."""
from typing import Dict


def _fmt(value, spec: str = '.1f', none: str = '-') -> str:
    return none if value is None else format(value, spec)


def format_report(results: Dict[str, object]) -> str:
    """The human-readable tables of :func:`run_benchmark`'s results."""
    meta = results['meta']
    spec = meta['spec']
    arch = meta['arch_settings']
    load = meta['load_average_1min']
    where = ('separate worker processes'
             if meta['isolated_subprocesses'] else 'this process')
    lines = [
        f"DenseViT benchmark {meta['date']}  device={meta['device']} "
        f"({meta['device_name']}, {meta['threads']} threads)  "
        f"precision={spec['precision']}  torch {meta['torch']}  "
        f"mmpretrain {meta['mmpretrain']}",
        f"iters={spec['iters']} (mean per iteration, torch.utils.benchmark "
        f"Timer.timeit) warmup={spec['warmup']}  "
        f"cases in {where}; 1-min load average {load['before']} before, "
        f"{load['after']} after",
    ]
    if meta['autocast_normalize_dtype']:
        lines.append('F.normalize of a bf16 tensor under this autocast -> '
                     f"{meta['autocast_normalize_dtype']} (the dtype the "
                     'InfoNCE receives)')
    loss = results.get('loss')
    if loss:
        lines += [
            '',
            f"Dense InfoNCE forward+backward: N = B*S = {loss['batch']}*"
            f"{loss['num_patches']} = {loss['num_queries']} queries, "
            f"K = {loss['queue_len']}, D = {loss['feat_dim']}",
        ]
        check = loss['check'] or {}
        if 'error' in check or not check:
            lines.append(f"  check: FAILED TO RUN ({check.get('error')})")
        else:
            lines.append(
                f"  check: loss fused {check['loss_fused']:.6f} vs "
                f"materialised {check['loss_materialised']:.6f} (rel "
                f"{check['loss_rel_err']:.1e}); grad(q) rel "
                f"{check['grad_rel_err']:.1e}; tolerance "
                f"{check['tolerance']:.0e} -> "
                f"{'PASSED' if check['passed'] else 'FAILED'}")
        lines.append(f"  {'implementation':<34}{'ms/iter':>12}"
                     f"{'extra peak MiB':>16}{'TFLOP/s':>9}")
        impl = spec.get('loss_impl', 'auto')
        fused_name = ('fused info_nce (DenseViT)' if impl == 'auto' else
                      f'info_nce impl={impl} (DenseViT)')
        for name, key in ((fused_name, 'fused'),
                          ('materialised (DenseCL einsum + CE)',
                           'materialised')):
            row = loss[key] or {}
            if 'error' in row:
                lines.append(f"  {name:<34}ERROR {row['error']}")
                continue
            lines.append(
                f"  {name:<34}{_fmt(row.get('ms_per_iter')):>12}"
                f"{_fmt(row.get('extra_peak_mib')):>16}"
                f"{_fmt(row.get('achieved_tflops'), '.3f'):>9}")
        lines.append(
            f"  speed-up {_fmt(loss['speedup'], '.2f')}x; extra peak memory "
            f"1/{_fmt(loss['memory_reduction'], '.0f')} of materialised")
    step = results.get('step')
    if step:
        lines += [
            '',
            f"Training step: ViT {spec['arch']} ({arch['embed_dims']}-d, "
            f"{arch['num_layers']} layers), B={spec['batch']}, "
            f"{spec['img_size']} px (S={spec['img_size'] // 16}^2), "
            f"K={spec['queue_len']}, D={spec['feat_dim']}, neck hidden "
            f"{spec['hid_channels']}",
            f"  {'case':<22}{'ms/step':>10}{'img/s':>9}{'peak MiB':>10}"
            f"{'extra MiB':>11}{'TFLOP/step':>11}{'TFLOP/s':>9}{'MFU':>7}",
        ]
        for name, key in (('DenseViT', 'densevit'),
                          ('mmpretrain DenseCL', 'densecl'),
                          ('backbone alone', 'backbone')):
            row = step[key] or {}
            if 'error' in row:
                lines.append(f"  {name:<22}ERROR {row['error']}")
                continue
            mfu = row.get('mfu')
            mfu_text = '-' if mfu is None else f'{100 * mfu:.1f}%'
            lines.append(
                f"  {name:<22}{_fmt(row.get('ms_per_iter')):>10}"
                f"{_fmt(row.get('img_per_s'), '.2f'):>9}"
                f"{_fmt(row.get('peak_mib'), '.0f'):>10}"
                f"{_fmt(row.get('extra_peak_mib'), '.0f'):>11}"
                f"{_fmt(row.get('model_tflop'), '.3f'):>11}"
                f"{_fmt(row.get('achieved_tflops'), '.3f'):>9}"
                f'{mfu_text:>7}')
        lines.append(
            '  DenseViT / DenseCL: img/s '
            f"{_fmt(step['img_per_s_ratio'], '.2f')}x, peak memory "
            f"{_fmt(step['peak_memory_ratio'], '.3f')}x; DenseViT step / "
            f"backbone alone: {_fmt(step['step_over_backbone'], '.2f')}x")
        if meta['device'] == 'cpu':
            lines.append('  (peak = peak RSS above the interpreter + '
                         'libraries; MFU needs --peak-tflops on CPU)')
    if results['targets']:
        lines += ['', 'Targets (judged only at their settings):']
        for row in results['targets']:
            met = {True: 'met', False: 'MISSED'}.get(
                row['met'], 'not judged: this run is not at these settings'
                if not row['applies'] else 'n/a')
            lines.append(
                f"  {row['target']}: {_fmt(row['value'], '.3f')} "
                f"(target {row['bound']}, at {row['defined_at']}) {met}")
    return '\n'.join(lines)
