"""Read the ``Pretrained`` entries of a module's ``init_cfg``.

mmengine's ``BaseModule`` takes ``init_cfg`` as None, one dict or a list of
dicts; the backbone (which loads ``Pretrained`` itself, strictly),
``init_model`` (which skips it when a checkpoint replaces every weight) and
``check_config`` (which checks its file before anything is built) must all
find the same entries in each form, so they read them here.
"""
from typing import Any, Dict, List, Optional


def _entries(init_cfg: Any) -> List[Any]:
    if init_cfg is None:
        return []
    if isinstance(init_cfg, (list, tuple)):
        return list(init_cfg)
    return [init_cfg]


def _is_pretrained(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get('type') == 'Pretrained'


def pretrained_init_cfgs(init_cfg: Any) -> List[Dict[str, Any]]:
    """The ``type='Pretrained'`` entries of ``init_cfg``.

    Args:
        init_cfg: a module's ``init_cfg``: None, a dict, or a list (or
            tuple) of dicts.

    Returns:
        list[dict]: the ``Pretrained`` dicts themselves (not copies), in
        their order in ``init_cfg``; empty when there is none.
    """
    return [entry for entry in _entries(init_cfg) if _is_pretrained(entry)]


def without_pretrained_init_cfgs(init_cfg: Any) -> Optional[List[Any]]:
    """The entries of ``init_cfg`` that are not ``Pretrained``, as a list
    (the entries themselves, in order), or None when none is left: the
    ``init_cfg`` a module gets when its ``Pretrained`` inits are skipped
    or run by other means."""
    others = [entry for entry in _entries(init_cfg)
              if not _is_pretrained(entry)]
    return others or None
