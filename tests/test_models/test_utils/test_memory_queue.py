import pytest
import torch
import torch.nn.functional as F

from densevit.models.utils import MemoryQueue


def sequential_reference(queue: MemoryQueue, batches):
    """Write keys one at a time: the ground truth of a ring buffer."""
    keys = queue.keys.clone()
    ptr = int(queue.ptr)
    for batch in batches:
        for row in F.normalize(batch, dim=1):
            keys[ptr] = row
            ptr = (ptr + 1) % queue.length
    return keys, ptr


@pytest.mark.parametrize(
    'length,batch_sizes',
    [
        (8, [2, 2, 2, 2, 2]),  # divides the length, wraps exactly
        (10, [3, 3, 3, 3]),  # does not divide the length
        (8, [5, 5]),  # second batch crosses the end
        (6, [4, 9]),  # longer than the queue: keep the newest `length`
        (4, [13]),  # longer than the queue from the start
        (5, [0, 2]),  # empty batch is a no-op
    ])
def test_enqueue_matches_sequential_writes(length, batch_sizes):
    torch.manual_seed(0)
    queue = MemoryQueue(length, 3)
    batches = [torch.randn(n, 3) for n in batch_sizes]
    expected_keys, expected_ptr = sequential_reference(queue, batches)
    for batch in batches:
        queue.enqueue(batch)
    torch.testing.assert_close(queue.keys, expected_keys)
    assert int(queue.ptr) == expected_ptr


def test_keys_are_normalised_and_state_in_buffers():
    queue = MemoryQueue(16, 4)
    torch.testing.assert_close(queue.keys.norm(dim=1), torch.ones(16))
    queue.enqueue(torch.full((3, 4), 7.0))
    torch.testing.assert_close(queue.keys[:3], torch.full((3, 4), 0.5))
    state = queue.state_dict()
    assert set(state) == {'keys', 'ptr'}
    restored = MemoryQueue(16, 4)
    restored.load_state_dict(state)
    assert int(restored.ptr) == 3
    torch.testing.assert_close(restored.keys, queue.keys)


def test_pointer_stays_on_device_tensor():
    queue = MemoryQueue(8, 2)
    queue.enqueue(torch.randn(3, 2))
    # The pointer is a 0-d tensor buffer, never a Python int that would need
    # a device->host copy to update.
    assert isinstance(queue.ptr, torch.Tensor) and queue.ptr.dim() == 0
