import pytest
import torch

from densevit.models.necks import DenseProjectionNeck


def test_shapes_and_defaults():
    neck = DenseProjectionNeck(in_channels=32)
    assert neck.dense_mlp[0].out_features == 2048
    assert neck.out_channels == 128
    global_emb, dense = neck((torch.randn(2, 32), torch.randn(2, 32, 3, 4)))
    assert global_emb.shape == (2, 128)
    assert dense.shape == (2, 128, 3, 4)


def test_dense_mlp_is_applied_per_patch():
    neck = DenseProjectionNeck(in_channels=8, hid_channels=16, out_channels=4)
    patches = torch.randn(2, 8, 3, 3)
    _, dense = neck((torch.randn(2, 8), patches))
    # Location (1, 2) of image 1 depends only on that patch's own feature.
    expected = neck.dense_mlp(patches[1, :, 1, 2])
    torch.testing.assert_close(dense[1, :, 1, 2], expected)
    global_emb, _ = neck((patches[:, :, 0, 0], patches))
    torch.testing.assert_close(global_emb,
                               neck.global_mlp(patches[:, :, 0, 0]))


@pytest.mark.parametrize('field', ['in_channels', 'hid_channels',
                                   'out_channels'])
@pytest.mark.parametrize('bad', [0, -1, 2.0, True])
def test_bad_channels(field, bad):
    # Checked once, here; forward takes the channels as given (DenseViT
    # checks in_channels against the backbone at build).
    kwargs = dict(in_channels=8, hid_channels=16, out_channels=4)
    kwargs[field] = bad
    with pytest.raises(ValueError, match=f'`{field}`'):
        DenseProjectionNeck(**kwargs)
