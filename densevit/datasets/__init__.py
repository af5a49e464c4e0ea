"""DenseViT datasets (registered in ``densevit.registry.DATASETS``) and
transforms."""
from .dense_image_folder import DenseImageFolder
from .segmentation_folder import SegmentationFolder, load_index_mask
from .shape_renderer import SHAPE_NAMES
from .synthetic_shapes import SyntheticShapes
from .transforms import (LoadImageOrSkip, PackDenseInputs, RandomColorJitter,
                         ResizeWithMask, TwoViewCrop, ViewwiseTransforms,
                         box_overlap, resize_view)
from .utils import (IMG_EXTENSIONS, build_pipeline, check_data_root,
                    check_images_readable, read_image)

__all__ = [
    'SyntheticShapes', 'DenseImageFolder', 'SegmentationFolder', 'SHAPE_NAMES',
    'IMG_EXTENSIONS', 'check_data_root', 'check_images_readable',
    'read_image', 'build_pipeline', 'load_index_mask', 'TwoViewCrop',
    'ViewwiseTransforms', 'RandomColorJitter', 'PackDenseInputs',
    'ResizeWithMask', 'LoadImageOrSkip', 'box_overlap', 'resize_view'
]
