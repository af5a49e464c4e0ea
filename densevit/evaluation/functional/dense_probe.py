"""Dense (per-patch) linear probe: semantic segmentation on the patch grid.

Pixel masks are reduced to one label per patch by **majority vote** over
the pixels inside the patch cell, ignored pixels excluded (ties go to the
lower class id; a cell with only ignored pixels is ignored). Majority vote,
unlike the label at the cell centre, does not flip a patch to a thin
structure that happens to cross its centre. The probe (a linear classifier
per patch feature, :func:`fit_linear_probe`) is scored on the patch grid,
so mIoU and pixel accuracy are patch-level, not full-resolution.
"""
from typing import Dict, Sequence

import torch
from torch import Tensor

from .split import majority_class


def masks_to_patch_labels(masks: Tensor,
                          grid_hw: Sequence[int],
                          num_classes: int,
                          ignore_index: int = 255) -> Tensor:
    """Majority-vote label of each patch cell.

    Args:
        masks (Tensor): ``(N, h, w)`` integer class masks; ``h`` and ``w``
            must be multiples of the grid size (the image the patch grid was
            computed from, cropped and resized exactly like it).
        grid_hw (Sequence[int]): ``(H, W)`` patch grid.
        num_classes (int): classes are ``0 .. num_classes - 1``.
        ignore_index (int): label of pixels to ignore. Defaults to 255.

    Returns:
        Tensor: ``(N, H, W)`` long labels, ``ignore_index`` for cells with no
        labelled pixel.
    """
    masks = torch.as_tensor(masks)
    if masks.dim() != 3:
        raise ValueError('masks must be (N, h, w), but got shape '
                         f'{tuple(masks.shape)}.')
    n, h, w = masks.shape
    gh, gw = int(grid_hw[0]), int(grid_hw[1])
    if h < gh or w < gw or h % gh or w % gw:
        raise ValueError(
            f'Mask size ({h}, {w}) does not match the ({gh}, {gw}) patch '
            'grid of the features: it must be an integer multiple of it '
            '(one cell of pixels per patch). Pack gt_mask from the same '
            'crop/resize as the image the features were computed from.')
    masks = masks.long().cpu()
    valid = masks != ignore_index
    labels = masks[valid]
    if labels.numel() and (int(labels.min()) < 0
                           or int(labels.max()) >= num_classes):
        raise ValueError(
            f'Mask class ids must lie in [0, num_classes={num_classes}) or '
            f'equal ignore_index={ignore_index}, but got ids in '
            f'[{int(labels.min())}, {int(labels.max())}]. Set num_classes to '
            'the number of segmentation classes (background included).')

    # Count (sample, cell, class) occurrences with one bincount instead of
    # a one-hot (N, K, h, w) tensor.
    cell_row = torch.arange(h) // (h // gh)
    cell_col = torch.arange(w) // (w // gw)
    cell = (cell_row[:, None] * gw + cell_col[None, :]).expand(n, h, w)
    sample = torch.arange(n)[:, None, None].expand(n, h, w)
    key = (sample[valid] * (gh * gw) + cell[valid]) * num_classes + labels
    counts = torch.bincount(key, minlength=n * gh * gw * num_classes)
    counts = counts.view(n, gh, gw, num_classes)
    out = counts.argmax(dim=-1)
    out[counts.sum(dim=-1) == 0] = ignore_index
    return out


def mean_iou(pred: Tensor,
             gt: Tensor,
             num_classes: int,
             ignore_index: int = 255) -> Dict[str, object]:
    """mIoU and pixel accuracy of label maps (any matching shapes).

    Classes absent from both prediction and truth (union 0) are left out of
    the mean (their IoU is ``nan`` in ``per_class_iou``).

    Args:
        pred (Tensor): predicted labels.
        gt (Tensor): true labels; ``ignore_index`` entries are skipped.
        num_classes (int): number of classes.
        ignore_index (int): label to skip. Defaults to 255.

    Returns:
        dict: ``mIoU`` (float), ``pixel_acc`` (float), both in ``[0, 1]``,
        and ``per_class_iou`` (Tensor ``(num_classes,)``).
    """
    pred = torch.as_tensor(pred).reshape(-1).long().cpu()
    gt = torch.as_tensor(gt).reshape(-1).long().cpu()
    keep = gt != ignore_index
    pred, gt = pred[keep], gt[keep]
    if gt.numel() == 0:
        raise ValueError('No labelled (non-ignored) location to score: the '
                         'test split needs masks with at least one class '
                         'pixel.')
    confusion = torch.bincount(
        gt * num_classes + pred,
        minlength=num_classes**2).view(num_classes, num_classes).double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1),
                      torch.full_like(tp, float('nan')))
    return dict(
        mIoU=iou[union > 0].mean().item(),
        pixel_acc=(tp.sum() / confusion.sum()).item(),
        per_class_iou=iou.float())


def segmentation_chance(gt: Tensor,
                        num_classes: int,
                        ignore_index: int = 255) -> Dict[str, object]:
    """:func:`mean_iou` of labelling every location with the most common
    class of ``gt``: the chance level a segmentation has to beat.

    Args:
        gt (Tensor): true labels; ``ignore_index`` entries are skipped.
        num_classes (int): number of classes.
        ignore_index (int): label to skip. Defaults to 255.

    Returns:
        dict: as :func:`mean_iou`.
    """
    gt = torch.as_tensor(gt)
    majority, _ = majority_class(gt, ignore_index)
    return mean_iou(torch.full_like(gt, majority), gt, num_classes,
                    ignore_index)
