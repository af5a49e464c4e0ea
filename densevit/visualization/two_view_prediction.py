"""Run DenseViT on one packed two-view sample and collect what to draw."""
from typing import Dict

import torch
from mmengine.dataset import default_collate
from torch import nn

from .image_utils import to_rgb_image


@torch.no_grad()
def predict_two_views(model: nn.Module, sample: dict) -> Dict:
    """Matches of one two-view sample, with the views ready to display.

    The sample goes through the model's data preprocessor and
    ``model(inputs, data_samples, mode='predict')`` exactly as in testing;
    the views shown are the packed ones (BGR, as DenseViT pipelines pack
    them) turned to RGB, i.e. the model's inputs before normalisation.

    Args:
        model (nn.Module): a DenseViT model in eval mode.
        sample (dict): one item of a two-view dataset (``TwoViewCrop`` +
            ``PackDenseInputs``): ``inputs`` a list of 2 (3, h, w) tensors
            and ``data_samples`` with ``view_boxes``/``view_flips``.

    Returns:
        dict: ``view1``, ``view2`` (h, w, 3) uint8 RGB; ``matches``
        {'backbone': (S,), 'dense': (S,)}; ``grid_hw``; ``view_boxes``
        (2, 4); ``view_flips`` (2,); ``data_sample`` the prediction.
    """
    inputs = sample.get('inputs') if isinstance(sample, dict) else None
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError(
            'The sample must hold two views (`inputs` a list of 2 image '
            'tensors). Fix: use a dataset whose pipeline has TwoViewCrop '
            'followed by PackDenseInputs.')
    meta = sample['data_samples']
    if 'view_boxes' not in meta or 'view_flips' not in meta:
        raise ValueError(
            'The sample has no view_boxes/view_flips metainfo, so the true '
            'correspondence is unknown. Fix: build the views with '
            'TwoViewCrop (it records them) and pack with PackDenseInputs.')
    batch = default_collate([sample])
    data = model.data_preprocessor(batch, False)
    result = model(data['inputs'], data['data_samples'], mode='predict')[0]
    views = [to_rgb_image(view, bgr=True) for view in inputs]
    grid = tuple(int(g) for g in result.metainfo.get(
        'patch_grid', result.patch_feats.shape[-2:]))
    return dict(
        view1=views[0],
        view2=views[1],
        matches=dict(
            backbone=result.pred_corr_backbone.cpu(),
            dense=result.pred_corr_dense.cpu()),
        grid_hw=grid,
        view_boxes=torch.as_tensor(meta.view_boxes),
        view_flips=torch.as_tensor(meta.view_flips),
        data_sample=result)
