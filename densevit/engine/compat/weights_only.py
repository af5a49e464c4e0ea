"""Make checkpoint contents loadable by ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default, which only accepts
tensors and plain Python containers and scalars. MMEngine puts
``HistoryBuffer`` objects and NumPy values into checkpoints (message hub log
scalars, runtime info, dataset meta), so stock resume fails with
``_pickle.UnpicklingError``. :func:`to_weights_only` encodes those values as
tagged plain dicts; :func:`from_weights_only` decodes them back to the exact
original types, so MMEngine's resume logic sees what it saved.
"""
from collections import OrderedDict
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

#: Key marking an encoded value; chosen so it cannot clash with real keys.
TYPE_KEY = '__densevit_type__'

# Types the weights-only unpickler accepts as they are.
_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes,
                  torch.Size, torch.dtype, torch.device)


def _encode_ndarray(array: np.ndarray, path: str, unsafe: list) -> dict:
    if array.dtype.kind in 'biufc':  # bool, int, uint, float, complex
        data = torch.from_numpy(np.ascontiguousarray(array).copy())
    else:  # str / object arrays: nested lists of (encoded) items
        data = _encode(array.tolist(), path, unsafe)
    return {TYPE_KEY: 'ndarray', 'dtype': array.dtype.str, 'data': data}


def _encode(obj: Any, path: str, unsafe: list) -> Any:
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN_SCALARS:
        return obj
    if isinstance(obj, HistoryBuffer):
        log_history, count_history = obj.data
        return {
            TYPE_KEY: 'HistoryBuffer',
            'log_history': _encode_ndarray(log_history, path, unsafe),
            'count_history': _encode_ndarray(count_history, path, unsafe),
            'max_length': int(obj.max_length)
        }
    if isinstance(obj, np.ndarray):
        return _encode_ndarray(obj, path, unsafe)
    if isinstance(obj, np.generic):
        return {
            TYPE_KEY: 'np_scalar',
            'dtype': obj.dtype.str,
            'value': _encode(obj.item(), path, unsafe)
        }
    if isinstance(obj, dict):
        # OrderedDict is allowed as is; other dict subclasses (ConfigDict,
        # defaultdict) are pickled by class reference, so they become dicts.
        out = OrderedDict() if type(obj) is OrderedDict else {}
        for key, value in obj.items():
            if type(key) not in _PLAIN_SCALARS:
                unsafe.append((f'{path}[{key!r}] (key)', type(key)))
            out[key] = _encode(value, f'{path}[{key!r}]', unsafe)
        return out
    if type(obj) in (list, tuple, set):
        items = [_encode(v, f'{path}[{i}]', unsafe) for i, v in enumerate(obj)]
        return type(obj)(items)
    # Left as it is: the checkpoint still saves (and loads with
    # weights_only=False); the caller reports the path.
    unsafe.append((path, type(obj)))
    return obj


def to_weights_only(obj: Any,
                    path: str = 'checkpoint') -> Tuple[Any, List[tuple]]:
    """Encode ``obj`` so ``torch.load(weights_only=True)`` accepts it.

    NumPy arrays become tensors (str/object arrays: lists), NumPy scalars and
    ``HistoryBuffer`` objects become tagged dicts, dict subclasses become
    dicts. Tensors are returned as they are (not copied).

    Args:
        obj: Any checkpoint content.
        path (str): Name of ``obj`` used in the returned paths.

    Returns:
        tuple: The encoded object, and a list of ``(path, type)`` for values
        that could not be made safe (left unchanged).
    """
    unsafe: List[tuple] = []
    return _encode(obj, path, unsafe), unsafe


def _decode_ndarray(encoded: dict) -> np.ndarray:
    data = encoded['data']
    if isinstance(data, torch.Tensor):
        return data.cpu().numpy()
    return np.array(from_weights_only(data), dtype=np.dtype(encoded['dtype']))


def from_weights_only(obj: Any) -> Any:
    """Invert :func:`to_weights_only` (NumPy values, ``HistoryBuffer``)."""
    if isinstance(obj, dict):
        kind: Optional[str] = obj.get(TYPE_KEY)
        if kind == 'ndarray':
            return _decode_ndarray(obj)
        if kind == 'np_scalar':
            value = from_weights_only(obj['value'])
            return np.array(value, dtype=np.dtype(obj['dtype']))[()]
        if kind == 'HistoryBuffer':
            return HistoryBuffer(
                _decode_ndarray(obj['log_history']),
                _decode_ndarray(obj['count_history']),
                max_length=obj['max_length'])
        out = OrderedDict() if type(obj) is OrderedDict else {}
        for key, value in obj.items():
            out[key] = from_weights_only(value)
        return out
    if type(obj) in (list, tuple, set):
        return type(obj)(from_weights_only(v) for v in obj)
    return obj
