import io
import pickle
from collections import OrderedDict, defaultdict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from densevit.engine.compat import from_weights_only, to_weights_only


def save_and_load_weights_only(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def sample_content():
    buffer = HistoryBuffer(max_length=5)
    for value in (1.5, 2.5, 3.0):
        buffer.update(value)
    return OrderedDict(
        log_scalars=OrderedDict({'train/loss': buffer}),
        runtime_info=OrderedDict(
            best_score=np.float64(0.75),
            count=np.int64(3),
            flag=np.bool_(True),
            name=np.str_('x'),
            keep_ckpt_ids=[1, 2],
            dataset_meta=dict(
                classes=('a', 'b'),
                palette=np.array([[0, 0, 0], [255, 0, 0]], dtype=np.uint8),
                words=np.array(['cat', 'dog']),
                weights=np.arange(6, dtype=np.float32).reshape(2, 3),
                big=np.array([2**40], dtype=np.uint64))),
        tensor=torch.ones(2),
        none=None)


def test_round_trip_through_weights_only_load():
    content = sample_content()
    encoded, unsafe = to_weights_only(content)
    assert unsafe == []
    with pytest.raises(pickle.UnpicklingError):
        save_and_load_weights_only(content)
    decoded = from_weights_only(save_and_load_weights_only(encoded))
    # Same types and values: MMEngine compares dataset_meta with pickle.
    info, original = decoded['runtime_info'], content['runtime_info']
    assert pickle.dumps(info['dataset_meta']) == pickle.dumps(
        original['dataset_meta'])
    for key in ('best_score', 'count', 'flag', 'name', 'keep_ckpt_ids'):
        assert type(info[key]) is type(original[key])
        assert info[key] == original[key]
    restored = decoded['log_scalars']['train/loss']
    assert isinstance(restored, HistoryBuffer)
    assert restored.max_length == 5
    for got, want in zip(restored.data,
                         content['log_scalars']['train/loss'].data):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    assert type(decoded) is OrderedDict
    assert torch.equal(decoded['tensor'], torch.ones(2))


def test_tensors_are_not_copied():
    tensor = torch.ones(3)
    encoded, _ = to_weights_only(dict(state_dict=dict(w=tensor)))
    assert encoded['state_dict']['w'] is tensor


def test_unencodable_values_are_kept_and_reported():

    class Custom:
        pass

    custom = Custom()
    encoded, unsafe = to_weights_only(
        dict(meta=dict(obj=custom, table=defaultdict(int, a=1))))
    assert encoded['meta']['obj'] is custom
    assert unsafe == [("checkpoint['meta']['obj']", Custom)]
    # dict subclasses become plain dicts
    assert type(encoded['meta']['table']) is dict
