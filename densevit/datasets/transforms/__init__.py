"""DenseViT data transforms (in ``densevit.registry.TRANSFORMS``)."""
from .load_image_or_skip import LoadImageOrSkip
from .pack_dense_inputs import PackDenseInputs
from .random_color_jitter import RandomColorJitter
from .resize_with_mask import ResizeWithMask
from .two_view_crop import TwoViewCrop, box_overlap, resize_view
from .viewwise_transforms import ViewwiseTransforms

__all__ = [
    'TwoViewCrop', 'ViewwiseTransforms', 'RandomColorJitter',
    'PackDenseInputs', 'ResizeWithMask', 'LoadImageOrSkip', 'box_overlap',
    'resize_view'
]
