"""Rows of the evaluation table: each quantity beside its references."""
from typing import Dict, List, Tuple


def _reference_label(name: str) -> str:
    """``'chance'``, or the baseline a ``*_baseline`` key names."""
    if name == 'chance' or name.endswith('_chance'):
        return 'chance'
    return name[:-len('_baseline')].rsplit('_', 1)[-1]


def metric_rows(metrics: Dict[str, float]) -> List[Tuple[str, float, str]]:
    """``(name, value, references)`` rows, references written out.

    Metric names are ``<group>/<quantity>``. References are keys of a group
    named ``chance`` or ``*_baseline`` (beside every quantity of the group)
    or ``<quantity>_chance`` (beside ``<quantity>`` only), e.g.
    ``linear_probe/top1`` gets ``chance 0.2000`` from ``linear_probe/chance``.
    Quantities keep their order; a reference whose quantity is missing is
    shown as a row of its own.

    Args:
        metrics (dict): metric name to float, as ``Runner.test`` returns.

    Returns:
        list[tuple[str, float, str]]: one row per quantity.
    """
    def split(key: str) -> Tuple[str, str]:
        group, _, name = key.rpartition('/')
        return group, name

    def is_reference(key: str) -> bool:
        name = split(key)[1]
        return (name == 'chance' or name.endswith('_chance')
                or name.endswith('_baseline'))

    quantities = [k for k in metrics if not is_reference(k)]
    shown = set()
    rows = []
    for key in quantities:
        group, name = split(key)
        refs = []
        for ref in metrics:
            ref_group, ref_name = split(ref)
            if ref_group != group or not is_reference(ref):
                continue
            if ref_name.endswith('_chance') and ref_name != f'{name}_chance':
                continue
            refs.append(f'{_reference_label(ref_name)} {metrics[ref]:.4f}')
            shown.add(ref)
        rows.append((key, metrics[key], ', '.join(refs)))
    rows += [(k, metrics[k], '') for k in metrics
             if is_reference(k) and k not in shown]
    return rows
