"""SyntheticShapes: a procedurally generated, labelled, densely annotated
image dataset that needs no files and no downloads."""
import numbers
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmpretrain.datasets import BaseDataset

from densevit.registry import DATASETS
from .shape_renderer import SHAPE_NAMES, draw_plan, render_plan
from .utils import build_pipeline


def _check_int(name: str, value, low: int, high: Optional[int],
               fix: str) -> int:
    """Return ``value`` as int or raise TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'SyntheticShapes: `{name}` must be an int, but got '
                        f'{value!r} ({type(value).__name__}). {fix}')
    if value < low or (high is not None and value > high):
        bounds = f'>= {low}' if high is None else f'in [{low}, {high}]'
        raise ValueError(f'SyntheticShapes: `{name}` must be {bounds}, but '
                         f'got {value}. {fix}')
    return int(value)


@DATASETS.register_module()
class SyntheticShapes(BaseDataset):
    """Images of 1-``max_shapes`` coloured shapes on textured backgrounds.

    Every image is generated on the fly from ``(seed, index)`` with vectorised
    numpy (nothing is stored on disk), so the
    same ``seed`` and index always give the same image and a different
    ``seed`` gives a different dataset (use different seeds for train / probe
    / val splits). Backgrounds are a linear colour gradient with stripes or
    smooth colour blobs and grain noise; shapes have a random size, position,
    rotation, squash and colour (chosen to stand out from the background).

    The image label is the class of the largest shape, which is drawn last
    (on top), so it is always fully visible in the mask; the other shapes are
    35-60% of its radius and may be occluded.

    Each sample (what the pipeline receives) has the keys ``img``
    (H, W, 3) uint8 BGR, ``gt_label`` (int), ``gt_seg_map`` (H, W) uint8
    (0 = background, ``c + 1`` = shape class ``c``), ``img_shape``,
    ``ori_shape`` ((H, W)), ``sample_idx`` and ``gen_idx`` (the index the
    image is generated from; differs from ``sample_idx`` when ``indices``
    selects a subset).

    Args:
        num_samples (int): Number of images. Defaults to 10000.
        img_size (int): Side of the square images, >= 16. Defaults to 64.
        num_classes (int): Number of shape classes, the first ``num_classes``
            of ``('circle', 'square', 'triangle', 'star', 'cross', 'ring',
            'crescent', 'heart')``; between 2 and 8. Defaults to 6.
        seed (int): Seed of the dataset; images depend only on
            ``(seed, index)``. Defaults to 0.
        max_shapes (int): Maximum number of shapes per image (1 to
            ``max_shapes``, uniform). Defaults to 3.
        pipeline (Sequence[dict | Callable]): Transforms. Defaults to ().
        test_mode (bool): Test mode (a failing sample raises instead of being
            replaced by another). Defaults to False.
        lazy_init (bool): Defer building the (tiny) data list. Defaults to
            False.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``indices``, ``serialize_data``, ``max_refetch``).
            ``serialize_data`` defaults to False here: the data list is one
            small dict per image, and serialising it costs a full
            ``gc.collect()`` per dataset.

    Example:
        >>> ds = SyntheticShapes(num_samples=100, img_size=64, seed=1)
        >>> sample = ds[0]
        >>> sample['img'].shape, sample['gt_seg_map'].shape
        ((64, 64, 3), (64, 64))
    """

    def __init__(self,
                 num_samples: int = 10000,
                 img_size: int = 64,
                 num_classes: int = 6,
                 seed: int = 0,
                 max_shapes: int = 3,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 **kwargs):
        self.num_samples = _check_int(
            'num_samples', num_samples, 1, None,
            'Fix: set num_samples to the number of images you want, e.g. '
            'num_samples=1000.')
        self.img_size = _check_int(
            'img_size', img_size, 16, None,
            'Fix: use img_size >= 16 (one 16x16 ViT patch); e.g. 64 or 224.')
        self.num_classes = _check_int(
            'num_classes', num_classes, 2, len(SHAPE_NAMES),
            f'Fix: pick 2..{len(SHAPE_NAMES)} classes of {SHAPE_NAMES}.')
        self.seed = _check_int('seed', seed, 0, None,
                               'Fix: use a non-negative int seed.')
        self.max_shapes = _check_int('max_shapes', max_shapes, 1, None,
                                     'Fix: use max_shapes >= 1 (e.g. 3).')
        classes = SHAPE_NAMES[:self.num_classes]
        metainfo = dict(
            classes=classes,
            # Class names of gt_seg_map values 0..num_classes.
            seg_classes=('background', ) + classes)
        kwargs.setdefault('serialize_data', False)
        super().__init__(
            ann_file='',
            metainfo=metainfo,
            pipeline=build_pipeline(pipeline),
            test_mode=test_mode,
            lazy_init=lazy_init,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """One tiny dict per image: the index it is generated from."""
        return [dict(gen_idx=i) for i in range(self.num_samples)]

    def _rng(self, gen_idx: int) -> np.random.Generator:
        # SeedSequence([seed, idx]) gives independent, well-mixed streams per
        # image and per dataset seed (unlike seed * N + idx).
        return np.random.default_rng([self.seed, gen_idx])

    def _plan(self, gen_idx: int):
        return draw_plan(
            self._rng(gen_idx), self.img_size, self.num_classes,
            self.max_shapes)

    def get_data_info(self, idx: int) -> dict:
        """Generate sample ``idx``: image, label and segmentation map."""
        data_info = super().get_data_info(idx)
        rng = self._rng(data_info['gen_idx'])
        plan = draw_plan(rng, self.img_size, self.num_classes, self.max_shapes)
        img, seg = render_plan(rng, plan, self.img_size)
        shape = (self.img_size, self.img_size)
        data_info.update(
            img=img,
            gt_label=plan.label,
            gt_seg_map=seg,
            img_shape=shape,
            ori_shape=shape)
        return data_info

    def get_gt_labels(self) -> np.ndarray:
        """All image labels, without rendering a single pixel."""
        return np.array([self.get_cat_ids(i)[0] for i in range(len(self))],
                        dtype=np.int64)

    def get_cat_ids(self, idx: int) -> List[int]:
        """The label of sample ``idx`` (cheap: draws only the parameters)."""
        return [self._plan(super().get_data_info(idx)['gen_idx']).label]

    def extra_repr(self) -> List[str]:
        """Shown in ``repr(dataset)``."""
        return [
            f'Image size: \t{self.img_size}',
            f'Seed: \t{self.seed}',
            f'Max shapes per image: \t{self.max_shapes}',
        ]
