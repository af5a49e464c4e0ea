import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

from densevit.apis import init_model
from densevit.visualization import (draw_correspondence_rows,
                                    predict_two_views)


def packed_sample(view1, view2, boxes, flips):
    sample = DataSample()
    sample.set_field(boxes, 'view_boxes', field_type='metainfo')
    sample.set_field(flips, 'view_flips', field_type='metainfo')
    return dict(inputs=[view1, view2], data_samples=sample)


# The views shown do not depend on how the preprocessor normalises.
@pytest.mark.parametrize('preprocessor', [
    None, dict(type='SelfSupDataPreprocessor', to_rgb=False)])
def test_identical_views_match_themselves(tiny_model_cfg, preprocessor):
    if preprocessor is not None:
        tiny_model_cfg['data_preprocessor'] = preprocessor
    model = init_model(Config(dict(model=tiny_model_cfg)))
    bgr = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[0., 0., 64., 64.], [0., 0., 64., 64.]])
    flips = torch.tensor([False, False])
    pred = predict_two_views(model, packed_sample(bgr, bgr, boxes, flips))

    assert pred['grid_hw'] == (4, 4)
    # Every patch is most similar to itself in an identical view.
    for matches in pred['matches'].values():
        assert matches.tolist() == list(range(16))
    # The views come back as packed, in RGB.
    rgb = bgr.flip(0).permute(1, 2, 0).numpy()
    assert pred['view1'].dtype == np.uint8
    np.testing.assert_array_equal(pred['view1'], rgb)
    torch.testing.assert_close(pred['view_boxes'], boxes)

    picture = draw_correspondence_rows(
        pred['view1'], pred['view2'], pred['matches'], pred['grid_hw'],
        pred['view_boxes'], pred['view_flips'])
    red = (picture == (255, 0, 0)).all(-1).sum()
    green = (picture == (0, 255, 0)).all(-1).sum()
    assert red == 0 and green > 0


def test_single_view_samples_are_refused(tiny_model_cfg):
    model = init_model(Config(dict(model=tiny_model_cfg)))
    view = torch.zeros(3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match='two views'):
        predict_two_views(model, dict(inputs=view,
                                      data_samples=DataSample()))
    with pytest.raises(ValueError, match='view_boxes'):
        predict_two_views(model, dict(inputs=[view, view],
                                      data_samples=DataSample()))
