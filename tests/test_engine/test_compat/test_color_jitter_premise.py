import mmcv
import numpy as np
import pytest

from densevit.datasets.transforms import RandomColorJitter


def test_mmcv_adjust_hue_rejects_negative_hue():
    """Premise of RandomColorJitter: mmcv's hue shift fails under numpy 2."""
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    with pytest.raises(OverflowError):
        mmcv.adjust_hue(image, -0.1)
    jitter = RandomColorJitter(
        brightness=0, contrast=0, saturation=0, hue=(-0.1, -0.1), prob=1)
    assert jitter(dict(img=image))['img'].shape == image.shape
