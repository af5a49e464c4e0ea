"""DenseVisualizer: DenseViT's pictures, sent to every configured backend."""
import copy
import os.path as osp
import time
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from mmpretrain.visualization import UniversalVisualizer
from torch import Tensor

from densevit.registry import VISUALIZERS
from .correspondence_drawing import draw_correspondence_rows
from .feature_pca import (FeaturePCA, FeatsLike, feature_pca_grid,
                          feature_pca_overlay)
from .image_utils import ImageLike
from .training_curves import LogLike, plot_training_curves


@VISUALIZERS.register_module()
class DenseVisualizer(UniversalVisualizer):
    """mmpretrain's ``UniversalVisualizer`` plus DenseViT's pictures.

    Each ``add_*`` method composes a picture with the pure functions of
    :mod:`densevit.visualization` and records it with :meth:`add_image`, so
    it reaches every vis backend: ``LocalVisBackend`` writes
    ``<save_dir>/vis_data/vis_image/<name>_<step>.png``,
    ``TensorboardVisBackend`` (needs ``pip install tensorboard``) an image
    summary. In a config::

        visualizer = dict(
            type='DenseVisualizer',
            vis_backends=[dict(type='LocalVisBackend'),
                          dict(type='TensorboardVisBackend')])

    Args:
        name (str): instance name. Defaults to 'visualizer'.
        vis_backends (list[dict], optional): backend configs.
        save_dir (str, optional): where backends save (the Runner sets its
            log dir).
        **kwargs: other ``UniversalVisualizer`` arguments.
    """

    def add_feature_pca(self,
                        name: str,
                        image: Union[ImageLike, Sequence[ImageLike]],
                        feats: Union[FeatsLike, Sequence[FeatsLike]],
                        step: int = 0,
                        alpha: float = 0.5,
                        pca: Optional[FeaturePCA] = None,
                        layout: str = 'auto',
                        interpolation: str = 'nearest') -> np.ndarray:
        """Record ``[image | PCA map | overlay]`` for one or more images.

        Args:
            name (str): image identifier.
            image (ndarray | PIL.Image | list): an (H, W, 3) RGB image or a
                list of them.
            feats (Tensor | list): its (H', W', D) / (C, H', W') features,
                or one map per image (then one PCA is fitted over all, so
                colours are comparable across rows).
            step (int): global step. Defaults to 0.
            alpha (float): overlay weight of the map. Defaults to 0.5.
            pca (FeaturePCA, optional): a projection to use instead of
                fitting one (e.g. shared with pictures of other steps).
            layout (str): 'hwc', 'chw' or 'auto'. Defaults to 'auto'.
            interpolation (str): map upsampling. Defaults to 'nearest'.

        Returns:
            ndarray: the recorded picture, (H, W, 3) uint8 RGB.
        """
        if isinstance(image, (list, tuple)):
            picture = feature_pca_grid(
                image, list(feats), alpha=alpha, pca=pca, layout=layout,
                interpolation=interpolation)
        else:
            picture = feature_pca_overlay(
                image, feats, alpha=alpha, pca=pca, layout=layout,
                interpolation=interpolation)
        self.add_image(name, picture, step)
        return picture

    def add_correspondences(self,
                            name: str,
                            view1: ImageLike,
                            view2: ImageLike,
                            matches: Union[Tensor, Mapping[str, Tensor]],
                            grid_hw: Sequence[int],
                            view_boxes: Optional[Tensor] = None,
                            view_flips: Optional[Tensor] = None,
                            step: int = 0,
                            tolerance: int = 1,
                            **kwargs) -> np.ndarray:
        """Record the patch matches between two views, one row per kind.

        Args:
            name (str): image identifier.
            view1 (ndarray | PIL.Image): (H, W, 3) RGB view 1.
            view2 (ndarray | PIL.Image): (H, W, 3) RGB view 2.
            matches (Tensor | Mapping[str, Tensor]): (S,) matches, or
                name → matches (e.g. backbone and dense).
            grid_hw (Sequence[int]): (H, W) patch grid.
            view_boxes (Tensor, optional): (2, 4) crop boxes for the truth.
            view_flips (Tensor, optional): (2,) flips.
            step (int): global step. Defaults to 0.
            tolerance (int): Chebyshev tolerance in patches. Defaults to 1.
            **kwargs: see
                :func:`~densevit.visualization.draw_correspondences`.

        Returns:
            ndarray: the recorded picture.
        """
        if not isinstance(matches, Mapping):
            matches = {'matches': matches}
        picture = draw_correspondence_rows(
            view1, view2, matches, grid_hw, view_boxes, view_flips,
            tolerance=tolerance, **kwargs)
        self.add_image(name, picture, step)
        return picture

    def add_training_curves(self,
                            name: str,
                            log: LogLike,
                            step: int = 0,
                            runs: str = 'latest',
                            title: Optional[str] = None) -> np.ndarray:
        """Record the loss / lr / metric curves of a scalar log.

        Args:
            name (str): image identifier.
            log (str | dict): work dir, ``scalars.json`` or the
                ``train``/``val`` records of ``load_scalars``.
            step (int): global step. Defaults to 0.
            runs (str): 'latest' or 'all' runs of a work dir.
            title (str, optional): figure title.

        Returns:
            ndarray: the recorded picture.
        """
        picture = plot_training_curves(log, runs=runs, title=title)
        self.add_image(name, picture, step)
        return picture


def build_dense_visualizer(cfg: Optional[Mapping] = None,
                           work_dir: Optional[str] = None,
                           name: Optional[str] = None) -> DenseVisualizer:
    """A :class:`DenseVisualizer` with the vis backends of a config.

    For tools outside a Runner: the backends of ``cfg.visualizer`` (or
    ``cfg.vis_backends``) are kept whatever the visualizer type (the
    default runtime uses mmpretrain's ``UniversalVisualizer``), and save
    under ``<work_dir>/<timestamp>/vis_data`` like a Runner's.

    Args:
        cfg (Config | dict, optional): a config; without one (or without
            backends) the visualizer records nothing.
        work_dir (str, optional): defaults to ``cfg.work_dir``, else
            ``work_dirs/<config name>`` for a config loaded from a file,
            else ``work_dirs/visualization``.
        name (str, optional): instance name. Defaults to a unique one.

    Returns:
        DenseVisualizer: a new visualizer.
    """
    cfg = {} if cfg is None else cfg
    vis_cfg = copy.deepcopy(dict(cfg.get('visualizer') or {}))
    backends = copy.deepcopy(
        vis_cfg.get('vis_backends', cfg.get('vis_backends')) or [])
    vis_type = vis_cfg.get('type', DenseVisualizer)
    cls = (VISUALIZERS.get(vis_type) if isinstance(vis_type, str) else
           vis_type)
    if not (isinstance(cls, type) and issubclass(cls, DenseVisualizer)):
        # Only the backends carry over into a DenseVisualizer.
        cls, vis_cfg = DenseVisualizer, {}
    if work_dir is None:
        work_dir = cfg.get('work_dir')
    if work_dir is None:
        filename = getattr(cfg, 'filename', None)
        stem = (osp.splitext(osp.basename(filename))[0]
                if filename else 'visualization')
        work_dir = osp.join('work_dirs', stem)
    timestamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())
    for key in ('type', 'name', 'vis_backends', 'save_dir'):
        vis_cfg.pop(key, None)
    return cls(
        name=name or f'densevit_vis_{timestamp}_{id(cfg)}',
        vis_backends=backends,
        save_dir=osp.join(work_dir, timestamp),
        **vis_cfg)
